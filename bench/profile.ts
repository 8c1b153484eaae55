import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { load, SeatSource, syncOrders } from './load';
import { cpuProfileSummary, renderProfileMarkdown, type ProfileRun } from './profile-report';
import { insertBuyers, startService, type BenchService } from './service';
import { admin, json, post } from './support';

/**
 * `npm run bench:profile` (PROFILE_LABEL=before|after, default before): where the time of the sync
 * order saga goes, and what one order and one pay cost the database.
 *
 * 1. The service (dist/main.js, role all) under `node --cpu-prof`, sync order load from
 *    PROFILE_CONNECTIONS (50) clients for PROFILE_SECONDS (15) after a 3 s warm-up; its profile's
 *    self time grouped by area (bench/profile-report.ts).
 * 2. A fresh service without the profiler: MariaDB's SHOW GLOBAL STATUS counters (Questions,
 *    Com_select, Com_insert, …, Com_commit) over PROFILE_ORDERS (300) sync orders, then as many pays,
 *    each from one client, one after the other; minus what the idle service does in as long (its
 *    pollers), measured just before. The whole server's counters: run it under the services lock.
 * 3. The statements of one order and of one pay, in order, from the general log (the service's
 *    connections only), also under the lock; the log is switched back off at once.
 *
 * Writes bench/profile-<label>.json, and bench/profile.md from every profile-*.json there is.
 */
const LABEL = process.env.PROFILE_LABEL ?? 'before';
const SECONDS = Number(process.env.PROFILE_SECONDS ?? 15);
const CONNECTIONS = Number(process.env.PROFILE_CONNECTIONS ?? 50);
const ORDERS = Number(process.env.PROFILE_ORDERS ?? 300);
const COUNTERS = [
  'Questions',
  'Com_select',
  'Com_insert',
  'Com_insert_select',
  'Com_update',
  'Com_delete',
  'Com_begin',
  'Com_commit',
  'Com_rollback',
  'Com_set_option',
  'Handler_commit',
  'Handler_rollback',
];

async function profileUnderLoad(): Promise<ProfileRun['cpu']> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'seat-saga-cpuprof-'));
  process.env.BENCH_NODE_ARGS = `--cpu-prof --cpu-prof-dir=${dir} --cpu-prof-interval=500`;
  const service = await startService('profile');
  delete process.env.BENCH_NODE_ARGS;
  let measured;
  try {
    const tokens = await insertBuyers(service, CONNECTIONS);
    measured = await syncOrders(
      service,
      tokens,
      new SeatSource(service),
      { connections: CONNECTIONS, duration: SECONDS, warmUp: 3 },
      'POST /api/orders (sync saga) under --cpu-prof',
    );
  } finally {
    await service.stop();
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'));
  if (!file) throw new Error(`no .cpuprofile in ${dir}`);
  const map = path.join(__dirname, '../dist/main.js.map');
  const summary = cpuProfileSummary(JSON.parse(readFileSync(path.join(dir, file), 'utf8')), existsSync(map) ? JSON.parse(readFileSync(map, 'utf8')) : null);
  console.log(`profile: ${path.join(dir, file)}`);
  return {
    ...summary,
    load: { connections: CONNECTIONS, seconds: SECONDS, requestsPerSecond: measured.requestsPerSecond, p50: measured.p50, p99: measured.p99 },
  };
}

async function status(service: BenchService): Promise<Record<string, number>> {
  const [rows] = await service.db.raw(`SHOW GLOBAL STATUS WHERE Variable_name IN (${COUNTERS.map(() => '?').join(',')})`, COUNTERS);
  return Object.fromEntries((rows as Array<{ Variable_name: string; Value: string }>).map((r) => [r.Variable_name, Number(r.Value)]));
}

const diff = (a: Record<string, number>, b: Record<string, number>) => Object.fromEntries(COUNTERS.map((k) => [k, (b[k] ?? 0) - (a[k] ?? 0)]));

/** Counter deltas of `work` (done `n` times), minus the idle rate over as long, per operation. */
async function perOperation(service: BenchService, idlePerSecond: Record<string, number>, n: number, work: (i: number) => Promise<void>) {
  const before = await status(service);
  const started = Date.now();
  for (let i = 0; i < n; i++) await work(i);
  const seconds = (Date.now() - started) / 1000;
  // Let the relay publish what the last operations wrote to the outbox (it is part of their cost).
  await new Promise((resolve) => setTimeout(resolve, 300));
  const delta = diff(before, await status(service));
  const total = seconds + 0.3;
  return Object.fromEntries(COUNTERS.map((k) => [k, Math.max(0, delta[k] - idlePerSecond[k] * total) / n]));
}

/** The statements the service's connections sent while `work` ran, from the general log. */
async function trace(service: BenchService, work: () => Promise<void>): Promise<string[]> {
  const db = service.db;
  const [[saved]] = await db.raw('SELECT @@GLOBAL.general_log AS on_, @@GLOBAL.log_output AS output');
  const database = (await db.raw('SELECT DATABASE() AS d'))[0][0].d as string;
  await db.raw("SET GLOBAL log_output = 'TABLE'");
  await db.raw('TRUNCATE mysql.general_log');
  await db.raw('SET GLOBAL general_log = 1');
  try {
    await work();
    await new Promise((resolve) => setTimeout(resolve, 200));
  } finally {
    await db.raw('SET GLOBAL general_log = ?', [Number(saved.on_)]);
    await db.raw('SET GLOBAL log_output = ?', [saved.output]);
  }
  // The service's own connections: those on its database other than this bench's.
  const [own] = await db.raw('SELECT CONNECTION_ID() AS id');
  const [threads] = await db.raw('SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND ID <> ?', [database, own[0].id]);
  const ids = (threads as Array<{ ID: number }>).map((t) => t.ID);
  if (ids.length === 0) return [];
  const [rows] = await db.raw(
    `SELECT thread_id, CONVERT(argument USING utf8mb4) AS sql_text FROM mysql.general_log WHERE command_type IN ('Query', 'Execute') AND thread_id IN (${ids.map(() => '?').join(',')}) ORDER BY event_time`,
    ids,
  );
  await db.raw('TRUNCATE mysql.general_log');
  return (rows as Array<{ thread_id: number; sql_text: string }>).map((r) => `[conn ${r.thread_id}] ${r.sql_text.replace(/\s+/g, ' ').slice(0, 300)}`);
}

async function databaseCost(): Promise<ProfileRun['database']> {
  const service = await startService('profile-sql');
  try {
    const [token] = await insertBuyers(service, 1);
    const auth = { ...json, Authorization: `Bearer ${token}` };
    const me = (await (await fetch(`${service.url}/api/users/me`, { headers: auth })).json()) as { id: string };
    await post(`${service.url}/api/admin/users/${me.id}/credits`, { amountCents: 1_000_000_000 }, admin);
    const seats = new SeatSource(service);
    await seats.reserve(3 * ORDERS + 100);
    const order = async () => {
      const { showId, seatId } = seats.take();
      const reply = await post(`${service.url}/api/orders`, { showId, seatIds: [seatId] }, auth);
      if (reply.status !== 201) throw new Error(`order failed: ${reply.status} ${JSON.stringify(reply.body)}`);
      return reply.body.id as string;
    };
    const pay = async (orderId: string) => {
      const reply = await post(`${service.url}/api/orders/${orderId}/pay`, { payPassword: 'bench-pass' }, auth);
      if (reply.status !== 200) throw new Error(`pay failed: ${reply.status} ${JSON.stringify(reply.body)}`);
    };
    // Warm-up, and the orders the pays will pay (placed before anything is counted).
    for (let i = 0; i < 20; i++) await pay(await order());
    const toPay: string[] = [];
    for (let i = 0; i < ORDERS + 1; i++) toPay.push(await order());
    await load('GET /livez', { url: `${service.url}/livez` }, { connections: 1, duration: 1, warmUp: 0 });

    const idleSeconds = 5;
    const idleBefore = await status(service);
    await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000));
    const idle = diff(idleBefore, await status(service));
    const idlePerSecond = Object.fromEntries(COUNTERS.map((k) => [k, idle[k] / idleSeconds]));
    const perOrder = await perOperation(service, idlePerSecond, ORDERS, async () => void (await order()));
    const perPay = await perOperation(service, idlePerSecond, ORDERS, async (i) => pay(toPay[i]));
    const orderTrace = await trace(service, async () => void (await order()));
    const payTrace = await trace(service, () => pay(toPay[ORDERS]));
    return { operations: ORDERS, idlePerSecond, perOrder, perPay, orderTrace, payTrace };
  } finally {
    await service.stop();
  }
}

async function main() {
  const cpu = await profileUnderLoad();
  const database = await databaseCost();
  const run: ProfileRun = {
    label: LABEL,
    measuredAt: new Date().toISOString(),
    machine: `${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, Node ${process.version}`,
    cpu,
    database,
  };
  writeFileSync(path.join(__dirname, `profile-${LABEL}.json`), `${JSON.stringify(run, null, 1)}\n`);
  const runs = readdirSync(__dirname)
    .filter((f) => /^profile-[\w-]+\.json$/.test(f))
    .map((f) => JSON.parse(readFileSync(path.join(__dirname, f), 'utf8')) as ProfileRun)
    .sort((a, b) => (a.label === 'before' ? -1 : b.label === 'before' ? 1 : a.measuredAt.localeCompare(b.measuredAt)));
  const markdown = renderProfileMarkdown(runs);
  writeFileSync(path.join(__dirname, 'profile.md'), markdown);
  console.log(`\n${markdown}\nwrote bench/profile-${LABEL}.json and bench/profile.md`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
