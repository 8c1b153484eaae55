import knex, { type Knex } from 'knex';
import { escape } from 'mysql2';
import { loadConfig } from '../src/config';
import { knexConfig } from '../src/db/database';

/**
 * Seeds the saga log (`sagas`) with N realistic rows, for the operator benchmark (bench/operator.ts)
 * or alone:
 *
 *   tsx bench/seed-sagas.ts --count 1000000 [--database seat_saga_bench_seed] [--fresh]
 *                           [--days 30] [--users 50000] [--batch 5000] [--in-flight 1] [--seed 1]
 *                           [--steps]   (also each saga's saga_steps rows)
 *
 * Alone, it creates the database (DATABASE_URL's server, `--database`, default
 * seat_saga_bench_seed; `--fresh` drops it first) and runs the service's own knex migrations on it.
 * Drop it afterwards with `mysql -e 'DROP DATABASE seat_saga_bench_seed'`.
 *
 * What it writes is what the service itself writes, in the same proportions a busy sale would:
 * order sagas (most COMPLETED, some COMPENSATED: SEATS_TAKEN at seats_check, failures at
 * seats_hold, calc_money, order_add), then per order a pay saga (most COMPLETED, some failed at
 * pay_check: wrong password or balance, a few at pay_money or pay_order_update), or a release
 * (expiry, cancel; refunds of paid orders later), each with the columns SagaLog fills (payload,
 * failed_tag, error_code, error, compensations_pending, compensation_publishes, the three times).
 * A few of the last six hours' sagas are still RUNNING or COMPENSATING (`--in-flight 0`: none;
 * a service running on this database with the default SAGA_STALE_MS / COMPENSATION_STALE_MS would
 * compensate or republish those, with payloads that name no real seats). Only `sagas` is written
 * (saga_steps too with `--steps`; orders and users are not: the saga search and stats read `sagas` alone).
 *
 * Ids are snowflakes with the layout of src/support/ids.ts, ((ms - EPOCH) << 22) | (worker << 12) |
 * seq, minted at each saga's created_at over the `days` before the seeding started: ids minted
 * by a service afterwards are all greater. Each row takes its own (worker, seq) pair (row index
 * split in 10 + 12 bits), so ids are unique whatever the times, up to 4,194,304 rows in one
 * table; a second seeding into the same table continues the row index from its row count.
 * Rows go in with multi-row INSERTs of `batch` rows, one transaction each, while the next batch
 * is being generated.
 */

const EPOCH_MS = 1_767_225_600_000n;
const MAX_ROWS = 1 << 22;
const DAY_MS = 86_400_000;

export interface SeedOptions {
  count: number;
  /** The sagas span the `days` before `endMs` (default 30 days before now). */
  days?: number;
  endMs?: number;
  users?: number;
  batch?: number;
  /** RUNNING and COMPENSATING sagas in the last six hours (default true). */
  inFlight?: boolean;
  seed?: number;
  /**
   * Also writes each saga's steps (saga_steps, as SagaLog records them: every step started up to
   * the one that failed, a release's one step), in the same transaction as its batch (default false).
   */
  steps?: boolean;
  /** Progress lines (default console.log); every ~2 s and at the end. */
  log?: (line: string) => void;
}

export interface SeedResult {
  rows: number;
  ms: number;
  rowsPerSecond: number;
  startMs: number;
  endMs: number;
  byStatus: Record<string, number>;
  byType: Record<string, number>;
  byTag: Record<string, number>;
}

type Status = 'RUNNING' | 'COMPLETED' | 'COMPENSATING' | 'COMPENSATED';

interface Row {
  id: bigint;
  type: string;
  status: Status;
  payload: string;
  orderId: bigint;
  userId: number;
  failedTag: string | null;
  errorCode: string | null;
  error: string | null;
  pending: number;
  publishes: number;
  createdMs: number;
  updatedMs: number;
  finishedMs: number | null;
}

/** mulberry32: fast, seedable, good enough for a data mix. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The snowflake minted at `ms` for row `index` (its own worker and sequence bits). */
export function snowflakeAt(ms: number, index: number): bigint {
  return ((BigInt(Math.floor(ms)) - EPOCH_MS) << 22n) | (BigInt((index >>> 12) & 1023) << 12n) | BigInt(index & 4095);
}

const datetime = (ms: number) => new Date(ms).toISOString().slice(0, 23).replace('T', ' ');

/** Generates the rows, flow by flow (an order, then its pay or release), in time order. */
class Generator {
  private readonly rand: () => number;
  private readonly users: number;
  private readonly frequentUsers: number;
  private readonly spanMs: number;
  private rowIndex: number;
  private flowIndex: number;
  private readonly inFlight: boolean;
  private readonly pending: Row[] = [];
  private made = 0;
  readonly byStatus: Record<string, number> = { RUNNING: 0, COMPLETED: 0, COMPENSATING: 0, COMPENSATED: 0 };
  readonly byType: Record<string, number> = {};
  readonly byTag: Record<string, number> = {};

  constructor(
    private readonly count: number,
    private readonly startMs: number,
    private readonly endMs: number,
    options: { users: number; seed: number; inFlight: boolean; firstIndex: number },
  ) {
    this.rand = random(options.seed);
    this.users = options.users;
    this.frequentUsers = Math.max(1, Math.floor(options.users / 25));
    this.spanMs = endMs - startMs;
    this.rowIndex = options.firstIndex;
    this.flowIndex = options.firstIndex;
    this.inFlight = options.inFlight;
  }

  /** The next `n` rows (fewer at the end), sorted by id. */
  take(n: number): Row[] {
    // Follow-ups (pays, releases) land minutes to days after their order: keep a window of them
    // and hand out only what is older than the newest order generated, so a batch is near id order.
    while (this.made < this.count && this.pending.length < n * 2) this.flow();
    this.pending.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    const out = this.made >= this.count ? this.pending.splice(0, n) : this.pending.splice(0, Math.min(n, this.pending.length - n));
    for (const row of out) {
      this.byStatus[row.status]++;
      this.byType[row.type] = (this.byType[row.type] ?? 0) + 1;
      if (row.failedTag) this.byTag[row.failedTag] = (this.byTag[row.failedTag] ?? 0) + 1;
    }
    return out;
  }

  private user(): number {
    // A fifth of the sagas come from the 4% of users who buy most.
    return this.rand() < 0.2 ? 1 + Math.floor(this.rand() * this.frequentUsers) : 1 + Math.floor(this.rand() * this.users);
  }

  private add(row: Omit<Row, 'id'>): void {
    if (this.made >= this.count || row.createdMs >= this.endMs) return;
    this.pending.push({ ...row, id: snowflakeAt(row.createdMs, this.rowIndex++) });
    this.made++;
  }

  /** One order and what followed it. */
  private flow(): void {
    const r = this.rand;
    // Evenly over the span, by rows made so far (an order is followed by ~0.9 more sagas).
    const at = this.startMs + Math.floor(((this.made + r()) / this.count) * this.spanMs);
    const orderId = snowflakeAt(at - 1, this.flowIndex++);
    const userId = this.user();
    const showId = 1 + Math.floor(r() * 400);
    const seatCount = r() < 0.6 ? 1 : r() < 0.75 ? 2 : 1 + Math.ceil(r() * 5);
    const firstSeat = showId * 1000 + Math.floor(r() * 900);
    const seatIds = Array.from({ length: seatCount }, (_, i) => String(firstSeat + i));
    const priceCents = 1500 + 500 * Math.floor(r() * 10);
    const expiresMs = at + 15 * 60_000;
    const orderPayload = JSON.stringify({
      orderId: String(orderId),
      userId: String(userId),
      showId: String(showId),
      seatIds,
      priceCents,
      expiresAt: new Date(expiresMs).toISOString(),
    });
    const releasePayload = (reason: string) => JSON.stringify({ orderId: String(orderId), userId: String(userId), showId: String(showId), seatIds, reason });
    const recent = this.inFlight && at > this.endMs - 6 * 3_600_000;
    const base = { orderId, userId, pending: 0, publishes: 0, errorCode: null, error: null, failedTag: null };

    // The order saga.
    const orderMs = 20 + Math.floor(r() * 120);
    const o = r();
    if (recent && o < 0.004) {
      this.add({ ...base, type: 'order', status: 'RUNNING', payload: orderPayload, createdMs: at, updatedMs: at + orderMs, finishedMs: null });
      return;
    }
    if (recent && o < 0.007) {
      this.add({
        ...this.failed('order_add_cancel', 'STEP_FAILED', 'Lock wait timeout exceeded; try restarting transaction'),
        pending: 2,
        orderId,
        userId,
        type: 'order',
        status: 'COMPENSATING',
        payload: orderPayload,
        createdMs: at,
        updatedMs: at + orderMs,
        finishedMs: null,
      });
      return;
    }
    if (o < 0.04) {
      // Failed: mostly SEATS_TAKEN (the seats went between the view and the hold), a few errors.
      const f = r();
      const [tag, code, error] =
        f < 0.7
          ? ['order_seats_cancel', 'SEATS_TAKEN', `seat ${seatIds[0]} already taken`]
          : f < 0.85
            ? ['order_add_seats_cancel', 'SEATS_TAKEN', `seats ${seatIds.join(', ')} already taken`]
            : f < 0.9
              ? ['order_calc_money_cancel', 'STEP_FAILED', 'show not found while pricing']
              : ['order_add_cancel', 'STEP_FAILED', 'Deadlock found when trying to get lock; try restarting transaction'];
      this.add({
        ...this.failed(tag, code, error),
        orderId,
        userId,
        type: 'order',
        status: 'COMPENSATED',
        payload: orderPayload,
        createdMs: at,
        updatedMs: at + orderMs + 40,
        finishedMs: at + orderMs + 40,
      });
      return;
    }
    this.add({ ...base, type: 'order', status: 'COMPLETED', payload: orderPayload, createdMs: at, updatedMs: at + orderMs, finishedMs: at + orderMs });

    // Then: paid (most), expired unpaid, or cancelled by its owner.
    const next = r();
    if (next < 0.9) {
      const payAt = at + 5_000 + Math.floor(r() * 8 * 60_000);
      const payMs = 60 + Math.floor(r() * 200);
      const payPayload = JSON.stringify({ orderId: String(orderId), userId: String(userId) });
      const p = r();
      if (recent && p < 0.005) {
        this.add({ ...base, type: 'pay', status: 'RUNNING', payload: payPayload, createdMs: payAt, updatedMs: payAt + payMs, finishedMs: null });
        return;
      }
      if (p < 0.05) {
        const wrong = r() < 0.7;
        const [tag, code, error] =
          p < 0.045
            ? [
                'pay_check_cancel',
                wrong ? 'WRONG_PAY_PASSWORD' : 'INSUFFICIENT_BALANCE',
                wrong ? 'wrong pay password' : `the balance (${Math.floor(r() * 1000)} cents) does not cover the total (${priceCents * seatCount} cents)`,
              ]
            : p < 0.048
              ? ['pay_money_cancel', 'STEP_FAILED', 'Connection lost: The server closed the connection.']
              : ['pay_cancel', 'STEP_FAILED', 'Lock wait timeout exceeded; try restarting transaction'];
        this.add({
          ...this.failed(tag, code, error),
          orderId,
          userId,
          type: 'pay',
          status: 'COMPENSATED',
          payload: payPayload,
          createdMs: payAt,
          updatedMs: payAt + payMs + 30,
          finishedMs: payAt + payMs + 30,
        });
        // A wrong password is usually followed by a right one.
        if (tag === 'pay_check_cancel' && r() < 0.8) {
          const againAt = payAt + 10_000 + Math.floor(r() * 60_000);
          this.add({
            ...base,
            type: 'pay',
            status: 'COMPLETED',
            payload: payPayload,
            createdMs: againAt,
            updatedMs: againAt + payMs,
            finishedMs: againAt + payMs,
          });
        }
        return;
      }
      this.add({ ...base, type: 'pay', status: 'COMPLETED', payload: payPayload, createdMs: payAt, updatedMs: payAt + payMs, finishedMs: payAt + payMs });
      if (r() < 0.025) {
        const refundAt = payAt + 3_600_000 + Math.floor(r() * 5 * DAY_MS);
        this.release('refund', orderId, userId, releasePayload('refund'), refundAt);
      }
      return;
    }
    if (next < 0.97) this.release('expiry', orderId, userId, releasePayload('expiry'), expiresMs + Math.floor(r() * 2_000));
    else this.release('cancel', orderId, userId, releasePayload('cancel'), at + 20_000 + Math.floor(r() * 10 * 60_000));
  }

  private failed(tag: string, errorCode: string, error: string) {
    // Every failure writes its compensation message, even one no listener is bound to.
    return { failedTag: tag, errorCode, error, pending: 0, publishes: 1 };
  }

  /** A release (expiry, cancel, refund): recorded COMPENSATING with its order_cancel message, done by seat-release. */
  private release(type: string, orderId: bigint, userId: number, payload: string, at: number): void {
    const doneMs = 15 + Math.floor(this.rand() * 60);
    this.add({
      type,
      status: 'COMPENSATED',
      payload,
      orderId,
      userId,
      failedTag: 'order_cancel',
      errorCode: null,
      error: `order ${orderId}: ${type}`,
      pending: 0,
      publishes: 1,
      createdMs: at,
      updatedMs: at + doneMs,
      finishedMs: at + doneMs,
    });
  }
}

const COLUMNS = [
  'id',
  'type',
  'status',
  'payload',
  'order_id',
  'user_id',
  'failed_tag',
  'error_code',
  'error',
  'compensations_pending',
  'compensation_publishes',
  'created_at',
  'updated_at',
  'finished_at',
];

function insertStatement(rows: Row[]): string {
  const values = rows.map(
    (r) =>
      `(${r.id},'${r.type}','${r.status}',${escape(r.payload)},${r.orderId},${r.userId},${r.failedTag ? `'${r.failedTag}'` : 'NULL'},${r.errorCode ? `'${r.errorCode}'` : 'NULL'},${r.error === null ? 'NULL' : escape(r.error)},${r.pending},${r.publishes},'${datetime(r.createdMs)}','${datetime(r.updatedMs)}',${r.finishedMs === null ? 'NULL' : `'${datetime(r.finishedMs)}'`})`,
  );
  return `INSERT INTO sagas (${COLUMNS.join(', ')}) VALUES ${values.join(',')}`;
}

/** The steps of each saga type, with their tags, in order (src/sagas/order-saga.ts, pay-saga.ts). */
const STEPS: Record<string, Array<[step: string, tag: string]>> = {
  order: [
    ['seats_check', 'order_seats_cancel'],
    ['seats_hold', 'order_add_seats_cancel'],
    ['calc_money', 'order_calc_money_cancel'],
    ['order_add', 'order_add_cancel'],
  ],
  pay: [
    ['pay_check', 'pay_check_cancel'],
    ['pay_money', 'pay_money_cancel'],
    ['pay_order_update', 'pay_cancel'],
  ],
};

/** The saga_steps INSERT for these sagas: all DONE when COMPLETED; up to the failed tag (FAILED) otherwise; RUNNING: two steps, the last STARTED. */
function stepsStatement(rows: Row[]): string {
  const values: string[] = [];
  for (const r of rows) {
    const steps = STEPS[r.type] ?? [['order_cancel', 'order_cancel']];
    const failedAt = r.failedTag ? steps.findIndex(([, tag]) => tag === r.failedTag) : -1;
    const last = r.status === 'RUNNING' ? 1 : failedAt >= 0 ? failedAt : steps.length - 1;
    const end = r.finishedMs ?? r.updatedMs;
    for (let i = 0; i <= last; i++) {
      const status = r.status === 'RUNNING' && i === last ? 'STARTED' : i === failedAt && STEPS[r.type] ? 'FAILED' : 'DONE';
      const started = r.createdMs + Math.floor(((end - r.createdMs) * i) / (last + 1));
      const finished = status === 'STARTED' ? 'NULL' : `'${datetime(r.createdMs + Math.floor(((end - r.createdMs) * (i + 1)) / (last + 1)))}'`;
      const error = status === 'FAILED' ? escape(r.error ?? 'failed') : 'NULL';
      values.push(`(${r.id},'${steps[i][0]}','${steps[i][1]}','${status}',${error},'${datetime(started)}',${finished})`);
    }
  }
  return `INSERT INTO saga_steps (saga_id, step, tag, status, error, started_at, finished_at) VALUES ${values.join(',')}`;
}

/** Inserts `count` saga rows into `db` (its schema from the service's migrations). */
export async function seedSagas(db: Knex, options: SeedOptions): Promise<SeedResult> {
  const log = options.log ?? ((line: string) => console.log(line));
  const batch = options.batch ?? 5_000;
  const endMs = options.endMs ?? Date.now();
  const startMs = endMs - (options.days ?? 30) * DAY_MS;
  const [{ n: existing }] = await db('sagas').count({ n: '*' });
  const firstIndex = Number(existing);
  if (firstIndex + options.count > MAX_ROWS)
    throw new Error(`at most ${MAX_ROWS} seeded rows per table (their worker and sequence bits): ${firstIndex} there already, ${options.count} asked`);
  const generator = new Generator(options.count, startMs, endMs, {
    users: options.users ?? 50_000,
    seed: options.seed ?? 1,
    inFlight: options.inFlight ?? true,
    firstIndex,
  });

  const started = Date.now();
  let inserted = 0;
  let lastLog = started;
  let inFlight: Promise<void> | null = null;
  const progress = (final = false) => {
    const seconds = (Date.now() - started) / 1000;
    log(
      `${final ? 'seeded' : 'seeding'} ${inserted.toLocaleString('en-US')}/${options.count.toLocaleString('en-US')} sagas, ${Math.round(inserted / seconds).toLocaleString('en-US')} rows/s, ${seconds.toFixed(1)} s`,
    );
  };
  for (;;) {
    const rows = generator.take(batch);
    if (rows.length === 0) break;
    const sql = insertStatement(rows);
    const steps = options.steps ? stepsStatement(rows) : null;
    // One batch in the database while the next one is generated.
    if (inFlight) await inFlight;
    inFlight = db
      .transaction(async (trx) => {
        await trx.raw(sql);
        if (steps) await trx.raw(steps);
      })
      .then(() => {
        inserted += rows.length;
        if (Date.now() - lastLog >= 2_000) {
          lastLog = Date.now();
          progress();
        }
      });
  }
  if (inFlight) await inFlight;
  const ms = Date.now() - started;
  progress(true);
  return {
    rows: inserted,
    ms,
    rowsPerSecond: inserted / (ms / 1000),
    startMs,
    endMs,
    byStatus: generator.byStatus,
    byType: generator.byType,
    byTag: generator.byTag,
  };
}

function args(argv: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([\w-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new Error(`unexpected argument ${argv[i]}`);
    out[m[1]] = m[2] ?? (argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[++i] : '1');
  }
  return out;
}

async function main(): Promise<void> {
  const a = args(process.argv.slice(2));
  const database = a.database ?? 'seat_saga_bench_seed';
  if (!/^\w{1,64}$/.test(database)) throw new Error('--database: letters, digits and _ only');
  const url = new URL(process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/seat_saga');
  url.pathname = `/${database}`;
  const config = loadConfig({ DATABASE_URL: url.toString() });
  const { connection, ...rest } = knexConfig(config, 2);
  const admin = knex({ client: 'mysql2', connection: { ...(connection as object), database: undefined }, pool: { min: 0, max: 1 } });
  try {
    if (a.fresh) await admin.raw('DROP DATABASE IF EXISTS ??', [database]);
    await admin.raw('CREATE DATABASE IF NOT EXISTS ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [database]);
  } finally {
    await admin.destroy();
  }
  const db = knex({ ...rest, connection });
  try {
    const [, applied] = await db.migrate.latest();
    if (applied.length) console.log(`${database}: migrations applied: ${applied.join(', ')}`);
    const result = await seedSagas(db, {
      count: Number(a.count ?? 100_000),
      days: a.days ? Number(a.days) : undefined,
      users: a.users ? Number(a.users) : undefined,
      batch: a.batch ? Number(a.batch) : undefined,
      inFlight: a['in-flight'] !== '0',
      seed: a.seed ? Number(a.seed) : undefined,
      steps: a.steps === '1',
    });
    console.log(JSON.stringify({ database, ...result, startMs: new Date(result.startMs).toISOString(), endMs: new Date(result.endMs).toISOString() }));
  } finally {
    await db.destroy();
  }
}

if (require.main === module) {
  main().catch((err) => {
    console.error(err);
    process.exit(1);
  });
}
