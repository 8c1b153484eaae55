import { exec, execSync, spawn } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import amqp from 'amqplib';

/**
 * The machine's shared services as the chaos drill stops and starts them: MariaDB, Redis and
 * RabbitMQ's app, with the same commands the outage tests and .ci/run use. Every stop is bounded
 * and followed by a start; restoreServicesSync() starts whatever is down, from a signal handler
 * too (it blocks, which is what a handler about to exit wants).
 *
 * Overrides, for a machine where the services run elsewhere (e.g. docker compose):
 * REDIS_START_COMMAND, RABBITMQCTL (as in the tests), CHAOS_MARIADB_STOP_COMMAND,
 * CHAOS_MARIADB_START_COMMAND, CHAOS_MARIADB_PING_COMMAND, CHAOS_REDIS_STOP_COMMAND,
 * CHAOS_REDIS_PING_COMMAND.
 */
const REDIS_START =
  process.env.REDIS_START_COMMAND ??
  `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log`;
const REDIS_STOP = process.env.CHAOS_REDIS_STOP_COMMAND ?? 'redis-cli -h 127.0.0.1 -p 6379 shutdown nosave';
const REDIS_PING = process.env.CHAOS_REDIS_PING_COMMAND ?? 'redis-cli -h 127.0.0.1 -p 6379 ping';
const RABBITMQCTL = process.env.RABBITMQCTL ?? 'rabbitmqctl';
const MARIADB_STOP = process.env.CHAOS_MARIADB_STOP_COMMAND ?? 'mariadb-admin -uroot -h127.0.0.1 shutdown';
const MARIADB_START = process.env.CHAOS_MARIADB_START_COMMAND ?? 'start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd';
const MARIADB_PING = process.env.CHAOS_MARIADB_PING_COMMAND ?? 'mariadb-admin -uroot -h127.0.0.1 ping';
const AMQP_URL = process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672';

export type ServiceName = 'mariadb' | 'redis' | 'rabbitmq';

/** Which services this process has stopped and not yet seen back (restore starts at least these). */
const stoppedByUs = new Set<ServiceName>();

interface ShellResult {
  ok: boolean;
  output: string;
}

function sh(command: string, timeoutMs = 60_000): Promise<ShellResult> {
  return new Promise((resolve) => {
    exec(command, { timeout: timeoutMs }, (err, stdout, stderr) => resolve({ ok: !err, output: `${stdout}${stderr}`.trim() }));
  });
}

function shSync(command: string, timeoutMs = 60_000): boolean {
  try {
    execSync(command, { timeout: timeoutMs, stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` every 250 ms until it is true; false after `timeoutMs`. */
async function until(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; ;) {
    if (await check()) return true;
    if (Date.now() > deadline) return false;
    await sleep(250);
  }
}

export const redisUp = async () => {
  const reply = await sh(REDIS_PING, 5_000);
  return reply.ok && /PONG/.test(reply.output);
};
export const mariadbUp = async () => (await sh(MARIADB_PING, 5_000)).ok;
/** RabbitMQ's app is up when an AMQP connection opens (`rabbitmqctl status` answers with the app stopped too). */
export async function rabbitmqUp(): Promise<boolean> {
  try {
    const conn = await amqp.connect(AMQP_URL, { timeout: 3_000 });
    await conn.close().catch(() => {});
    return true;
  } catch {
    return false;
  }
}
const mariadbProcessGone = async () => !(await sh('pgrep -x mariadbd', 5_000)).ok;

export class ServiceError extends Error {}

async function mustBe(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  if (!(await until(check, timeoutMs))) throw new ServiceError(`${what} within ${timeoutMs / 1000} s`);
}

export async function stopRedis(): Promise<void> {
  stoppedByUs.add('redis');
  await sh(REDIS_STOP, 15_000); // fails harmlessly: the connection drops as it shuts down
  await mustBe('Redis did not stop', async () => !(await redisUp()), 15_000);
}

export async function startRedis(): Promise<void> {
  if (!(await redisUp())) await sh(REDIS_START, 30_000);
  await mustBe('Redis did not answer PING', redisUp, 30_000);
  stoppedByUs.delete('redis');
}

export async function stopRabbitmq(): Promise<void> {
  stoppedByUs.add('rabbitmq');
  const reply = await sh(`${RABBITMQCTL} stop_app`, 90_000);
  if (!reply.ok) throw new ServiceError(`rabbitmqctl stop_app failed: ${reply.output}`);
}

export async function startRabbitmq(): Promise<void> {
  const reply = await sh(`${RABBITMQCTL} start_app`, 120_000);
  if (!reply.ok) throw new ServiceError(`rabbitmqctl start_app failed: ${reply.output}`);
  await mustBe('RabbitMQ did not accept an AMQP connection', rabbitmqUp, 60_000);
  stoppedByUs.delete('rabbitmq');
}

export async function closeBrokerConnections(): Promise<void> {
  const reply = await sh(`${RABBITMQCTL} close_all_connections "chaos"`, 60_000);
  if (!reply.ok) throw new ServiceError(`rabbitmqctl close_all_connections failed: ${reply.output}`);
}

export async function stopMariadb(): Promise<void> {
  stoppedByUs.add('mariadb');
  await sh(MARIADB_STOP, 90_000);
  await mustBe('MariaDB did not stop', async () => !(await mariadbUp()) && (await mariadbProcessGone()), 90_000);
}

/** Starts MariaDB and resolves once it answers ping (the moment the database is back). */
export async function startMariadb(): Promise<void> {
  if (!(await mariadbUp())) {
    const reply = await sh(MARIADB_START, 30_000);
    if (!reply.ok) throw new ServiceError(`could not start MariaDB: ${reply.output}`);
  }
  await mustBe('MariaDB did not answer ping', mariadbUp, 90_000);
  stoppedByUs.delete('mariadb');
}

/** Starts every service that is down (or that this process stopped), and waits for each; async. */
export async function restoreServices(log: (line: string) => void): Promise<string[]> {
  const failures: string[] = [];
  const attempt = async (name: ServiceName, up: () => Promise<boolean>, start: () => Promise<void>) => {
    if (!stoppedByUs.has(name) && (await up())) return;
    log(`restoring ${name}`);
    await start().catch((err) => failures.push(`${name}: ${(err as Error).message}`));
  };
  await attempt('mariadb', mariadbUp, startMariadb);
  await attempt('redis', redisUp, startRedis);
  await attempt('rabbitmq', rabbitmqUp, startRabbitmq);
  return failures;
}

/**
 * The same from a signal or crash handler, blocking: starts MariaDB, Redis and RabbitMQ's app
 * whatever state they are in (each start is a no-op when the service runs) and waits (bounded)
 * for MariaDB and Redis to answer.
 */
export function restoreServicesSync(log: (line: string) => void): void {
  const pingUntil = (command: string, seconds: number) => {
    for (let i = 0; i < seconds * 2; i++) {
      if (shSync(command, 5_000)) return true;
      execSync('sleep 0.5');
    }
    return false;
  };
  if (!shSync(MARIADB_PING, 5_000)) {
    log('restoring MariaDB');
    // A shutdown in progress must end first, or the new server cannot take the data directory.
    for (let i = 0; i < 120 && shSync('pgrep -x mariadbd', 5_000) && !shSync(MARIADB_PING, 5_000); i++) execSync('sleep 0.5');
    shSync(MARIADB_START, 30_000);
    if (!pingUntil(MARIADB_PING, 90)) log('MariaDB did not come back: start it by hand');
  }
  if (!shSync(`${REDIS_PING} | grep -q PONG`, 5_000)) {
    log('restoring Redis');
    shSync(REDIS_START, 30_000);
    if (!pingUntil(`${REDIS_PING} | grep -q PONG`, 30)) log('Redis did not come back: start it by hand');
  }
  log('making sure RabbitMQ runs (rabbitmqctl start_app)');
  if (!shSync(`${RABBITMQCTL} start_app`, 120_000)) log('rabbitmqctl start_app failed: start RabbitMQ by hand');
  stoppedByUs.clear();
}

/**
 * The lock every run that stops services takes (the test runs too): `flock <file> <command>`.
 * The drill is meant to run under it; run bare (`npm run chaos`), it takes it itself.
 */
const SERVICES_LOCK = process.env.CHAOS_LOCK_FILE ?? '/tmp/seat-saga-services.lock';

/** True when the lock on SERVICES_LOCK belongs to a process this one descends from (`flock … npm run chaos`). */
function lockHeldByAncestor(): boolean {
  let inode: number;
  try {
    inode = statSync(SERVICES_LOCK).ino;
    const owners = readFileSync('/proc/locks', 'utf8')
      .split('\n')
      .filter((line) => /\bFLOCK\b/.test(line) && !line.includes('->')) // "->": a waiter, not the owner
      .map((line) => line.trim().split(/\s+/))
      .filter((fields) => fields[5]?.split(':').at(-1) === String(inode))
      .map((fields) => Number(fields[4]));
    for (let pid = process.pid; pid > 1;) {
      if (owners.includes(pid)) return true;
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      pid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]); // ppid
    }
  } catch {
    return false; // no lock file yet, or no /proc: not held by us
  }
  return false;
}

/**
 * Makes sure the drill holds the services lock: held by an ancestor already, or taken now by a
 * `flock` child (waiting for other runs to finish) that holds it until this process exits,
 * whatever way it exits (its stdin is a pipe from this process; EOF ends it).
 */
export async function holdServicesLock(log: (line: string) => void): Promise<void> {
  if (lockHeldByAncestor()) {
    log(`services lock ${SERVICES_LOCK} held (by the flock this drill runs under)`);
    return;
  }
  log(`taking the services lock ${SERVICES_LOCK} (waits for test runs that hold it)`);
  const holder = spawn('flock', [SERVICES_LOCK, '-c', 'echo locked; read _'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve, reject) => {
    holder.stdout.once('data', () => resolve());
    holder.once('error', (err) => reject(new ServiceError(`could not run flock: ${err.message}`)));
    holder.once('exit', (code) => reject(new ServiceError(`flock exited with ${code} before taking ${SERVICES_LOCK}`)));
  });
  // Neither the holder nor its pipes keep this process alive; the pipe closes when it exits.
  holder.unref();
  (holder.stdin as unknown as { unref?: () => void }).unref?.();
  (holder.stdout as unknown as { unref?: () => void }).unref?.();
  log('services lock taken');
}
