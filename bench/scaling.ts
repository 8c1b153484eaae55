import knex from 'knex';
import winston from 'winston';
import { loadConfig } from '../src/config';
import { knexConfig } from '../src/db/database';
import { SagaRetention } from '../src/retention/saga-retention';
import { asyncOrders, load, naiveOrders, SeatSource, syncOrders, type LoadSettings } from './load';
import { seedSagas } from './seed-sagas';
import { insertBuyers, startNaiveBaseline, startService } from './service';
import type { Measured } from './support';

/**
 * Two sections of `npm run bench`:
 * - scaling: the sync order saga, async accept, the naive baseline and GET /livez at 1, 10, 50 and
 *   200 concurrent clients (BENCH_SCALING_LEVELS), each point BENCH_SCALING_DURATION s (default 5)
 *   after a 1 s warm-up;
 * - history: the sync and async paths on an empty saga log, then with BENCH_HISTORY_SAGAS (default
 *   1,000,000) ended sagas and their steps already in it (bench/seed-sagas.ts, ended 31 to 61 days
 *   ago), then the sync path again while the retention purge (src/retention) deletes that history.
 */

export interface ScalingPoint {
  clients: number;
  livez: Measured;
  sync: Measured;
  async: Measured;
  naive: Measured;
}

const DAY_MS = 86_400_000;

export const SCALING_LEVELS = (process.env.BENCH_SCALING_LEVELS ?? '1,10,50,200').split(',').map(Number);
const SCALING_DURATION = Number(process.env.BENCH_SCALING_DURATION ?? 5);
export const HISTORY_SAGAS = Number(process.env.BENCH_HISTORY_SAGAS ?? 1_000_000);

/** Buyers enough that none orders twice for a show at `perSecond` for a run of `settings`. */
const plannedFor = (perSecond: number, settings: LoadSettings) => Math.ceil(perSecond * (settings.duration + settings.warmUp) * 1.25);

export async function scaling(levels = SCALING_LEVELS): Promise<ScalingPoint[]> {
  const service = await startService('scaling');
  const points: Array<Omit<ScalingPoint, 'naive'>> = [];
  let tokens: string[];
  try {
    tokens = await insertBuyers(service, Math.max(...levels));
    const seats = new SeatSource(service);
    let buyers: string[] = [];
    for (const clients of levels) {
      const settings: LoadSettings = { connections: clients, duration: SCALING_DURATION, warmUp: 1 };
      const livez = await load('GET /livez', { url: `${service.url}/livez` }, settings);
      const sync = await syncOrders(service, tokens, seats, settings);
      const planned = plannedFor(livez.requestsPerSecond, settings);
      if (buyers.length < Math.min(planned, 100_000)) buyers = buyers.concat(await insertBuyers(service, Math.min(planned, 100_000) - buyers.length));
      const accept = await asyncOrders(service, service.url, 'POST /api/orders/async (accept, role all)', buyers, planned, settings);
      points.push({ clients, livez, sync, async: accept });
    }
  } finally {
    await service.stop();
  }
  const naive = await startNaiveBaseline(1_000_000_000);
  try {
    const result: ScalingPoint[] = [];
    for (const point of points)
      result.push({ ...point, naive: await naiveOrders(naive, tokens, { connections: point.clients, duration: SCALING_DURATION, warmUp: 1 }) });
    return result;
  } finally {
    await naive.stop();
  }
}

export interface HistoryResult {
  sagas: number;
  steps: number;
  seedSeconds: number;
  empty: { sync: Measured; async: Measured };
  history: { sync: Measured; async: Measured };
  /** The sync path while the purge ran over the history, and what the purge did meanwhile. */
  purging: { sync: Measured; sagasPurged: number; rowsPurged: number; sagasPerSecond: number; batches: number; slowestBatchMs: number };
}

export async function history(settings: LoadSettings, count = HISTORY_SAGAS): Promise<HistoryResult> {
  const service = await startService('history');
  try {
    const tokens = await insertBuyers(service, settings.connections);
    const seats = new SeatSource(service);
    const livez = await load('GET /livez', { url: `${service.url}/livez` }, { ...settings, duration: 3 });
    const planned = plannedFor(livez.requestsPerSecond, settings);
    const buyers = await insertBuyers(service, Math.min(planned, 100_000));
    const paths = async (label: string) => ({
      sync: await syncOrders(service, tokens, seats, settings, `POST /api/orders (sync saga), ${label}`),
      async: await asyncOrders(service, service.url, `POST /api/orders/async (accept, role all), ${label}`, buyers, planned, settings),
    });
    const empty = await paths('empty saga log');

    // The history: ended sagas (none in flight) and their steps, all past a 30-day retention.
    const seeded = await seedSagas(service.db, { count, days: 30, endMs: Date.now() - 31 * DAY_MS, inFlight: false, steps: true, batch: 5_000 });
    await service.db.raw('ANALYZE TABLE sagas, saga_steps');
    const [{ n: steps }] = await service.db('saga_steps').count({ n: '*' });
    const withHistory = await paths(`${(count / 1e6).toLocaleString('en-US')}M sagas in the log`);

    // The purge in this process (its own pool of 2 connections), over the same history.
    const purgeDb = knex(knexConfig(loadConfig(service.env), 2));
    const logger = winston.createLogger({ level: 'warn', transports: [new winston.transports.Console()] });
    let rows = 0;
    const retention = new SagaRetention(purgeDb, logger, { retentionDays: 30, onPurged: (_, n) => (rows += n) });
    try {
      const started = Date.now();
      const pass = retention.purgeOnce();
      const sync = await syncOrders(service, tokens, seats, settings, 'POST /api/orders (sync saga), while the retention purge runs');
      await retention.stop();
      const result = await pass;
      if (result.finished) console.log('warning: the purge finished before the measured run did');
      const purging = {
        sync,
        sagasPurged: result.deleted.sagas,
        rowsPurged: rows,
        sagasPerSecond: result.deleted.sagas / ((Date.now() - started) / 1000),
        batches: result.batches,
        slowestBatchMs: result.slowestBatchMs,
      };
      console.log(
        `retention purge during the run: ${purging.sagasPurged} sagas (${rows} rows) in ${result.batches} batches, ${purging.sagasPerSecond.toFixed(0)} sagas/s, slowest batch ${result.slowestBatchMs} ms`,
      );
      return { sagas: seeded.rows, steps: Number(steps), seedSeconds: seeded.ms / 1000, empty, history: withHistory, purging };
    } finally {
      await purgeDb.destroy();
    }
  } finally {
    await service.stop();
  }
}
