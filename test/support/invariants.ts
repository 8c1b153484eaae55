import { expect } from 'chai';
import type { App } from '../../src/app';
import { toNumber } from '../../src/db/database';
import { waitFor } from './http';

/**
 * The contract's seat invariant for one show, checked in the database (the truth) and in the
 * Redis view: no seat held or sold twice, sold + held + available = seatsTotal, every live
 * order's seats held by that order, no hold without a live order, and the view agrees.
 */
export async function checkSeatInvariants(app: App, showId: string): Promise<{ sold: number; held: number; available: number }> {
  const { db } = app;
  const show = await db('shows').where({ id: showId }).first('seats_total');
  const seats: Array<{ id: string; hold_order: string | null; hold_status: string | null }> = await db('seats')
    .leftJoin('seat_holds', 'seat_holds.seat_id', 'seats.id')
    .where('seats.show_id', showId)
    .select('seats.id', 'seat_holds.order_id as hold_order', 'seat_holds.status as hold_status');
  const sold = seats.filter((s) => s.hold_status === 'sold').length;
  const held = seats.filter((s) => s.hold_status === 'held').length;
  const available = seats.filter((s) => s.hold_status === null).length;
  expect(sold + held + available, 'sold + held + available = seatsTotal').to.equal(show.seats_total);

  // Seats of live orders: each seat in at most one live order, and held/sold by exactly it.
  const liveSeats: Array<{ order_id: string; seat_id: string; status: string }> = await db('order_seats')
    .join('orders', 'orders.id', 'order_seats.order_id')
    .where('orders.show_id', showId)
    .whereIn('orders.status', ['PENDING_PAYMENT', 'PAID'])
    .select('order_seats.order_id', 'order_seats.seat_id', 'orders.status');
  const seatToOrder = new Map<string, string>();
  for (const row of liveSeats) {
    expect(seatToOrder.has(row.seat_id), `seat ${row.seat_id} is in two live orders`).to.equal(false);
    seatToOrder.set(row.seat_id, row.order_id);
  }
  const holdOf = new Map(seats.filter((s) => s.hold_order).map((s) => [s.id, s]));
  for (const row of liveSeats) {
    const hold = holdOf.get(row.seat_id);
    expect(hold?.hold_order, `seat ${row.seat_id} of live order ${row.order_id} is held by it`).to.equal(row.order_id);
    expect(hold?.hold_status).to.equal(row.status === 'PAID' ? 'sold' : 'held');
  }

  // The Redis view (when loaded) agrees with the database once compensations have settled.
  const { free: freeKey, holds: holdsKey, meta: metaKey } = app.inventory.keys(showId);
  if ((await app.redis.exists(metaKey)) === 1) {
    const free = new Set(await app.redis.zrange(freeKey, '0', '-1'));
    const holds = await app.redis.hgetall(holdsKey);
    for (const seat of seats) {
      if (seat.hold_order) {
        expect(holds[seat.id], `redis holder of seat ${seat.id}`).to.equal(seat.hold_order);
        expect(free.has(seat.id), `seat ${seat.id} both held and free in redis`).to.equal(false);
      } else {
        expect(free.has(seat.id), `free seat ${seat.id} free in redis`).to.equal(true);
        expect(holds[seat.id], `free seat ${seat.id} has no redis holder`).to.equal(undefined);
      }
    }
  }
  return { sold, held, available };
}

/** Waits until no saga of the app is RUNNING or COMPENSATING. */
export async function sagasSettled(app: App): Promise<boolean> {
  const [{ n }] = await app.db('sagas').whereIn('status', ['RUNNING', 'COMPENSATING']).count({ n: '*' });
  return toNumber(n) === 0;
}

/** Row counts of every table, to prove a request wrote nothing. */
export async function tableCounts(app: App): Promise<Record<string, number>> {
  const tables = [
    'users',
    'ledger_entries',
    'shows',
    'seats',
    'seat_holds',
    'orders',
    'order_seats',
    'sagas',
    'saga_steps',
    'saga_compensations',
    'outbox',
    'reservations',
  ];
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const [{ n }] = await app.db(table).count({ n: '*' });
    counts[table] = toNumber(n);
  }
  return counts;
}

/**
 * The contract's money invariant, for every user of the app's database: balance = credits −
 * payments + refunds (from the ledger), and no balance negative. Returns the users checked.
 */
export async function checkMoneyInvariant(app: Pick<App, 'db'>): Promise<number> {
  const rows: Array<{ id: string; balance_cents: string; credits: string; payments: string; refunds: string }> = await app
    .db('users')
    .leftJoin('ledger_entries', 'ledger_entries.user_id', 'users.id')
    .groupBy('users.id', 'users.balance_cents')
    .select(
      'users.id',
      'users.balance_cents',
      app.db.raw(`COALESCE(SUM(CASE WHEN ledger_entries.kind = 'credit' THEN ledger_entries.amount_cents END), 0) AS credits`),
      app.db.raw(`COALESCE(SUM(CASE WHEN ledger_entries.kind = 'payment' THEN ledger_entries.amount_cents END), 0) AS payments`),
      app.db.raw(`COALESCE(SUM(CASE WHEN ledger_entries.kind = 'refund' THEN ledger_entries.amount_cents END), 0) AS refunds`),
    );
  for (const row of rows) {
    const balance = toNumber(row.balance_cents);
    expect(balance, `user ${row.id}: balance = credits - payments + refunds`).to.equal(toNumber(row.credits) - toNumber(row.payments) + toNumber(row.refunds));
    expect(balance, `user ${row.id}: balance not negative`).to.be.at.least(0);
  }
  return rows.length;
}

/** How many of these async orders have an outcome (PERSISTED or RELEASED) in the database. */
export async function resolvedCount(app: App, orderIds: string[]): Promise<number> {
  const [{ n }] = await app.db('reservations').whereIn('order_id', orderIds).count({ n: '*' });
  return toNumber(n);
}

/** Waits until every one of these accepted async orders has an outcome in the database. */
export async function allResolved(app: App, orderIds: string[], timeoutMs = 60_000): Promise<void> {
  await waitFor(`${orderIds.length} accepted orders resolved`, async () => (await resolvedCount(app, orderIds)) === orderIds.length, timeoutMs, 100);
}

/**
 * Invariant 5 for async orders: every accepted order (202) is persisted or released, none is
 * still pending in Redis, and a persisted one has exactly its order row. Returns the split.
 */
export async function checkReservationsResolved(app: App, showId: string, acceptedOrderIds: string[]): Promise<{ persisted: string[]; released: string[] }> {
  const { pending: pendingKey, reservations: reservationsKey } = app.inventory.keys(showId);
  expect(await app.redis.zcard(pendingKey), 'no reservation pending in redis').to.equal(0);
  expect(await app.redis.hlen(reservationsKey), 'no reservation entry left in redis').to.equal(0);
  const outcomes: Array<{ order_id: string; outcome: string }> = acceptedOrderIds.length
    ? await app.db('reservations').whereIn('order_id', acceptedOrderIds).select('order_id', 'outcome')
    : [];
  const byId = new Map(outcomes.map((o) => [o.order_id, o.outcome]));
  for (const id of acceptedOrderIds) expect(byId.get(id), `reservation of accepted order ${id} resolved`).to.be.oneOf(['PERSISTED', 'RELEASED']);
  const persisted = acceptedOrderIds.filter((id) => byId.get(id) === 'PERSISTED');
  const released = acceptedOrderIds.filter((id) => byId.get(id) === 'RELEASED');
  const orderRows: string[] = acceptedOrderIds.length ? await app.db('orders').whereIn('id', acceptedOrderIds).pluck('id') : [];
  expect([...orderRows].sort(), 'orders exist exactly for the persisted reservations').to.deep.equal([...persisted].sort());
  return { persisted, released };
}
