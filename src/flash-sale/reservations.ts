import type { Db, Tx } from '../db/database';
import type { RedisClient } from '../db/redis';
import type { SeatInventory } from '../inventory/seat-inventory';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';

/**
 * The reservation log of async orders (the stock log of the transactional-message design):
 *  - init: the Lua script that holds the seats logs the reservation as pending in Redis, with its
 *    time (SeatInventory.reserve); the order message in RabbitMQ carries it durably;
 *  - success: the order consumer writes PERSISTED in the transaction that inserts the order;
 *  - rollback: whoever gives the seats back writes RELEASED first, then frees them in Redis.
 * The database row is written once (its primary key), so the two outcomes exclude each other.
 */

/** Why a reservation's seats went back. */
export type ReservationReleaseReason = 'stale' | 'publish-failed' | 'seats-taken' | 'reconciler';

export interface ReservationRef {
  orderId: string;
  userId: string;
  showId: string;
  seatIds: string[];
  reservedAtMs: number;
}

/** Told to every API process (Redis pub/sub), so a request waiting for its order hears of it. */
export interface Resolutions {
  persisted: string[];
  released: Array<{ orderId: string; reason: ReservationReleaseReason }>;
}

export interface ReservationLogDeps {
  db: Db;
  redis: RedisClient;
  inventory: SeatInventory;
  namespace: string;
  logger: Logger;
  onReleased?(reason: ReservationReleaseReason, count: number): void;
}

export class ReservationLog {
  /** The pub/sub channel that carries Resolutions. */
  readonly channel: string;

  constructor(private readonly deps: ReservationLogDeps) {
    this.channel = `${deps.namespace}:async-orders:resolved`;
  }

  /** In the transaction that inserts their orders: these reservations succeeded. */
  async recordPersisted(trx: Tx, refs: ReservationRef[]): Promise<void> {
    await trx('reservations').insert(refs.map((ref) => this.row(ref, 'PERSISTED', null)));
  }

  /** How each of these reservations ended, if it did: order id -> outcome. */
  async outcomes(trx: Db | Tx, orderIds: string[]): Promise<Map<string, 'PERSISTED' | 'RELEASED'>> {
    if (orderIds.length === 0) return new Map();
    const rows: Array<{ order_id: string; outcome: 'PERSISTED' | 'RELEASED' }> = await trx('reservations')
      .whereIn('order_id', orderIds)
      .select('order_id', 'outcome');
    return new Map(rows.map((r) => [r.order_id, r.outcome]));
  }

  /** Why the caller's async order was not placed, when its reservation was released; else null. */
  async releaseReasonOf(userId: string, orderId: string): Promise<ReservationReleaseReason | null> {
    const released = await this.deps.db('reservations').where({ order_id: orderId, user_id: userId, outcome: 'RELEASED' }).first('reason');
    return released?.reason ?? null;
  }

  /**
   * Gives back the seats of these reservations unless they were persisted: writes RELEASED
   * (a reservation already resolved keeps its outcome), then frees the seats of every RELEASED
   * one in the Redis view, ends its pending entry and frees the user's repeat-submit slot. Those
   * found PERSISTED are confirmed in the view instead. Idempotent. Returns the ids released.
   */
  async release(refs: ReservationRef[], reason: ReservationReleaseReason): Promise<string[]> {
    if (refs.length === 0) return [];
    const { db, inventory, logger } = this.deps;
    await db('reservations')
      .insert(refs.map((ref) => this.row(ref, 'RELEASED', reason)))
      .onConflict('order_id')
      .ignore();
    const outcomes = await this.outcomes(
      db,
      refs.map((ref) => ref.orderId),
    );
    const released = refs.filter((ref) => outcomes.get(ref.orderId) === 'RELEASED');
    const persisted = refs.filter((ref) => outcomes.get(ref.orderId) === 'PERSISTED');
    // The database decided; the view follows. A Redis failure here leaves the reservation pending:
    // the reconciler comes back to it.
    for (const ref of released) await inventory.release(ref.showId, ref.orderId, ref.seatIds, ref.userId);
    for (const [showId, orders] of groupByShow(persisted)) await inventory.confirmPersisted(showId, orders);
    if (released.length > 0) {
      this.deps.onReleased?.(reason, released.length);
      logger.warn('async reservations released', { reason, count: released.length, orderIds: released.slice(0, 20).map((r) => r.orderId) });
      await this.announce({ persisted: [], released: released.map((ref) => ({ orderId: ref.orderId, reason })) });
    }
    return released.map((ref) => ref.orderId);
  }

  /** Tells the API processes which orders were resolved. Best effort: a waiter also checks the database. */
  async announce(resolutions: Resolutions): Promise<void> {
    await this.deps.redis.publish(this.channel, JSON.stringify(resolutions)).catch((err) =>
      this.deps.logger.warn('could not announce resolved async orders; waiting requests will find them in the database', {
        error: errorMessage(err),
      }),
    );
  }

  private row(ref: ReservationRef, outcome: 'PERSISTED' | 'RELEASED', reason: ReservationReleaseReason | null) {
    return {
      order_id: ref.orderId,
      user_id: ref.userId || '0',
      show_id: ref.showId,
      outcome,
      reason,
      reserved_at: new Date(ref.reservedAtMs),
    };
  }
}

/** Reservations (or orders) grouped by show: each Redis script call touches one show's keys. */
export function groupByShow<T extends { showId: string }>(items: T[]): Map<string, T[]> {
  const byShow = new Map<string, T[]>();
  for (const item of items) {
    const group = byShow.get(item.showId);
    if (group) group.push(item);
    else byShow.set(item.showId, [item]);
  }
  return byShow;
}
