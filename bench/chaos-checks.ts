import amqp from 'amqplib';
import Redis from 'ioredis';
import knex, { type Knex } from 'knex';
import { showKeys, type ShowKeys } from '../src/inventory/seat-scripts';
import type { Acks } from './chaos-load';

/**
 * After the load: waiting (bounded) for the deployment to settle, then every invariant of the
 * contract checked from the database (the truth), the Redis view and the broker's queues. Each
 * check counts its violations rather than stopping at the first, so the summary can say how bad.
 */

const LIVE = ['PENDING_PAYMENT', 'PAID'];
const n = (value: unknown) => Number(value ?? 0);

export interface Stores {
  db: Knex;
  redis: Redis;
  keys: (showId: string) => ShowKeys;
  close(): Promise<void>;
}

export function openStores(connection: Record<string, unknown>, redisUrl: string, namespace: string): Stores {
  const db = knex({
    client: 'mysql2',
    connection: { ...connection, supportBigNumbers: true, bigNumberStrings: true, dateStrings: true },
    pool: { min: 0, max: 4 },
  });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 3, lazyConnect: false });
  redis.on('error', () => {}); // reconnects by itself; a command that fails says why
  return {
    db,
    redis,
    // The service's own key layout.
    keys: (showId) => showKeys(namespace, showId),
    async close() {
      redis.disconnect();
      await db.destroy();
    },
  };
}

/** A DATETIME(3) as the service stores it (UTC) → epoch ms. */
export const utcMs = (value: string | null): number | null => (value ? Date.parse(`${value.replace(' ', 'T')}Z`) : null);
/** Epoch ms → a DATETIME(3) literal in UTC. */
export const utcLiteral = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('Z', '');

export interface Remaining {
  sagasNotEnded: number;
  outboxUnsent: number;
  unpaidOrders: number;
  pendingReservations: number;
  acceptedUnresolved: number;
}

export async function remaining(stores: Stores, showIds: string[], accepted: Set<string>): Promise<Remaining> {
  const { db, redis } = stores;
  const [[sagas], [outbox], [unpaid]] = await Promise.all([
    db('sagas').whereIn('status', ['RUNNING', 'COMPENSATING']).count({ c: '*' }),
    db('outbox').whereNull('sent_at').count({ c: '*' }),
    db('orders').where({ status: 'PENDING_PAYMENT' }).count({ c: '*' }),
  ]);
  let pendingReservations = 0;
  for (const showId of showIds) {
    const { pending: pendingKey, reservations: reservationsKey } = stores.keys(showId);
    pendingReservations += (await redis.zcard(pendingKey)) + (await redis.hlen(reservationsKey));
  }
  let resolved = 0;
  const ids = [...accepted];
  for (let i = 0; i < ids.length; i += 1_000)
    resolved += n(
      (
        await db('reservations')
          .whereIn('order_id', ids.slice(i, i + 1_000))
          .count({ c: '*' })
      )[0].c,
    );
  return {
    sagasNotEnded: n(sagas.c),
    outboxUnsent: n(outbox.c),
    unpaidOrders: n(unpaid.c),
    pendingReservations,
    acceptedUnresolved: ids.length - resolved,
  };
}

export const isSettled = (r: Remaining) => Object.values(r).every((v) => v === 0);

export interface SeatReport {
  shows: number;
  seatsTotal: number;
  sold: number;
  held: number;
  available: number;
  /** Seats in two live orders at once (sold or held twice). */
  doubleSold: number;
  /** sold + held + available ≠ seatsTotal, or a hold on a seat of another show. */
  countMismatches: number;
  /** A live order's seat not held (or sold) by that order. */
  holdMismatches: number;
  /** A hold with no live order behind it (seats kept from sale for nothing). */
  leakedHolds: number;
  /** The Redis view disagrees with the database (shows whose view is loaded), still after 6 s. */
  viewMismatches: number;
  /** Seats the view got right only after a moment (its update trails the database commit). */
  viewLagged: number;
  viewsChecked: number;
  /** What each lasting view mismatch looks like (seat, database, Redis, the orders and sagas involved). */
  viewDetails: string[];
}

export async function checkSeats(stores: Stores): Promise<SeatReport> {
  const { db, redis } = stores;
  const report: SeatReport = {
    shows: 0,
    seatsTotal: 0,
    sold: 0,
    held: 0,
    available: 0,
    doubleSold: 0,
    countMismatches: 0,
    holdMismatches: 0,
    leakedHolds: 0,
    viewMismatches: 0,
    viewLagged: 0,
    viewsChecked: 0,
    viewDetails: [],
  };
  const shows: Array<{ id: string; seats_total: number }> = await db('shows').select('id', 'seats_total');
  for (const show of shows) {
    report.shows += 1;
    report.seatsTotal += n(show.seats_total);
    const seats: Array<{ id: string; hold_order: string | null; hold_status: string | null; hold_show: string | null }> = await db('seats')
      .leftJoin('seat_holds', 'seat_holds.seat_id', 'seats.id')
      .where('seats.show_id', show.id)
      .select('seats.id', 'seat_holds.order_id as hold_order', 'seat_holds.status as hold_status', 'seat_holds.show_id as hold_show');
    const sold = seats.filter((s) => s.hold_status === 'sold').length;
    const held = seats.filter((s) => s.hold_status === 'held').length;
    const available = seats.filter((s) => s.hold_status === null).length;
    report.sold += sold;
    report.held += held;
    report.available += available;
    if (sold + held + available !== n(show.seats_total)) report.countMismatches += 1;
    report.countMismatches += seats.filter((s) => s.hold_show !== null && String(s.hold_show) !== String(show.id)).length;

    const live: Array<{ order_id: string; seat_id: string; status: string }> = await db('order_seats')
      .join('orders', 'orders.id', 'order_seats.order_id')
      .where('orders.show_id', show.id)
      .whereIn('orders.status', LIVE)
      .select('order_seats.order_id', 'order_seats.seat_id', 'orders.status');
    const ordersOfSeat = new Map<string, number>();
    for (const row of live) ordersOfSeat.set(row.seat_id, (ordersOfSeat.get(row.seat_id) ?? 0) + 1);
    report.doubleSold += [...ordersOfSeat.values()].filter((count) => count > 1).length;
    const holdOf = new Map(seats.map((s) => [s.id, s]));
    for (const row of live) {
      const hold = holdOf.get(row.seat_id);
      if (hold?.hold_order !== row.order_id || hold.hold_status !== (row.status === 'PAID' ? 'sold' : 'held')) report.holdMismatches += 1;
    }
    const liveKeys = new Set(live.map((row) => `${row.order_id}:${row.seat_id}`));
    report.leakedHolds += seats.filter((s) => s.hold_order && !liveKeys.has(`${s.hold_order}:${s.id}`)).length;

    const { free: freeKey, holds: holdsKey, meta: metaKey } = stores.keys(String(show.id));
    if ((await redis.exists(metaKey)) === 1) {
      report.viewsChecked += 1;
      // The view is updated just after the database commits: a seat that disagrees is looked at
      // again (the database too) for a few seconds before it counts.
      let disagreeing = seats.map((seat) => seat.id);
      let first = -1;
      let lastView: { free: Set<string>; holds: Record<string, string> } = { free: new Set(), holds: {} };
      let lastDb = new Map(seats.map((seat) => [seat.id, seat]));
      for (let attempt = 0; attempt < 4 && disagreeing.length > 0; attempt++) {
        if (attempt > 0) {
          await new Promise((resolve) => setTimeout(resolve, 2_000));
          const again: typeof seats = await db('seats')
            .leftJoin('seat_holds', 'seat_holds.seat_id', 'seats.id')
            .whereIn('seats.id', disagreeing)
            .select('seats.id', 'seat_holds.order_id as hold_order', 'seat_holds.status as hold_status', 'seat_holds.show_id as hold_show');
          lastDb = new Map(again.map((seat) => [seat.id, seat]));
        }
        lastView = { free: new Set(await redis.zrange(freeKey, '0', '-1')), holds: await redis.hgetall(holdsKey) };
        const { free, holds } = lastView;
        disagreeing = disagreeing.filter((id) => {
          const seat = lastDb.get(id)!;
          return !(seat.hold_order ? holds[id] === String(seat.hold_order) && !free.has(id) : free.has(id) && holds[id] === undefined);
        });
        if (attempt === 0) first = disagreeing.length;
      }
      report.viewMismatches += disagreeing.length;
      report.viewLagged += Math.max(0, first - disagreeing.length);
      for (const id of disagreeing.slice(0, 5)) {
        const seat = lastDb.get(id)!;
        const holder = lastView.holds[id];
        const orderIds = [seat.hold_order, holder].filter((x): x is string => Boolean(x)).map(String);
        const orders: Array<{ id: string; status: string; saga_id: string }> = orderIds.length
          ? await db('orders').whereIn('id', orderIds).select('id', 'status', 'saga_id')
          : [];
        const reservations: Array<{ order_id: string; outcome: string; reason: string | null }> = orderIds.length
          ? await db('reservations').whereIn('order_id', orderIds).select('order_id', 'outcome', 'reason')
          : [];
        const sagas: Array<{ order_id: string; type: string; status: string; failed_tag: string | null }> = orderIds.length
          ? await db('sagas').whereIn('order_id', orderIds).select('order_id', 'type', 'status', 'failed_tag')
          : [];
        report.viewDetails.push(
          `show ${show.id} seat ${id}: database ${seat.hold_order ? `${seat.hold_status} by order ${seat.hold_order}` : 'available'}; Redis ${holder ? `held by order ${holder}` : 'no holder'}${lastView.free.has(id) ? ', in the free set' : ', not in the free set'}; orders ${JSON.stringify(orders)}; reservations ${JSON.stringify(reservations)}; sagas ${JSON.stringify(sagas)}`,
        );
      }
    }
  }
  return report;
}

export interface MoneyReport {
  users: number;
  /** Σ |balance − (credits − payments + refunds)| over users. */
  ledgerMismatchCents: number;
  ledgerMismatchUsers: number;
  negativeBalances: number;
  /** Payments of orders that are neither PAID nor REFUNDED (money taken, no seat). */
  paymentsWithoutSaleCents: number;
  /** PAID or REFUNDED orders with no payment (a seat given away). */
  salesWithoutPaymentCents: number;
  /** A payment or refund whose amount is not the order's total, or a refund of an order not REFUNDED. */
  amountMismatchCents: number;
  /** Ledger credits outside what the admin API acknowledged (and what it may have done unseen). */
  creditMismatchCents: number;
  centsLost: number;
}

export async function checkMoney(stores: Stores, acks: Acks): Promise<MoneyReport> {
  const { db } = stores;
  const users: Array<{ id: string; balance_cents: string; credits: string; payments: string; refunds: string }> = await db('users')
    .leftJoin('ledger_entries', 'ledger_entries.user_id', 'users.id')
    .groupBy('users.id', 'users.balance_cents')
    .select(
      'users.id',
      'users.balance_cents',
      db.raw(`COALESCE(SUM(CASE WHEN ledger_entries.kind = 'credit' THEN ledger_entries.amount_cents END), 0) AS credits`),
      db.raw(`COALESCE(SUM(CASE WHEN ledger_entries.kind = 'payment' THEN ledger_entries.amount_cents END), 0) AS payments`),
      db.raw(`COALESCE(SUM(CASE WHEN ledger_entries.kind = 'refund' THEN ledger_entries.amount_cents END), 0) AS refunds`),
    );
  const report: MoneyReport = {
    users: users.length,
    ledgerMismatchCents: 0,
    ledgerMismatchUsers: 0,
    negativeBalances: 0,
    paymentsWithoutSaleCents: 0,
    salesWithoutPaymentCents: 0,
    amountMismatchCents: 0,
    creditMismatchCents: 0,
    centsLost: 0,
  };
  for (const user of users) {
    const balance = n(user.balance_cents);
    const expected = n(user.credits) - n(user.payments) + n(user.refunds);
    if (balance !== expected) {
      report.ledgerMismatchUsers += 1;
      report.ledgerMismatchCents += Math.abs(balance - expected);
    }
    if (balance < 0) report.negativeBalances += 1;
    const credit = acks.credits.get(String(user.id));
    if (credit) {
      const credits = n(user.credits);
      if (credits < credit.acked) report.creditMismatchCents += credit.acked - credits;
      else if (credits > credit.acked + credit.unknown) report.creditMismatchCents += credits - credit.acked - credit.unknown;
    }
  }
  const entries: Array<{ order_id: string; kind: string; amount_cents: string; status: string | null; total_cents: string | null }> = await db('ledger_entries')
    .leftJoin('orders', 'orders.id', 'ledger_entries.order_id')
    .whereIn('ledger_entries.kind', ['payment', 'refund'])
    .select('ledger_entries.order_id', 'ledger_entries.kind', 'ledger_entries.amount_cents', 'orders.status', 'orders.total_cents');
  const payments = new Set<string>();
  const refunds = new Set<string>();
  for (const entry of entries) {
    const amount = n(entry.amount_cents);
    if (entry.kind === 'payment') {
      payments.add(String(entry.order_id));
      if (entry.status !== 'PAID' && entry.status !== 'REFUNDED') report.paymentsWithoutSaleCents += amount;
      else if (amount !== n(entry.total_cents)) report.amountMismatchCents += Math.abs(amount - n(entry.total_cents));
    } else {
      refunds.add(String(entry.order_id));
      if (entry.status !== 'REFUNDED') report.amountMismatchCents += amount;
      else if (amount !== n(entry.total_cents)) report.amountMismatchCents += Math.abs(amount - n(entry.total_cents));
    }
  }
  const sold: Array<{ id: string; status: string; total_cents: string }> = await db('orders')
    .whereIn('status', ['PAID', 'REFUNDED'])
    .select('id', 'status', 'total_cents');
  for (const order of sold) {
    if (!payments.has(String(order.id))) report.salesWithoutPaymentCents += n(order.total_cents);
    if (order.status === 'REFUNDED' && !refunds.has(String(order.id))) report.amountMismatchCents += n(order.total_cents);
  }
  report.centsLost =
    report.ledgerMismatchCents + report.paymentsWithoutSaleCents + report.salesWithoutPaymentCents + report.amountMismatchCents + report.creditMismatchCents;
  return report;
}

export interface SagaReport {
  total: number;
  byStatus: Record<string, number>;
  byType: Record<string, number>;
  notEnded: number;
  /** Order rows whose order saga is COMPENSATED (a failed saga must leave no order). */
  compensatedWithOrder: number;
}

export async function checkSagas(stores: Stores): Promise<SagaReport> {
  const { db } = stores;
  const rows: Array<{ type: string; status: string; c: string }> = await db('sagas')
    .groupBy('type', 'status')
    .select('type', 'status', db.raw('COUNT(*) AS c'));
  const byStatus: Record<string, number> = {};
  const byType: Record<string, number> = {};
  for (const row of rows) {
    byStatus[row.status] = (byStatus[row.status] ?? 0) + n(row.c);
    byType[row.type] = (byType[row.type] ?? 0) + n(row.c);
  }
  const [{ c }] = await db('orders').join('sagas', 'sagas.id', 'orders.saga_id').where('sagas.status', 'COMPENSATED').count({ c: '*' });
  const total = Object.values(byStatus).reduce((a, b) => a + b, 0);
  return { total, byStatus, byType, notEnded: (byStatus.RUNNING ?? 0) + (byStatus.COMPENSATING ?? 0), compensatedWithOrder: n(c) };
}

export interface AsyncReport {
  accepted: number;
  persisted: number;
  released: number;
  releasedReasons: Record<string, number>;
  /** Accepted and neither persisted nor released, or persisted without its order row. */
  lost: number;
  /** Released, yet an order row exists (persisted and released both). */
  releasedWithOrder: number;
  /** Reservations still pending in Redis. */
  pendingInRedis: number;
}

export async function checkAccepted(stores: Stores, accepted: Set<string>, showIds: string[]): Promise<AsyncReport> {
  const { db, redis } = stores;
  const ids = [...accepted];
  const outcomes = new Map<string, { outcome: string; reason: string | null }>();
  const orderRows = new Set<string>();
  for (let i = 0; i < ids.length; i += 1_000) {
    const chunk = ids.slice(i, i + 1_000);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- knex's row type is any; the assertion names it
    for (const row of (await db('reservations').whereIn('order_id', chunk).select('order_id', 'outcome', 'reason')) as Array<{
      order_id: string;
      outcome: string;
      reason: string | null;
    }>) {
      outcomes.set(String(row.order_id), row);
    }
    for (const id of (await db('orders').whereIn('id', chunk).pluck('id')) as string[]) orderRows.add(String(id));
  }
  const report: AsyncReport = { accepted: ids.length, persisted: 0, released: 0, releasedReasons: {}, lost: 0, releasedWithOrder: 0, pendingInRedis: 0 };
  for (const id of ids) {
    const outcome = outcomes.get(id);
    if (outcome?.outcome === 'PERSISTED' && orderRows.has(id)) report.persisted += 1;
    else if (outcome?.outcome === 'RELEASED') {
      report.released += 1;
      report.releasedReasons[outcome.reason ?? '?'] = (report.releasedReasons[outcome.reason ?? '?'] ?? 0) + 1;
      if (orderRows.has(id)) report.releasedWithOrder += 1;
    } else report.lost += 1;
  }
  for (const showId of showIds) {
    const { pending: pendingKey, reservations: reservationsKey } = stores.keys(showId);
    report.pendingInRedis += (await redis.zcard(pendingKey)) + (await redis.hlen(reservationsKey));
  }
  return report;
}

export interface AckReport {
  ordersLost: number;
  paysLost: number;
  refundsLost: number;
  cancelsLost: number;
  total: number;
}

/** Every 201/200 the service gave is in the database: the order exists, the paid one is paid (or refunded), … */
export async function checkAcknowledged(stores: Stores, acks: Acks): Promise<AckReport> {
  const ids = [...new Set([...acks.orders, ...acks.paid, ...acks.refunded, ...acks.cancelled])];
  const status = new Map<string, string>();
  for (let i = 0; i < ids.length; i += 1_000) {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- knex's row type is any; the assertion names it
    for (const row of (await stores
      .db('orders')
      .whereIn('id', ids.slice(i, i + 1_000))
      .select('id', 'status')) as Array<{ id: string; status: string }>)
      status.set(String(row.id), row.status);
  }
  const ordersLost = [...acks.orders].filter((id) => !status.has(id)).length;
  const paysLost = [...acks.paid].filter((id) => !['PAID', 'REFUNDED'].includes(status.get(id) ?? '')).length;
  const refundsLost = [...acks.refunded].filter((id) => status.get(id) !== 'REFUNDED').length;
  const cancelsLost = [...acks.cancelled].filter((id) => status.get(id) !== 'CANCELLED').length;
  return { ordersLost, paysLost, refundsLost, cancelsLost, total: ordersLost + paysLost + refundsLost + cancelsLost };
}

export interface QueueReport {
  /** Messages in the dead-letter queues (`….dlq`). */
  total: number;
  byQueue: Record<string, number>;
  /** Messages left in any other queue of the namespace (retry tiers, work queues), by queue. */
  others: Record<string, number>;
  error?: string;
}

/** Depth of every queue of the namespace, read with amqplib's checkQueue (exact, unlike the management UI's counts). */
export async function checkQueues(amqpUrl: string, queues: string[]): Promise<QueueReport> {
  const report: QueueReport = { total: 0, byQueue: {}, others: {} };
  let conn: Awaited<ReturnType<typeof amqp.connect>> | null = null;
  try {
    conn = await amqp.connect(amqpUrl, { timeout: 5_000 });
    conn.on('error', () => {});
    for (const queue of queues) {
      const ch = await conn.createChannel();
      ch.on('error', () => {});
      try {
        const { messageCount } = await ch.checkQueue(queue);
        await ch.close();
        if (queue.endsWith('.dlq')) {
          report.byQueue[queue] = messageCount;
          report.total += messageCount;
        } else if (messageCount > 0) report.others[queue] = messageCount;
      } catch {
        // not declared: nothing in it
      }
    }
  } catch (err) {
    report.error = (err as Error).message;
  } finally {
    await conn?.close().catch(() => {});
  }
  return report;
}

export interface RecoveryReport {
  /** From MariaDB answering ping again to the last saga created before that moment ending (ms). */
  dbReturnToLastSagaEndedMs: number | null;
  /** Sagas created before the database came back that ended after it went down. */
  sagasEndedAfterOutage: number;
}

export async function checkRecovery(stores: Stores, downAt: number, backAt: number): Promise<RecoveryReport> {
  const [row] = await stores.db('sagas').where('created_at', '<=', utcLiteral(backAt)).max({ last: 'finished_at' });
  const [{ c }] = await stores.db('sagas').where('created_at', '<=', utcLiteral(backAt)).where('finished_at', '>=', utcLiteral(downAt)).count({ c: '*' });
  const last = utcMs(row?.last ?? null);
  return { dbReturnToLastSagaEndedMs: last === null ? null : Math.max(0, last - backAt), sagasEndedAfterOutage: n(c) };
}
