import { randomBytes } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import knex from 'knex';
import winston from 'winston';
import { startApp, type App } from '../../src/app';
import { loadConfig, type Config, type Role } from '../../src/config';
import { topologyNames } from '../../src/messaging/topology';
import { dropNamespace } from '../../tools/drop-namespace';
import { Api } from './http';
import { checkMoneyInvariant } from './invariants';

/** One id per `npm test` run; every app of the run gets its own database and NAMESPACE from it. */
const RUN = process.env.TEST_RUN_ID ?? randomBytes(3).toString('hex');
let counter = 0;

export const BASE_ENV = {
  DATABASE_URL: process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/seat_saga',
  REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
  AMQP_URL: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  // On the clusters (npm run test:cluster): a Redis Cluster and quorum queues instead.
  ...(process.env.REDIS_CLUSTER_NODES ? { REDIS_CLUSTER_NODES: process.env.REDIS_CLUSTER_NODES } : {}),
  ...(process.env.QUEUE_TYPE ? { QUEUE_TYPE: process.env.QUEUE_TYPE } : {}),
};

export interface Isolation {
  database: string;
  namespace: string;
}

/** A fresh database name and namespace for a test file. */
export function isolate(label: string): Isolation {
  counter += 1;
  return {
    database: `seat_saga_test_${RUN}_${counter}`,
    namespace: `seat-saga-test-${RUN}-${counter}-${label}`,
  };
}

export function testEnv(iso: Isolation, overrides: Record<string, string> = {}): Record<string, string> {
  const url = new URL(BASE_ENV.DATABASE_URL);
  url.pathname = `/${iso.database}`;
  return {
    ...BASE_ENV,
    DATABASE_URL: url.toString(),
    NAMESPACE: iso.namespace,
    PORT: '0',
    ADMIN_TOKEN: 'test-admin-token-0123456789',
    ENABLE_FAILPOINTS: '1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'error',
    SWEEP_INTERVAL_MS: '200',
    OUTBOX_POLL_MS: '100',
    RETRY_DELAY_MS: '100',
    MAX_DELIVERIES: '3',
    ...overrides,
  };
}

/** Log lines an app wrote, kept for assertions (and printed when TEST_LOG_LEVEL is set). */
export class LogCapture extends winston.transports.Console {
  readonly lines: Array<Record<string, any>> = [];
  override log(info: any, next: () => void) {
    this.lines.push(info);
    if (process.env.TEST_LOG_LEVEL) return super.log!(info, next);
    next();
  }
}

export interface TestApp extends App {
  env: Record<string, string>;
  logs: LogCapture;
  isolation: Isolation;
}

export async function startTestApp(iso: Isolation, overrides: Record<string, string> = {}, role: Role = 'all'): Promise<TestApp> {
  const env = testEnv(iso, overrides);
  const config: Config = loadConfig(env);
  const logs = new LogCapture({ level: 'debug' });
  const logger = winston.createLogger({
    level: process.env.TEST_LOG_LEVEL ?? 'info',
    defaultMeta: { role, namespace: iso.namespace },
    format: winston.format.combine(winston.format.timestamp(), winston.format.json()),
    transports: [logs],
  });
  const app = await startApp(config, role, { logger });
  return Object.assign(app, { env, logs, isolation: iso });
}

/**
 * Drops everything an isolated run created: database, exchanges and queues, Redis keys. Before the
 * database goes, checks the contract's money invariant over every user it holds, so every test
 * file ends with it checked (a violation fails the file's "after all" hook).
 */
export async function cleanup(iso: Isolation, apps: Array<App | null | undefined>): Promise<void> {
  const running = apps.filter((a): a is App => Boolean(a));
  const topology = running[0]?.topology;
  for (const app of running) await app.stop().catch(() => {});
  let moneyViolation: unknown = null;
  await checkMoneyOfDatabase(iso.database).catch((err) => (moneyViolation = err));
  await dropNamespace({
    namespace: iso.namespace,
    database: iso.database,
    databaseUrl: BASE_ENV.DATABASE_URL,
    redisUrl: BASE_ENV.REDIS_URL,
    redisClusterNodes: BASE_ENV.REDIS_CLUSTER_NODES,
    amqpUrl: BASE_ENV.AMQP_URL,
    known: topology && topologyNames(topology),
  });
  if (moneyViolation) throw moneyViolation;
}

async function checkMoneyOfDatabase(database: string): Promise<void> {
  const url = new URL(BASE_ENV.DATABASE_URL);
  const db = knex({
    client: 'mysql2',
    connection: {
      host: url.hostname,
      port: Number(url.port || 3306),
      user: decodeURIComponent(url.username || 'root'),
      password: decodeURIComponent(url.password),
      database,
      supportBigNumbers: true,
      bigNumberStrings: true,
    },
    pool: { min: 0, max: 1 },
  });
  try {
    const [tables] = await db.raw(`SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'ledger_entries'`);
    if (Number(tables[0].n) === 1) await checkMoneyInvariant({ db });
  } catch (err) {
    if ((err as { code?: string }).code === 'ER_BAD_DB_ERROR') return; // the file never created its database
    throw err;
  } finally {
    await db.destroy();
  }
}

/**
 * The service as a separate OS process (the same code, run with tsx), for tests that kill a
 * process or need a second one. Resolves once it logged that it runs.
 */
export async function spawnService(env: Record<string, string>, role: Role): Promise<ChildProcess & { output: string[] }> {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', path.join(__dirname, '../../src/main.ts'), role], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  }) as ChildProcess & { output: string[] };
  child.output = [];
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`service did not start:\n${child.output.join('')}`)), 30_000);
    const onData = (chunk: Buffer) => {
      child.output.push(chunk.toString());
      if (/seat-saga (listening|worker running)/.test(chunk.toString())) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`service exited with ${code}:\n${child.output.join('')}`));
    });
  });
  await ready;
  return child;
}

/** Kills a child service (SIGKILL: no cleanup) and waits until it is gone. */
export async function kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await gone;
}

/** What most sale tests start from: an app, its HTTP client, a buyer and a show. */
export interface Sale {
  app: TestApp;
  api: Api;
  buyer: Awaited<ReturnType<Api['createUser']>>;
  show: Awaited<ReturnType<Api['createShow']>>;
  /** The next `n` seats of the show no test has used yet. */
  freshSeats(n: number): string[];
}

export async function startSale(iso: Isolation, options: { env?: Record<string, string>; rows?: number; seatsPerRow?: number } = {}): Promise<Sale> {
  const app = await startTestApp(iso, options.env);
  const api = new Api(app.url!);
  const buyer = await api.createUser('ann');
  const show = await api.createShow(options.rows ?? 3, options.seatsPerRow ?? 10);
  let next = 0;
  return { app, api, buyer, show, freshSeats: (n) => show.seatIds.slice(next, (next += n)) };
}
