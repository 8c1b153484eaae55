import { execSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  checkAccepted,
  checkAcknowledged,
  checkQueues,
  checkMoney,
  checkRecovery,
  checkSagas,
  checkSeats,
  isSettled,
  openStores,
  remaining,
  type AckReport,
  type AsyncReport,
  type QueueReport,
  type MoneyReport,
  type RecoveryReport,
  type Remaining,
  type SagaReport,
  type SeatReport,
  type Stores,
} from './chaos-checks';
import { connectionOf, Deployment, MAIN } from './chaos-deployment';
import { Load } from './chaos-load';
import {
  closeBrokerConnections,
  holdServicesLock,
  restoreServices,
  restoreServicesSync,
  startMariadb,
  startRabbitmq,
  startRedis,
  stopMariadb,
  stopRabbitmq,
  stopRedis,
} from './chaos-services';

/**
 * `npm run chaos`: the chaos drill. Starts its own deployment (two API processes and a worker of
 * dist/main.js, own database and namespace, failpoints on, short timings), seeds buyers and shows,
 * runs a mixed load for CHAOS_SECONDS while it restarts Redis, stops and starts RabbitMQ, closes
 * every broker connection, SIGKILLs the worker and an API process, and shuts MariaDB down and up,
 * one after another; then waits for everything to settle and checks every invariant of the
 * contract from the database. Prints one summary, appends it to bench/chaos.md, exits non-zero
 * when an invariant fails. It stops services every other user of this machine shares: run it
 * under the services lock, `flock /tmp/seat-saga-services.lock npm run chaos`.
 *
 * Settings (environment): CHAOS_SECONDS (90), CHAOS_CONCURRENCY (24), CHAOS_USERS (40),
 * CHAOS_SETTLE_SECONDS (120), CHAOS_FAULTS (redis,rabbitmq,connections,worker,api,mariadb),
 * CHAOS_REDIS_DOWN_MS (4000), CHAOS_RABBITMQ_DOWN_MS (5000), CHAOS_MARIADB_DOWN_MS (5000),
 * CHAOS_GAP_MS (the gap between faults; default: spread over the run), CHAOS_FAILPOINT_EVERY_MS
 * (7000), CHAOS_MAX_REQUESTS (500000), CHAOS_RESULTS (bench/chaos.md; "-" writes nothing),
 * CHAOS_KEEP=1 (keep the database and namespace; a failed run keeps them unless
 * CHAOS_DROP_ON_FAIL=1), CHAOS_STRICT=1 (also fail on 5xx other than 503
 * that no failpoint explains, on DLQ messages and on 503 without Retry-After), CHAOS_MAIN (another
 * build to drill, e.g. a baseline) and CHAOS_LABEL (its name in the results). The service's
 * timings (PAYMENT_WINDOW_MS, …) can be overridden the same way: see bench/chaos-deployment.ts.
 */

const int = (name: string, fallback: number) => {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) {
    process.stderr.write(`${name} must be a whole number, not ${JSON.stringify(raw)}\n`);
    process.exit(2);
  }
  return Number(raw);
};

const FAULT_NAMES = ['redis', 'rabbitmq', 'connections', 'worker', 'api', 'mariadb'] as const;
type FaultName = (typeof FAULT_NAMES)[number];

const settings = {
  seconds: int('CHAOS_SECONDS', 90),
  concurrency: int('CHAOS_CONCURRENCY', 24),
  users: int('CHAOS_USERS', 40),
  settleSeconds: int('CHAOS_SETTLE_SECONDS', 120),
  redisDownMs: int('CHAOS_REDIS_DOWN_MS', 4_000),
  rabbitmqDownMs: int('CHAOS_RABBITMQ_DOWN_MS', 5_000),
  mariadbDownMs: int('CHAOS_MARIADB_DOWN_MS', 5_000),
  gapMs: process.env.CHAOS_GAP_MS ? int('CHAOS_GAP_MS', 0) : null,
  failpointEveryMs: int('CHAOS_FAILPOINT_EVERY_MS', 7_000),
  maxRequests: int('CHAOS_MAX_REQUESTS', 500_000),
  results: process.env.CHAOS_RESULTS ?? path.join(__dirname, 'chaos.md'),
  keep: process.env.CHAOS_KEEP === '1',
  strict: process.env.CHAOS_STRICT === '1',
  faults: (process.env.CHAOS_FAULTS ?? FAULT_NAMES.join(','))
    .split(',')
    .map((f) => f.trim())
    .filter(Boolean) as FaultName[],
};
for (const fault of settings.faults) {
  if (!FAULT_NAMES.includes(fault)) {
    process.stderr.write(`CHAOS_FAULTS: unknown fault ${JSON.stringify(fault)} (use ${FAULT_NAMES.join(', ')})\n`);
    process.exit(2);
  }
}

const started = Date.now();
const stamp = () => `[chaos ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s]`;
const log = (line: string) => console.log(`${stamp()} ${line}`);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const fmt = (value: number) => value.toLocaleString('en-US');

interface FaultRecord {
  name: FaultName;
  label: string;
  startedAt: number;
  endedAt: number;
  /** How long the service was down, or how long the killed process took to come back. */
  downMs: number | null;
  error?: string;
}

let deployment: Deployment | null = null;
let currentFault = 'none yet';
let emergencyStarted = false;

/** Signals and crashes: kill our children, start every service again, drop what we created. */
function emergency(reason: string, exitCode: number): void {
  if (emergencyStarted) process.exit(exitCode);
  emergencyStarted = true;
  console.error(`${stamp()} ${reason}: stopping the drill's processes and restoring MariaDB, Redis and RabbitMQ`);
  deployment?.killAllSync();
  restoreServicesSync((line) => console.error(`${stamp()} ${line}`));
  const drop =
    deployment && !settings.keep
      ? deployment.drop().catch((err) => console.error(`could not drop the namespace: ${(err as Error).message}`))
      : Promise.resolve();
  void Promise.race([drop, sleep(20_000)]).finally(() => process.exit(exitCode));
}
process.on('SIGINT', () => emergency('SIGINT', 130));
process.on('SIGTERM', () => emergency('SIGTERM', 143));
process.on('SIGHUP', () => emergency('SIGHUP', 129));
process.on('uncaughtException', (err) => emergency(`uncaught exception: ${err.stack ?? err}`, 1));
process.on('unhandledRejection', (err) => emergency(`unhandled rejection: ${(err as Error)?.stack ?? err}`, 1));

async function main(): Promise<number> {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` (npm run chaos does)`);
  log(`settings: ${JSON.stringify({ ...settings, results: path.relative(process.cwd(), settings.results) || settings.results })}`);
  // It stops MariaDB, Redis and RabbitMQ for everyone on this machine: never outside the lock.
  await holdServicesLock(log);
  const before = await restoreServices(log); // a service left down by an earlier, killed run
  if (before.length > 0) throw new Error(`services are down before the drill: ${before.join('; ')}`);

  deployment = new Deployment(log);
  const dep = deployment;
  log(`deployment ${dep.namespace}, database ${dep.database}; timings ${JSON.stringify(dep.timings)}`);
  let stores: Stores | null = null;
  let exitCode = 1;
  try {
    await dep.start();
    log(
      `running: ${dep.processes.map((p) => `${p.name}${p.role === 'api' ? ` :${p.port}` : ''}`).join(', ')}; logs in ${path.dirname(dep.logFiles()[0])}/${dep.namespace}-*.log`,
    );

    const paymentWindowMs = Number(dep.timings.PAYMENT_WINDOW_MS);
    const load = new Load({ adminToken: dep.adminToken, liveApis: () => dep.liveApis(), allApis: () => dep.allApiUrls(), paymentWindowMs });
    await load.seedBuyers(settings.users);
    await load.seedShow('Hot show (50 seats)', 5, 10, 1_500, false);
    await load.seedShow('Concert A', 20, 50, 1_000, false);
    await load.seedShow('Concert B', 20, 50, 2_000, false);
    await load.seedShow('Night bus', 10, 40, 2_500, false);
    await load.seedShow('Flash sale (100 seats)', 4, 25, 1_200, true);
    await load.seedShow('Flash sale (1,000 seats)', 20, 50, 900, true);
    const showIds = load.shows.map((s) => s.id);
    log(`seeded ${load.buyers.length} buyers and ${load.shows.length} shows (${fmt(load.shows.reduce((a, s) => a + s.seatIds.length, 0))} seats)`);

    // --- load and faults ---------------------------------------------------------------------
    const faults: FaultRecord[] = [];
    let mariadbOutage: { downAt: number; backAt: number } | null = null;
    const loadStarted = Date.now();
    const loadRun = load.run(settings.concurrency, settings.maxRequests);
    const failpointRun = load.failpoints(settings.failpointEveryMs, 3_000);
    const progress = setInterval(() => log(`${load.recorder.line()}; in flight ${load.inFlight}; fault: ${currentFault}`), 5_000);
    let apiTurn = 0;

    const inject = async (name: FaultName): Promise<FaultRecord> => {
      const record: FaultRecord = { name, label: name, startedAt: Date.now(), endedAt: 0, downMs: null };
      const outage = async (label: string, stop: () => Promise<void>, downMs: number, start: () => Promise<void>) => {
        record.label = label;
        currentFault = `${label}: stopping`;
        log(`fault: ${label}`);
        try {
          await stop();
          const down = Date.now();
          currentFault = `${label}: down`;
          await sleep(downMs);
          return down;
        } finally {
          currentFault = `${label}: starting again`;
          await start();
        }
      };
      try {
        switch (name) {
          case 'redis': {
            const down = await outage('Redis restart (shutdown nosave, every key lost)', stopRedis, settings.redisDownMs, startRedis);
            record.downMs = Date.now() - down;
            break;
          }
          case 'rabbitmq': {
            const down = await outage('RabbitMQ stop_app / start_app', stopRabbitmq, settings.rabbitmqDownMs, startRabbitmq);
            record.downMs = Date.now() - down;
            break;
          }
          case 'connections':
            record.label = 'RabbitMQ close_all_connections';
            currentFault = record.label;
            log(`fault: ${record.label}`);
            await closeBrokerConnections();
            break;
          case 'worker':
            record.label = 'worker SIGKILL';
            currentFault = record.label;
            log(`fault: ${record.label}`);
            record.downMs = await dep.killAndRespawn('worker');
            break;
          case 'api': {
            const victim = `api-${(apiTurn++ % 2) + 1}`;
            record.label = `${victim} SIGKILL`;
            currentFault = record.label;
            log(`fault: ${record.label}`);
            record.downMs = await dep.killAndRespawn(victim);
            break;
          }
          case 'mariadb': {
            let down = 0;
            const back = await outage(
              'MariaDB shutdown / start',
              async () => {
                await stopMariadb();
                down = Date.now();
              },
              settings.mariadbDownMs,
              startMariadb,
            ).then(() => Date.now());
            mariadbOutage ??= { downAt: down, backAt: back };
            record.downMs = back - down;
            break;
          }
        }
      } catch (err) {
        record.error = (err as Error).message;
        log(`!! fault ${name} failed: ${record.error}`);
      }
      record.endedAt = Date.now();
      currentFault = 'none (between faults)';
      log(
        `fault over: ${record.label}${record.downMs !== null ? ` (${(record.downMs / 1000).toFixed(1)} s ${name === 'worker' || name === 'api' ? 'to respawn' : 'down'})` : ''}; ${load.recorder.line()}`,
      );
      return record;
    };

    try {
      const durationMs = settings.seconds * 1000;
      const warmUpMs = Math.min(5_000, durationMs / 6);
      const tailMs = Math.min(10_000, durationMs / 6);
      const slotMs = settings.gapMs ?? Math.max(2_000, (durationMs - warmUpMs - tailMs) / Math.max(1, settings.faults.length));
      await sleep(warmUpMs);
      for (const [i, name] of settings.faults.entries()) {
        const due = loadStarted + warmUpMs + i * slotMs;
        const previous = faults.at(-1);
        const notBefore = previous ? previous.endedAt + 2_000 : 0;
        await sleep(Math.max(0, due - Date.now(), notBefore - Date.now()));
        faults.push(await inject(name));
        if (faults.at(-1)!.error && /did not|failed/.test(faults.at(-1)!.error!)) {
          // A service that does not come back ends the injections (the load goes on to its end).
          const failures = await restoreServices(log);
          if (failures.length > 0) throw new Error(`could not restore: ${failures.join('; ')}`);
        }
      }
      // The load runs CHAOS_SECONDS, and at least `tailMs` after the last fault is over.
      const end = Math.max(loadStarted + durationMs, (faults.at(-1)?.endedAt ?? 0) + tailMs);
      currentFault = 'none (all injected)';
      await sleep(Math.max(0, end - Date.now()));
    } finally {
      load.stop();
      const failures = await restoreServices(log);
      if (failures.length > 0) log(`!! could not restore: ${failures.join('; ')}`);
      log(`load stopping; waiting for ${load.inFlight} requests in flight`);
      await Promise.all([loadRun, failpointRun]);
      clearInterval(progress);
    }
    const loadMs = Date.now() - loadStarted;
    log(`load over after ${(loadMs / 1000).toFixed(1)} s: ${load.recorder.line()}`);

    // Failpoints left armed would fail the settling work; a respawned process has none anyway.
    // (Counted: they are requests too.)
    for (const base of dep.liveApis()) {
      const reply = await load.call('failpoint', 'GET', '/api/admin/failpoints', undefined, { 'X-Admin-Token': dep.adminToken }, base);
      for (const name of Object.keys(reply?.body ?? {}))
        await load.call('failpoint', 'PUT', `/api/admin/failpoints/${name}`, { action: 'off' }, { 'X-Admin-Token': dep.adminToken }, base);
    }

    // --- settle --------------------------------------------------------------------------------
    stores = openStores(connectionOf(dep.database), dep.env.REDIS_URL, dep.namespace);
    const settleStarted = Date.now();
    let left: Remaining | null = null;
    let health: Record<string, number | string> = {};
    let settled = false;
    const healthy = () => Object.values(health).every((status) => status === 200);
    for (let lastLog = 0; Date.now() - settleStarted < settings.settleSeconds * 1000;) {
      left = await remaining(stores, showIds, load.acks.accepted).catch((err) => {
        log(`settle check failed (retrying): ${(err as Error).message}`);
        return null;
      });
      health = await dep.health();
      if (left && isSettled(left) && healthy()) {
        settled = true;
        break;
      }
      if (Date.now() - lastLog > 5_000) {
        lastLog = Date.now();
        log(
          `settling: ${JSON.stringify(left)}; /health ${JSON.stringify(health)}${left?.outboxUnsent ? `; unsent outbox rows: ${await unsentOutbox(stores)}` : ''}`,
        );
      }
      await sleep(500);
    }
    const settleMs = Date.now() - settleStarted;
    log(
      settled
        ? `settled after ${(settleMs / 1000).toFixed(1)} s`
        : `!! not settled after ${settings.settleSeconds} s: ${JSON.stringify(left)}; /health ${JSON.stringify(health)}`,
    );

    // --- checks --------------------------------------------------------------------------------
    const seats = await checkSeats(stores);
    const money = await checkMoney(stores, load.acks);
    const sagas = await checkSagas(stores);
    const accepted = await checkAccepted(stores, load.acks.accepted, showIds);
    const acknowledged = await checkAcknowledged(stores, load.acks);
    const [{ c: outboxLeft }] = await stores.db('outbox').whereNull('sent_at').count({ c: '*' });
    const dlq = await checkQueues(dep.env.AMQP_URL, await dep.queues());
    const outage = mariadbOutage as { downAt: number; backAt: number } | null;
    const recovery = outage ? await checkRecovery(stores, outage.downAt, outage.backAt) : null;
    const serverErrors = serverErrorsInLogs(dep.logFiles());

    const result: RunResult = {
      when: new Date(started),
      commit: commitOf(),
      loadMs,
      settleMs,
      settled,
      left,
      totalMs: 0,
      load,
      faults,
      seats,
      money,
      sagas,
      accepted,
      acknowledged,
      outboxLeft: Number(outboxLeft),
      dlq,
      recovery,
      unexpectedExits: dep.unexpectedExits.length,
      health,
      serverErrors,
      timings: dep.timings,
    };
    const failures = verdict(result);
    result.totalMs = Date.now() - started;
    const summary = render(result, failures);
    console.log(`\n${summary}\n`);
    if (settings.results !== '-') {
      appendResults(settings.results, result, failures, summary);
      log(`summary added to ${path.relative(process.cwd(), settings.results)}`);
    }
    exitCode = failures.length === 0 ? 0 : 1;
  } finally {
    await stores?.close().catch(() => {});
    await dep.stop().catch((err) => log(`stopping the deployment: ${(err as Error).message}`));
    const failures = await restoreServices(log);
    if (failures.length > 0) {
      log(`!! could not restore: ${failures.join('; ')}`);
      exitCode = 1;
    }
    // A failed run keeps what it checked, to be looked at (CHAOS_DROP_ON_FAIL=1 drops it anyway).
    const keep = settings.keep || (exitCode !== 0 && process.env.CHAOS_DROP_ON_FAIL !== '1');
    if (keep) log(`kept database ${dep.database} and namespace ${dep.namespace} (npx tsx tools/drop-namespace.ts ${dep.namespace} ${dep.database})`);
    else
      await dep.drop().then(
        () => log(`dropped database ${dep.database}, namespace ${dep.namespace}`),
        (err) => log(`!! could not drop the namespace: ${(err as Error).message}`),
      );
  }
  return exitCode;
}

interface RunResult {
  when: Date;
  commit: string;
  loadMs: number;
  settleMs: number;
  settled: boolean;
  left: Remaining | null;
  totalMs: number;
  load: Load;
  faults: FaultRecord[];
  seats: SeatReport;
  money: MoneyReport;
  sagas: SagaReport;
  accepted: AsyncReport;
  acknowledged: AckReport;
  outboxLeft: number;
  dlq: QueueReport;
  recovery: RecoveryReport | null;
  unexpectedExits: number;
  /** /health of every process once settled (or when the settle wait gave up). */
  health: Record<string, number | string>;
  serverErrors: Map<string, number>;
  timings: Record<string, string>;
}

/** The invariants that failed (empty: the run passes). */
function verdict(r: RunResult): string[] {
  const failed: string[] = [];
  const s = r.seats;
  if (s.doubleSold > 0) failed.push(`1: ${s.doubleSold} seats sold or held twice`);
  if (s.countMismatches + s.holdMismatches + s.leakedHolds + s.viewMismatches > 0) {
    failed.push(`1: seat accounting (count ${s.countMismatches}, holds ${s.holdMismatches}, leaked holds ${s.leakedHolds}, Redis view ${s.viewMismatches})`);
  }
  if (r.money.centsLost > 0 || r.money.negativeBalances > 0)
    failed.push(`2: ${r.money.centsLost} cents unaccounted for, ${r.money.negativeBalances} negative balances`);
  if (r.sagas.notEnded > 0) failed.push(`4: ${r.sagas.notEnded} sagas not ended`);
  if (r.sagas.compensatedWithOrder > 0) failed.push(`4: ${r.sagas.compensatedWithOrder} orders of compensated sagas still exist`);
  if (r.accepted.lost + r.accepted.releasedWithOrder + r.accepted.pendingInRedis > 0) {
    failed.push(
      `5: accepted orders lost ${r.accepted.lost}, released yet persisted ${r.accepted.releasedWithOrder}, pending in Redis ${r.accepted.pendingInRedis}`,
    );
  }
  if (r.acknowledged.total > 0) failed.push(`acknowledged writes lost: ${JSON.stringify(r.acknowledged)}`);
  if (r.load.acks.idempotencyMismatches.length > 0) failed.push(`Idempotency-Key replays that differ: ${r.load.acks.idempotencyMismatches.length}`);
  if (r.outboxLeft > 0) failed.push(`outbox not drained: ${r.outboxLeft}`);
  if (!r.settled) failed.push(`not settled within ${settings.settleSeconds} s`);
  const unhealthy = Object.entries(r.health).filter(([, status]) => status !== 200);
  if (unhealthy.length > 0) failed.push(`processes not healthy after the faults: ${unhealthy.map(([name, status]) => `${name} ${status}`).join(', ')}`);
  const faultErrors = r.faults.filter((f) => f.error);
  if (faultErrors.length > 0) failed.push(`faults that went wrong: ${faultErrors.map((f) => `${f.name}: ${f.error}`).join('; ')}`);
  if (settings.strict && r.load.recorder.unexpected5xxCount > 0)
    failed.push(`strict: ${r.load.recorder.unexpected5xxCount} 5xx other than 503 that no failpoint explains`);
  if (settings.strict && r.dlq.total > 0) failed.push(`strict: ${r.dlq.total} DLQ messages`);
  if (settings.strict && r.load.recorder.status503WithoutRetryAfter > 0)
    failed.push(`strict: ${r.load.recorder.status503WithoutRetryAfter} 503 answers without Retry-After`);
  return failed;
}

const top = (map: Map<string, number>, count: number) =>
  [...map.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([key, value]) => `    ${fmt(value).padStart(7)}  ${key}`);

function render(r: RunResult, failures: string[]): string {
  const rec = r.load.recorder;
  const c = rec.classes;
  const faultLine = r.faults.map((f) => `${f.label}${f.downMs !== null ? ` (${(f.downMs / 1000).toFixed(1)} s)` : ''}${f.error ? ' FAILED' : ''}`).join('; ');
  const skipped = settings.faults.length - r.faults.length;
  const lines = [
    `== chaos drill, ${r.when.toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${r.commit} ==`,
    `load                      ${(r.loadMs / 1000).toFixed(0)} s, ${settings.concurrency} loops, ${fmt(rec.total)} requests: 2xx ${fmt(c['2xx'])}, 3xx ${fmt(c['3xx'])}, 4xx ${fmt(c['4xx'])}, 5xx ${fmt(c['5xx'])} (503 ${fmt(rec.status503)}), no answer ${fmt(c['no answer'])}`,
    `faults injected           ${r.faults.length}${skipped > 0 ? ` (${skipped} skipped)` : ''}: ${faultLine}`,
    `failpoints armed          ${r.load.failpointsArmed} (SAGA_FAILED answers they caused: ${fmt(rec.injectedSagaFailed)})`,
    `settle                    ${r.settled ? `${(r.settleMs / 1000).toFixed(1)} s` : `NOT settled after ${settings.settleSeconds} s: ${JSON.stringify(r.left)}`}`,
    `seats double-sold         ${r.seats.doubleSold}   (shows ${r.seats.shows}, seats ${fmt(r.seats.seatsTotal)}: sold ${fmt(r.seats.sold)}, held ${r.seats.held}, available ${fmt(r.seats.available)}; count mismatches ${r.seats.countMismatches}, hold mismatches ${r.seats.holdMismatches}, leaked holds ${r.seats.leakedHolds}, Redis view mismatches ${r.seats.viewMismatches} over ${r.seats.viewsChecked} views, ${r.seats.viewLagged} more that caught up within 6 s)`,
    ...r.seats.viewDetails.map((detail) => `    ${detail}`),
    `cents lost                ${fmt(r.money.centsLost)}   (users ${r.money.users}: ledger ≠ balance ${r.money.ledgerMismatchUsers} users / ${r.money.ledgerMismatchCents} ¢, negative balances ${r.money.negativeBalances}, payments without sale ${r.money.paymentsWithoutSaleCents} ¢, sales without payment ${r.money.salesWithoutPaymentCents} ¢, amount mismatches ${r.money.amountMismatchCents} ¢, credits ≠ acknowledged ${r.money.creditMismatchCents} ¢)`,
    `accepted orders lost      ${r.accepted.lost}   (accepted ${fmt(r.accepted.accepted)}: persisted ${fmt(r.accepted.persisted)}, released ${fmt(r.accepted.released)} ${JSON.stringify(r.accepted.releasedReasons)}; released yet persisted ${r.accepted.releasedWithOrder}; pending in Redis ${r.accepted.pendingInRedis})`,
    `sagas not ended           ${r.sagas.notEnded}   (of ${fmt(r.sagas.total)}: ${Object.entries(r.sagas.byStatus)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(', ')}; by type ${Object.entries(r.sagas.byType)
      .map(([k, v]) => `${k} ${fmt(v)}`)
      .join(', ')}; orders of compensated sagas ${r.sagas.compensatedWithOrder})`,
    `acknowledged writes lost  ${r.acknowledged.total}   (201 orders ${r.acknowledged.ordersLost}, 200 pays ${r.acknowledged.paysLost}, refunds ${r.acknowledged.refundsLost}, cancels ${r.acknowledged.cancelsLost}; acknowledged: ${fmt(r.load.acks.orders.size)} orders, ${fmt(r.load.acks.paid.size)} pays, ${fmt(r.load.acks.refunded.size)} refunds, ${fmt(r.load.acks.cancelled.size)} cancels)`,
    `idempotent retries        ${fmt(r.load.acks.idempotentRetries)} (replayed ${fmt(r.load.acks.idempotentReplays)}), answers that differ ${r.load.acks.idempotencyMismatches.length}${r.load.acks.idempotencyMismatches.length ? `: ${r.load.acks.idempotencyMismatches.slice(0, 3).join('; ')}` : ''}`,
    `503 without Retry-After   ${fmt(rec.status503WithoutRetryAfter)}`,
    `5xx other than 503        ${fmt(rec.other5xx)}   (SAGA_FAILED from failpoints ${fmt(rec.injectedSagaFailed)}; not explained by a failpoint ${fmt(rec.unexpected5xxCount)})`,
    ...top(rec.unexpected5xx, 8),
    `DLQ messages left         ${r.dlq.total}${r.dlq.error ? ` (could not read: ${r.dlq.error})` : ''}${r.dlq.total ? ` ${JSON.stringify(Object.fromEntries(Object.entries(r.dlq.byQueue).filter(([, v]) => v > 0)))}` : ''}`,
    `other queues not empty    ${Object.keys(r.dlq.others).length ? JSON.stringify(r.dlq.others) : 'none'}`,
    `outbox unsent             ${r.outboxLeft}`,
    `DB return → last saga end ${r.recovery?.dbReturnToLastSagaEndedMs != null ? `${fmt(r.recovery.dbReturnToLastSagaEndedMs)} ms (${r.recovery.sagasEndedAfterOutage} sagas begun before it ended after the outage)` : 'n/a (no MariaDB outage)'}`,
    `process exits not asked   ${r.unexpectedExits}`,
    `/health after settling    ${Object.entries(r.health)
      .map(([name, status]) => `${name} ${status}`)
      .join(', ')}`,
    `no answer, by cause       ${
      [...rec.noAnswer.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 6)
        .map(([k, v]) => `${k} ${v}`)
        .join('; ') || 'none'
    }`,
    `5xx logged by the service (top):`,
    ...(r.serverErrors.size ? top(r.serverErrors, 8) : ['    none']),
    `answers by operation:`,
    ...byOperation(rec.outcomes),
    `run took                  ${(r.totalMs / 1000).toFixed(0)} s in all`,
    failures.length === 0
      ? 'verdict                   PASS: every invariant holds'
      : `verdict                   FAIL:\n${failures.map((f) => `    - ${f}`).join('\n')}`,
  ];
  return lines.join('\n');
}

/** Unsent outbox rows by exchange and routing key, and whether a relay holds them under its lease. */
async function unsentOutbox(stores: Stores): Promise<string> {
  const rows: Array<{ exchange: string; routing_key: string; leased: number; c: string }> = await stores
    .db('outbox')
    .whereNull('sent_at')
    .groupBy('exchange', 'routing_key', 'leased')
    .select(
      'exchange',
      'routing_key',
      stores.db.raw('(claimed_until IS NOT NULL AND claimed_until > UTC_TIMESTAMP(3)) AS leased'),
      stores.db.raw('COUNT(*) AS c'),
    )
    .catch(() => []);
  return rows.map((r) => `${r.exchange}/${r.routing_key}${Number(r.leased) ? ' (leased)' : ''} ×${r.c}`).join(', ');
}

/** "order: 201 ×812, 409 SEATS_TAKEN ×97, …" per operation, busiest first. */
function byOperation(outcomes: Map<string, number>): string[] {
  const ops = new Map<string, Array<[string, number]>>();
  for (const [key, count] of outcomes) {
    const [, op, answer] = /^(.*?) (\d{3}.*)$/.exec(key) ?? [key, key, '?'];
    ops.set(op, [...(ops.get(op) ?? []), [answer, count]]);
  }
  return [...ops.entries()]
    .map(([op, answers]) => ({ op, total: answers.reduce((a, [, c]) => a + c, 0), answers: answers.sort((a, b) => b[1] - a[1]) }))
    .sort((a, b) => b.total - a.total)
    .map(({ op, total, answers }) => `    ${op} (${fmt(total)}): ${answers.map(([answer, c]) => `${answer} ×${fmt(c)}`).join(', ')}`);
}

/** The service's own log lines for 5xx answers ("request failed"), grouped by code and error. */
function serverErrorsInLogs(files: string[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n')) {
      if (!line.includes('"request failed"')) continue;
      try {
        const entry = JSON.parse(line);
        if (entry.code === 'SERVICE_UNAVAILABLE') continue;
        const key = `${entry.code} ${entry.method} ${String(entry.path).replace(/\d+/g, ':id')}: ${String(entry.error).replace(/\d+/g, 'N').slice(0, 140)}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      } catch {
        // not a JSON line
      }
    }
  }
  return counts;
}

function commitOf(): string {
  if (process.env.CHAOS_LABEL) return process.env.CHAOS_LABEL;
  try {
    const head = execSync('git rev-parse --short HEAD', { cwd: path.join(__dirname, '..'), encoding: 'utf8' }).trim();
    const dirty = execSync('git status --porcelain -- src migrations', { cwd: path.join(__dirname, '..'), encoding: 'utf8' }).trim();
    return dirty ? `${head}+uncommitted src` : head;
  } catch {
    return 'unknown';
  }
}

const MARKER = '<!-- chaos: new rows go above this line -->';
const HEADER = `# Chaos drill results

\`flock /tmp/seat-saga-services.lock npm run chaos\` (see the README's "Chaos drill"): two API
processes and a worker under a mixed load while Redis, RabbitMQ, the broker connections, the
worker, an API process and MariaDB fail one after another; then every invariant is checked from
the database. One row per run, newest last; each run's full summary is further down.

| date (UTC) | commit | load s | requests | 2xx | 4xx | 503 | 5xx ≠ 503 (failpoint / other) | no answer | faults | seats double-sold | cents lost | accepted orders lost | sagas not ended | acked writes lost | DLQ left | DB return → last saga ended (ms) | verdict |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${MARKER}

## Runs
`;

function appendResults(file: string, r: RunResult, failures: string[], summary: string): void {
  const rec = r.load.recorder;
  const row = [
    r.when.toISOString().slice(0, 16).replace('T', ' '),
    `\`${r.commit}\``,
    (r.loadMs / 1000).toFixed(0),
    fmt(rec.total),
    fmt(rec.classes['2xx']),
    fmt(rec.classes['4xx']),
    fmt(rec.status503),
    `${fmt(rec.other5xx)} (${fmt(rec.injectedSagaFailed)} / ${fmt(rec.unexpected5xxCount)})`,
    fmt(rec.classes['no answer']),
    `${r.faults.length}${r.faults.some((f) => f.error) ? ' (errors)' : ''}`,
    r.seats.doubleSold,
    fmt(r.money.centsLost),
    r.accepted.lost,
    r.sagas.notEnded,
    r.acknowledged.total,
    r.dlq.total,
    r.recovery?.dbReturnToLastSagaEndedMs != null ? fmt(r.recovery.dbReturnToLastSagaEndedMs) : 'n/a',
    failures.length === 0 ? 'PASS' : `**FAIL**: ${failures.join('; ').replace(/\|/g, '/')}`,
  ];
  let text = existsSync(file) ? readFileSync(file, 'utf8') : HEADER;
  if (!text.includes(MARKER)) text = HEADER + text;
  text = text.replace(MARKER, `| ${row.join(' | ')} |\n${MARKER}`);
  const timings = Object.entries(r.timings)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');
  text = `${text.trimEnd()}\n\n### ${r.when.toISOString().slice(0, 16).replace('T', ' ')} UTC, commit \`${r.commit}\`\n\nSettings: CHAOS_SECONDS=${settings.seconds} CHAOS_CONCURRENCY=${settings.concurrency} CHAOS_USERS=${settings.users} CHAOS_FAULTS=${settings.faults.join(',')}; service: ${timings}.\n\n\`\`\`\n${summary}\n\`\`\`\n`;
  writeFileSync(file, text);
}

main().then(
  (code) => process.exit(code),
  (err) => emergency(`the drill failed: ${(err as Error).stack ?? err}`, 1),
);
