import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildSync } from 'esbuild';
import knex, { type Knex } from 'knex';
import { topologyOf } from '../src/app';
import { loadConfig, type Role } from '../src/config';
import { topologyNames } from '../src/messaging/topology';
import { TokenSigner } from '../src/users/tokens';
import { hashPayPassword } from '../src/users/users';
import { dropNamespace } from '../tools/drop-namespace';

/**
 * The programs under benchmark, each in its own process so the load generator (this process)
 * does not share its event loop: the service (dist/main.js) in any role, with its own database
 * and namespace so nothing of a developer's data is touched, and the naive baseline
 * (bench/naive-server.ts) with its own database.
 */
export interface BenchProcess {
  /** null for a worker, which serves no HTTP. */
  url: string | null;
  stop(): Promise<void>;
}

export interface BenchService {
  url: string;
  db: Knex;
  env: Record<string, string>;
  /** Starts another process of this service (same database, namespace and secrets) in `role`. */
  spawn(role: Role): Promise<BenchProcess>;
  /** Stops every process of the service, then drops its database, queues and keys. */
  stop(): Promise<void>;
}

export const ADMIN_TOKEN = 'bench-admin-token-0123456789';
/** Fixed, so that the bench mints buyers' tokens itself (creating users over HTTP hashes with argon2, ~80/s). */
const AUTH_SECRET = 'bench-auth-secret-0123456789abcdef0123';
const signer = new TokenSigner(Buffer.from(AUTH_SECRET));
/** Read at each start, so a script (bench/profile.ts) may set it for one service only. */
const nodeArgs = () => process.env.BENCH_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
const BASE_DATABASE_URL = process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/seat_saga';

/** The service in `role` ('all' or 'api': the first process serves HTTP). */
export async function startService(name: string, extraEnv: Record<string, string> = {}, role: Exclude<Role, 'worker'> = 'all'): Promise<BenchService> {
  const database = `seat_saga_bench_${name}`;
  const env: Record<string, string> = {
    DATABASE_URL: databaseUrl(database),
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
    AMQP_URL: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
    NAMESPACE: `seat-saga-bench-${name}`,
    PORT: '0',
    ADMIN_TOKEN,
    AUTH_SECRET,
    ENABLE_FAILPOINTS: '1',
    LOG_LEVEL: 'warn',
    DB_POOL_MAX: '30',
    ...extraEnv,
  };
  await dropEverything(env, database);

  const main = path.join(__dirname, '../dist/main.js');
  // At info: the line that says a process is ready is an info line.
  const childEnv = { ...process.env, ...env, LOG_LEVEL: 'info' };
  const children: ChildProcess[] = [];
  const startRole = async (role: Role, logName: string): Promise<BenchProcess> => {
    const started = await startNode(main, [role], childEnv, logName, /listening on (http:\/\/[\d.:]+)|worker running/);
    children.push(started.child);
    return { url: started.ready[1] ?? null, stop: () => stopChild(started.child) };
  };
  const first = await startRole(role, `seat-saga-bench-${name}`).catch(async (err) => {
    await dropEverything(env, database);
    throw err;
  });
  const db = knex({ client: 'mysql2', connection: { ...connectionOf(database), supportBigNumbers: true, bigNumberStrings: true, timezone: 'Z' } });
  let spawned = 0;
  let stopped = false;
  return {
    url: first.url!,
    db,
    env,
    spawn: (role) => startRole(role, `seat-saga-bench-${name}-${role}-${++spawned}`),
    async stop() {
      if (stopped) return;
      stopped = true;
      await db.destroy();
      await Promise.all(children.map(stopChild));
      await dropEverything(env, database);
    },
  };
}

/** Hashed once per bench run: argon2 takes its time by design. */
let payPasswordHash: Promise<string> | undefined;

/**
 * `count` new users in the service's database, inserted directly, and their bearer tokens (in
 * id order). All share one pay password hash ('bench-pass').
 */
export async function insertBuyers(service: BenchService, count: number): Promise<string[]> {
  const hash = await (payPasswordHash ??= hashPayPassword('bench-pass'));
  const [{ last }] = await service.db('users').max({ last: 'id' });
  const rows = Array.from({ length: count }, (_, i) => ({ name: `bench-buyer-${i}`, balance_cents: 0, pay_password_hash: hash }));
  for (let i = 0; i < rows.length; i += 5_000) await service.db('users').insert(rows.slice(i, i + 5_000));
  const ids: string[] = await service
    .db('users')
    .where('id', '>', last ?? 0)
    .orderBy('id')
    .pluck('id');
  return ids.map((id) => signer.issue(id));
}

/** The naive baseline's process, its database, and the show it sells. */
export interface NaiveBaseline {
  url: string;
  showId: string;
  stop(): Promise<void>;
}

/**
 * bench/naive-server.ts, bundled by esbuild as `npm run build` bundles the service, on a fresh
 * database whose one show has `stock` tickets. Tokens of insertBuyers are valid there too.
 */
export async function startNaiveBaseline(stock: number): Promise<NaiveBaseline> {
  const database = 'seat_saga_bench_naive';
  const admin = knex({ client: 'mysql2', connection: connectionOf(), pool: { min: 0, max: 1 } });
  const dropAndDisconnect = () => admin.raw('DROP DATABASE IF EXISTS ??', [database]).finally(() => admin.destroy());
  try {
    await admin.raw('DROP DATABASE IF EXISTS ??', [database]);
    await admin.raw('CREATE DATABASE ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [database]);
    await admin.raw('CREATE TABLE ??.stock (show_id BIGINT UNSIGNED PRIMARY KEY, available INT NOT NULL)', [database]);
    await admin.raw(
      'CREATE TABLE ??.orders (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, user_id BIGINT UNSIGNED NOT NULL, show_id BIGINT UNSIGNED NOT NULL, quantity INT NOT NULL, created_at DATETIME(3) NOT NULL DEFAULT NOW(3))',
      [database],
    );
    const showId = '1';
    await admin.raw('INSERT INTO ??.stock (show_id, available) VALUES (?, ?)', [database, showId, stock]);

    const bundle = path.join(__dirname, '../dist/naive-server.js');
    buildSync({
      entryPoints: [path.join(__dirname, 'naive-server.ts')],
      bundle: true,
      platform: 'node',
      target: 'node20',
      packages: 'external',
      outfile: bundle,
      logLevel: 'warning',
    });
    const env = { ...process.env, DATABASE_URL: databaseUrl(database), AUTH_SECRET, PORT: '0', DB_POOL_MAX: '30' };
    const { child, ready } = await startNode(bundle, [], env, 'seat-saga-bench-naive', /listening on (http:\/\/[\d.:]+)/);
    return {
      url: ready[1],
      showId,
      async stop() {
        await stopChild(child);
        await dropAndDisconnect();
      },
    };
  } catch (err) {
    await dropAndDisconnect();
    throw err;
  }
}

/**
 * Runs `script` under node (with BENCH_NODE_ARGS, e.g. --cpu-prof) until its log shows `ready`.
 * The process logs straight into a file: stdout to a pipe is synchronous on Linux, and a pipe
 * read by this (busy) load generator would block the child's event loop when it fills.
 */
async function startNode(
  script: string,
  args: string[],
  env: NodeJS.ProcessEnv,
  logName: string,
  ready: RegExp,
): Promise<{ child: ChildProcess; ready: RegExpExecArray }> {
  const logFile = path.join(os.tmpdir(), `${logName}.log`);
  const logFd = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...nodeArgs(), script, ...args], { env, stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  let exited = false;
  child.once('exit', () => (exited = true));
  for (const deadline = Date.now() + 60_000; Date.now() < deadline && !exited;) {
    const match = ready.exec(readFileSync(logFile, 'utf8'));
    if (match) {
      console.log(`${logName}: ${match[1] ?? 'running'}, log in ${logFile}`);
      return { child, ready: match };
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await stopChild(child);
  throw new Error(`${logName} did not start:\n${readFileSync(logFile, 'utf8')}`);
}

function databaseUrl(database: string): string {
  const url = new URL(BASE_DATABASE_URL);
  url.pathname = `/${database}`;
  return url.toString();
}

function connectionOf(database?: string) {
  const url = new URL(BASE_DATABASE_URL);
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database,
  };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await gone;
}

/**
 * Removes a benchmark's database, exchanges, queues and Redis keys. The queue and exchange names
 * are derived from the service's own topology: the RabbitMQ management API, which would list
 * them, is not on every machine.
 */
function dropEverything(env: Record<string, string>, database: string): Promise<void> {
  const topology = topologyOf(loadConfig(env));
  return dropNamespace({
    namespace: env.NAMESPACE,
    database,
    databaseUrl: env.DATABASE_URL,
    redisUrl: env.REDIS_URL,
    amqpUrl: env.AMQP_URL,
    known: topologyNames(topology),
  });
}
