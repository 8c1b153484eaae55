import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import knex, { type Knex } from 'knex';
import { dropNamespace } from '../tools/drop-namespace';

/**
 * The service under benchmark: the built program (dist/main.js) in its own process, with its
 * own database and namespace, so the load generator (this process) does not share its CPU
 * time slice accounting and nothing of a developer's data is touched.
 */
export interface BenchService {
  url: string;
  db: Knex;
  env: Record<string, string>;
  stop(): Promise<void>;
}

export const ADMIN_TOKEN = 'bench-admin-token-0123456789';

export async function startService(name: string, extraEnv: Record<string, string> = {}): Promise<BenchService> {
  const base = new URL(process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/seat_saga');
  const database = `seat_saga_bench_${name}`;
  base.pathname = `/${database}`;
  const env: Record<string, string> = {
    DATABASE_URL: base.toString(),
    REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
    AMQP_URL: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
    NAMESPACE: `seat-saga-bench-${name}`,
    PORT: '0',
    ADMIN_TOKEN,
    ENABLE_FAILPOINTS: '1',
    LOG_LEVEL: 'warn',
    DB_POOL_MAX: '30',
    ...extraEnv,
  };
  await dropEverything(env, database);

  // The service logs straight into a file: stdout to a pipe is synchronous on Linux, and a pipe
  // read by this (busy) load generator would block the service's event loop when it fills.
  const logFile = path.join(os.tmpdir(), `seat-saga-bench-${name}.log`);
  const logFd = openSync(logFile, 'w');
  const child = spawn(process.execPath, [...(process.env.BENCH_NODE_ARGS?.split(' ') ?? []), path.join(__dirname, '../dist/main.js'), 'all'], {
    env: { ...process.env, ...env, LOG_LEVEL: 'info' },
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  let exited = false;
  child.once('exit', () => (exited = true));
  const url = await (async () => {
    for (const deadline = Date.now() + 60_000; Date.now() < deadline && !exited; ) {
      const match = /listening on (http:\/\/[\d.:]+)/.exec(readFileSync(logFile, 'utf8'));
      if (match) return match[1];
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`service did not start:\n${readFileSync(logFile, 'utf8')}`);
  })();
  console.log(`service ${name} at ${url}, log in ${logFile}`);

  const db = knex({ client: 'mysql2', connection: { ...connectionOf(base), database, supportBigNumbers: true, bigNumberStrings: true, timezone: 'Z' } });
  let stopped = false;
  return {
    url,
    db,
    env,
    async stop() {
      if (stopped) return;
      stopped = true;
      await db.destroy();
      await stopChild(child);
      await dropEverything(env, database);
    },
  };
}

function connectionOf(url: URL) {
  return { host: url.hostname, port: Number(url.port || 3306), user: decodeURIComponent(url.username || 'root'), password: decodeURIComponent(url.password) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const gone = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await gone;
}

/** Removes a benchmark's database, exchanges, queues and Redis keys. */
function dropEverything(env: Record<string, string>, database: string): Promise<void> {
  return dropNamespace({ namespace: env.NAMESPACE, database, databaseUrl: env.DATABASE_URL, redisUrl: env.REDIS_URL, amqpUrl: env.AMQP_URL });
}
