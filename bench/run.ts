import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { renderChart } from './chart';
import { drainAlone, flashSale } from './flash-sale';
import { asyncOrders, DEFAULT_LOAD, load, naiveOrders, SeatSource, syncOrders } from './load';
import { argon2Ceiling, compensationSection, expiryLateness, pays, soldOutRejections } from './paths';
import { SECTIONS, sagaCostTargets, earlierTargets, type SectionData, type SectionName, type Stored } from './report';
import { renderMarkdown } from './results-md';
import { history, scaling, HISTORY_SAGAS, SCALING_LEVELS } from './scaling';
import { insertBuyers, startNaiveBaseline, startService } from './service';
import type { Measured } from './support';

/**
 * `npm run bench [-- SECTION …] [--runs N]`, or BENCH_SECTIONS=paths,scaling and BENCH_RUNS=3:
 * the sections asked for (all by default, in the order below), each run N times (runs
 * interleaved: run 1 of every section, then run 2, …). Every section's runs are kept in
 * bench/results.json, replacing that section's earlier entry only, and bench/results.md and
 * results.svg are written again from the whole file, so one section can be rerun alone.
 *
 * - paths: GET /livez, the sync order saga, async accept (role all; API process), sold-out
 *   rejections, the pay saga, the naive baseline, the argon2id ceiling (BENCH_CONNECTIONS, default
 *   50; BENCH_DURATION s, default 10, after a 2 s warm-up);
 * - scaling: sync, async, naive and /livez at BENCH_SCALING_LEVELS clients (1,10,50,200);
 * - history: sync and async on an empty log and on BENCH_HISTORY_SAGAS (1,000,000) sagas, and the sync path while the retention purge runs;
 * - compensation: SAGA_FAILED → COMPENSATED from 1 and from 20 clients (BENCH_FAILING_SAGAS, 200);
 * - expiry: how late unpaid orders are released after their deadline;
 * - flash: the flash sale (BENCH_FLASH_SEATS 10000, BENCH_FLASH_REQUESTS 50000, BENCH_FLASH_CONNECTIONS 200), two deployments;
 * - drain: the order consumer alone on BENCH_DRAIN_ORDERS (20000) queued orders.
 */
const FLASH = {
  seats: Number(process.env.BENCH_FLASH_SEATS ?? 10_000),
  requests: Number(process.env.BENCH_FLASH_REQUESTS ?? 50_000),
  connections: Number(process.env.BENCH_FLASH_CONNECTIONS ?? 200),
};
const DRAIN_ORDERS = Number(process.env.BENCH_DRAIN_ORDERS ?? 20_000);
/** The most seats a show may have (rows × seatsPerRow). */
const MAX_SHOW_SEATS = 100_000;
const RESULTS = path.join(__dirname, 'results.json');

function parseArgs(argv: string[]): { sections: SectionName[]; runs: number } {
  let runs = Number(process.env.BENCH_RUNS ?? 1);
  const named: string[] = (process.env.BENCH_SECTIONS ?? '').split(',').filter(Boolean);
  for (let i = 0; i < argv.length; i++) {
    const m = /^--runs(?:=(\d+))?$/.exec(argv[i]);
    if (m) runs = Number(m[1] ?? argv[++i]);
    else named.push(...argv[i].split(',').filter(Boolean));
  }
  for (const name of named) if (!SECTIONS.includes(name as SectionName)) throw new Error(`unknown section ${name}: one of ${SECTIONS.join(', ')}`);
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs / BENCH_RUNS: a whole number ≥ 1');
  return { sections: named.length ? SECTIONS.filter((s) => named.includes(s)) : SECTIONS, runs };
}

/** The headline paths at BENCH_CONNECTIONS: each as a ratio to GET /livez, the naive baseline and the argon2id ceiling, in one run. */
async function pathsSection(): Promise<SectionData['paths']> {
  const service = await startService('main');
  const rows: Measured[] = [];
  let tokens: string[];
  try {
    tokens = await insertBuyers(service, DEFAULT_LOAD.connections);
    const livez = await load('GET /livez', { url: `${service.url}/livez` });
    rows.push(livez);
    rows.push(await syncOrders(service, tokens, new SeatSource(service)));
    // Enough buyers and seats that none orders twice for a show, whatever the rate (/livez's bounds it).
    const planned = Math.ceil(livez.requestsPerSecond * (DEFAULT_LOAD.duration + DEFAULT_LOAD.warmUp) * 1.25);
    const buyers = await insertBuyers(service, Math.min(planned, MAX_SHOW_SEATS));
    rows.push(await asyncOrders(service, service.url, 'POST /api/orders/async (accept, role all)', buyers, planned));
    // The contract's scaled deployment: the API in its own process, the consumer in another (here the role-all one).
    const api = await service.spawn('api');
    rows.push(await asyncOrders(service, api.url!, 'POST /api/orders/async (accept, API process)', buyers, planned));
    await api.stop();
    rows.push(await soldOutRejections(service, tokens));
    rows.push(await pays(service, tokens));
  } finally {
    await service.stop();
  }
  const naive = await startNaiveBaseline(1_000_000_000);
  try {
    rows.push(await naiveOrders(naive, tokens));
  } finally {
    await naive.stop();
  }
  return { rows, argon2PerSecond: await argon2Ceiling() };
}

const RUNNERS: { [K in SectionName]: () => Promise<SectionData[K]> } = {
  paths: pathsSection,
  scaling: () => scaling(),
  history: () => history(DEFAULT_LOAD),
  compensation: compensationSection,
  expiry: () => expiryLateness(200),
  flash: async () => {
    const sales = [];
    for (const deployment of ['API process + worker process', 'one process (role all)'] as const) {
      console.log(`flash sale, ${deployment}: ${FLASH.requests} requests for ${FLASH.seats} seats from ${FLASH.connections} connections`);
      sales.push(await flashSale(FLASH.seats, FLASH.requests, FLASH.connections, deployment));
    }
    return sales;
  },
  drain: () => drainAlone(DRAIN_ORDERS, DEFAULT_LOAD.connections),
};

const SETTINGS: Record<SectionName, Record<string, unknown>> = {
  paths: { connections: DEFAULT_LOAD.connections, seconds: DEFAULT_LOAD.duration, warmUp: DEFAULT_LOAD.warmUp },
  scaling: { clients: SCALING_LEVELS.join('/'), seconds: Number(process.env.BENCH_SCALING_DURATION ?? 5), warmUp: 1 },
  history: { sagas: HISTORY_SAGAS, connections: DEFAULT_LOAD.connections, seconds: DEFAULT_LOAD.duration },
  compensation: { failingSagas: Number(process.env.BENCH_FAILING_SAGAS ?? 200) },
  expiry: { orders: 200 },
  flash: FLASH,
  drain: { orders: DRAIN_ORDERS, connections: DEFAULT_LOAD.connections },
};

function readStored(): Stored {
  return existsSync(RESULTS) ? (JSON.parse(readFileSync(RESULTS, 'utf8')) as Stored) : {};
}

function write(stored: Stored): void {
  writeFileSync(RESULTS, `${JSON.stringify(stored, null, 1)}\n`);
  writeFileSync(path.join(__dirname, 'results.md'), renderMarkdown(stored));
  writeFileSync(path.join(__dirname, 'results.svg'), renderChart(stored));
}

async function main() {
  const { sections, runs } = parseArgs(process.argv.slice(2));
  const started = Date.now();
  const machine = `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  console.log(`sections: ${sections.join(', ')}; ${runs} run(s)`);
  const collected: Partial<Record<SectionName, unknown[]>> = {};
  for (let run = 1; run <= runs; run++) {
    for (const section of sections) {
      const t0 = Date.now();
      console.log(`\n=== ${section}, run ${run} of ${runs} ===`);
      (collected[section] ??= []).push(await RUNNERS[section]());
      console.log(`=== ${section} took ${((Date.now() - t0) / 1000).toFixed(0)} s ===`);
      // Saved after every section: an interrupted bench keeps what it measured.
      const stored = readStored();
      (stored as Record<string, unknown>)[section] = { measuredAt: new Date().toISOString(), machine, settings: SETTINGS[section], runs: collected[section] };
      write(stored);
    }
  }
  const stored = readStored();
  console.log(`\n${renderMarkdown(stored)}\nwrote bench/results.json, results.md and results.svg in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  for (const t of [...sagaCostTargets(stored), ...earlierTargets(stored)].filter((t) => t.pass === false))
    console.log(`MISS: ${t.target}: ${t.measured} (${t.shortBy})`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
