import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../src/config';
import { dropNamespace } from '../tools/drop-namespace';

/**
 * The drill's own deployment of the built service (dist/main.js): its own database and
 * namespace, two API processes on distinct ports and one worker, each a separate OS process
 * logging into its own file. A process the drill kills is started again on the same port; one
 * that exits on its own is counted and started again too.
 */

const BASE_DATABASE_URL = process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/seat_saga';
/** The build under test: this tree's dist/main.js, or CHAOS_MAIN (e.g. an older build, for a baseline). */
export const MAIN = process.env.CHAOS_MAIN ? path.resolve(process.env.CHAOS_MAIN) : path.join(__dirname, '../dist/main.js');
const READY = /seat-saga listening on (http:\/\/[\d.:[\]]+)|seat-saga worker running.*?"metrics":"(http:\/\/[^"]+)\/metrics"/;

/**
 * Short timings, so that expiry, the sweeper and the reconciler all act while the drill runs.
 * Each can be overridden from the drill's environment (e.g. PAYMENT_WINDOW_MS=20000 npm run chaos).
 */
const TIMINGS: Record<string, string> = {
  PAYMENT_WINDOW_MS: '10000', // unpaid orders expire during the run
  SAGA_STALE_MS: '5000', // a saga of a killed API process is compensated 5 s later
  COMPENSATION_STALE_MS: '10000', // a compensation stuck (DLQ, lost message) is published again
  SWEEP_INTERVAL_MS: '500',
  OUTBOX_POLL_MS: '200',
  ORDER_MAX_QUEUE_DELAY_MS: '3000',
  RESERVATION_RECONCILE_AFTER_MS: '8000',
  REPEAT_SUBMIT_WINDOW_MS: '2000',
  PAY_PASSWORD_WINDOW_MS: '5000', // the lock-out after wrong pay passwords passes during the run
  PAY_PASSWORD_MAX_ATTEMPTS: '5',
  SHUTDOWN_TIMEOUT_MS: '10000',
  // RETRY_DELAY_MS and MAX_DELIVERIES keep their defaults (2 s, 5 deliveries): the DLQ figure is
  // what a default installation would show.
};

export interface ChaosProcess {
  name: string;
  role: 'api' | 'worker';
  port: number;
  url: string | null;
  /** Where it answers /health: the API's own port, the worker's WORKER_PORT (a new one each start). */
  opsUrl: string | null;
  child: ChildProcess | null;
  alive: boolean;
  /** Set while the drill kills or stops it on purpose. */
  expectingExit: boolean;
  spawns: number;
  logFiles: string[];
}

export interface ExitRecord {
  name: string;
  code: number | null;
  signal: string | null;
  at: number;
}

export class Deployment {
  readonly id = randomBytes(3).toString('hex');
  readonly database = `seat_saga_chaos_${this.id}`;
  readonly namespace = `seat-saga-chaos-${this.id}`;
  readonly adminToken = `chaos-admin-${randomBytes(12).toString('hex')}`;
  readonly env: Record<string, string>;
  readonly processes: ChaosProcess[] = [];
  /** Exits nobody asked for (a crash of the service: a finding). */
  readonly unexpectedExits: ExitRecord[] = [];
  private stopping = false;

  constructor(private readonly log: (line: string) => void) {
    const url = new URL(BASE_DATABASE_URL);
    url.pathname = `/${this.database}`;
    const timings = Object.fromEntries(Object.entries(TIMINGS).map(([key, value]) => [key, process.env[key] ?? value]));
    this.env = {
      DATABASE_URL: url.toString(),
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
      AMQP_URL: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
      NAMESPACE: this.namespace,
      ADMIN_TOKEN: this.adminToken,
      AUTH_SECRET: randomBytes(24).toString('hex'),
      ENABLE_FAILPOINTS: '1',
      LOG_LEVEL: 'info', // the line that says a process is ready is an info line
      WORKER_PORT: '0',
      ...timings,
    };
    loadConfig(this.env); // a bad override stops the drill here, naming the variable
  }

  /**
   * The queues and exchanges the contract names (RabbitMQ topology section). The management API
   * lists the rest (retry tiers, the expiry wait queue) when it answers; these are what is known
   * without it.
   */
  knownNames(): { queues: string[]; exchanges: string[] } {
    const ns = this.namespace;
    const work = WORK_QUEUES.map((q) => `${ns}.${q}`);
    return {
      queues: [...work, ...work.map((q) => `${q}.retry`), ...work.map((q) => `${q}.dlq`), `${ns}.expiry.wait-${this.env.PAYMENT_WINDOW_MS}ms`],
      exchanges: EXCHANGES.map((e) => `${ns}.${e}`),
    };
  }

  /** Every queue of the namespace: the contract's work queues and their twins, and any other the management API lists. */
  async queues(): Promise<string[]> {
    const names = new Set(this.knownNames().queues);
    for (const name of await managementQueues(this.namespace)) names.add(name);
    return [...names];
  }

  get timings(): Record<string, string> {
    return Object.fromEntries(Object.keys(TIMINGS).map((key) => [key, this.env[key]]));
  }

  /** API 1 first (it creates the database and migrates), then API 2 and the worker. */
  async start(): Promise<void> {
    await dropNamespace(this.target()).catch(() => {}); // a leftover of the same id, should there be one
    // Only the last drill's logs are kept (one drill runs at a time, under the services lock).
    for (const file of readdirSync(os.tmpdir())) {
      if (/^seat-saga-chaos-[0-9a-f]{6}-.*\.log$/.test(file) && !file.startsWith(this.namespace)) rmSync(path.join(os.tmpdir(), file), { force: true });
    }
    const [port1, port2] = [await freePort(), await freePort()];
    const api1 = this.define('api-1', 'api', port1);
    const api2 = this.define('api-2', 'api', port2);
    const worker = this.define('worker', 'worker', 0);
    await this.spawn(api1);
    await Promise.all([this.spawn(api2), this.spawn(worker)]);
  }

  private define(name: string, role: 'api' | 'worker', port: number): ChaosProcess {
    const proc: ChaosProcess = { name, role, port, url: null, opsUrl: null, child: null, alive: false, expectingExit: false, spawns: 0, logFiles: [] };
    this.processes.push(proc);
    return proc;
  }

  /** Base URLs of the API processes that run now. */
  liveApis(): string[] {
    return this.processes.filter((p) => p.role === 'api' && p.alive && p.url).map((p) => p.url!);
  }

  allApiUrls(): string[] {
    return this.processes.filter((p) => p.role === 'api').map((p) => `http://127.0.0.1:${p.port}`);
  }

  byName(name: string): ChaosProcess {
    const proc = this.processes.find((p) => p.name === name);
    if (!proc) throw new Error(`no process ${name}`);
    return proc;
  }

  /** Starts `proc` (again) and resolves once its log says it is ready (bounded: 90 s). */
  async spawn(proc: ChaosProcess): Promise<void> {
    proc.spawns += 1;
    const logFile = path.join(os.tmpdir(), `${this.namespace}-${proc.name}-${proc.spawns}.log`);
    proc.logFiles.push(logFile);
    const fd = openSync(logFile, 'w');
    const env = { ...process.env, ...this.env, PORT: String(proc.port) };
    // Straight into a file: a pipe read by this busy load generator would stall the child when full.
    const child = spawn(process.execPath, ['--enable-source-maps', MAIN, proc.role], { env, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    proc.child = child;
    proc.expectingExit = false;
    let exited = false;
    child.once('exit', (code, signal) => {
      exited = true;
      proc.alive = false;
      if (proc.child !== child) return;
      proc.child = null;
      if (proc.expectingExit || this.stopping) return;
      this.unexpectedExits.push({ name: proc.name, code, signal, at: Date.now() });
      this.log(`!! ${proc.name} exited on its own (code ${code}, signal ${signal}); log ${logFile}; starting it again`);
      setTimeout(() => {
        if (!this.stopping && this.unexpectedExits.length <= 20)
          this.spawn(proc).catch((err) => this.log(`!! could not restart ${proc.name}: ${(err as Error).message}`));
      }, 1_000);
    });
    for (const deadline = Date.now() + 90_000; Date.now() < deadline && !exited;) {
      const match = READY.exec(readFileSync(logFile, 'utf8'));
      if (match) {
        proc.url = proc.role === 'api' ? `http://127.0.0.1:${proc.port}` : null;
        proc.opsUrl = proc.url ?? match[2] ?? null;
        proc.alive = true;
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    if (!exited) {
      proc.expectingExit = true;
      child.kill('SIGKILL');
    }
    throw new Error(`${proc.name} did not start within 90 s (log ${logFile}):\n${readFileSync(logFile, 'utf8').slice(-2_000)}`);
  }

  /** SIGKILL (no cleanup, like a power cut), wait until it is gone, then start it again. */
  async killAndRespawn(name: string): Promise<number> {
    const proc = this.byName(name);
    const child = proc.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      proc.expectingExit = true;
      proc.alive = false;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await gone;
    }
    const started = Date.now();
    await this.spawn(proc);
    return Date.now() - started;
  }

  /** SIGTERM every process (graceful), SIGKILL what is left after 15 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.processes.map(async (proc) => {
        const child = proc.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return;
        proc.expectingExit = true;
        const gone = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await gone;
        clearTimeout(timer);
      }),
    );
  }

  /** From a signal or crash handler: SIGKILL every child this drill started, by its pid. */
  killAllSync(): void {
    this.stopping = true;
    for (const proc of this.processes) {
      const child = proc.child;
      if (child && child.exitCode === null && child.signalCode === null) {
        proc.expectingExit = true;
        try {
          child.kill('SIGKILL');
        } catch {
          // already gone
        }
      }
    }
  }

  target() {
    return {
      namespace: this.namespace,
      database: this.database,
      databaseUrl: BASE_DATABASE_URL,
      redisUrl: this.env.REDIS_URL,
      amqpUrl: this.env.AMQP_URL,
      known: this.knownNames(),
    };
  }

  /** Drops the database, the namespace's queues and exchanges, and its Redis keys. */
  drop(): Promise<void> {
    return dropNamespace(this.target());
  }

  /** `/health` of every process (200 = connected to MariaDB, Redis and RabbitMQ), by name. */
  async health(): Promise<Record<string, number | string>> {
    const answers: Record<string, number | string> = {};
    for (const proc of this.processes) {
      if (!proc.alive || !proc.opsUrl) {
        answers[proc.name] = 'not running';
        continue;
      }
      answers[proc.name] = await fetch(`${proc.opsUrl}/health`, { signal: AbortSignal.timeout(5_000) }).then(
        (res) => res.status,
        (err) => String((err as Error).message),
      );
    }
    return answers;
  }

  /** Every log file of every process, in start order. */
  logFiles(): string[] {
    return this.processes.flatMap((p) => p.logFiles);
  }
}

/** The work queues of the contract's topology (each with `.retry` and `.dlq` twins), under `<ns>.`. */
const WORK_QUEUES = ['compensation.seat-release', 'compensation.order-delete', 'compensation.balance-restore', 'expiry.due', 'orders.persist'];
const EXCHANGES = ['compensation', 'dead-letter', 'expiry', 'orders'];

/** Queue names under `<namespace>.` as the RabbitMQ management API lists them (none when it does not answer). */
async function managementQueues(namespace: string): Promise<string[]> {
  const base = process.env.RABBITMQ_MANAGEMENT_URL ?? 'http://127.0.0.1:15672';
  const res = await fetch(`${base}/api/queues/%2F?columns=name`, {
    headers: { Authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
    signal: AbortSignal.timeout(10_000),
  }).catch(() => null);
  if (!res?.ok) return [];
  return ((await res.json()) as Array<{ name: string }>).map((q) => q.name).filter((name) => name.startsWith(`${namespace}.`));
}

/** A port nothing listens on right now (the drill reuses it for every start of one API process). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** Connection settings of the drill's own database (for the checks), from DATABASE_URL. */
export function connectionOf(database: string) {
  const url = new URL(BASE_DATABASE_URL);
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database,
  };
}
