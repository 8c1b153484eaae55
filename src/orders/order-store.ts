import type { Knex } from 'knex';
import { toNumber, type Db, type Tx } from '../db/database';
import type { SeatHolds } from '../inventory/seat-holds';

export type OrderStatus = 'PENDING_PAYMENT' | 'PAID' | 'CANCELLED' | 'EXPIRED' | 'REFUNDED';

export interface OrderView {
  id: string;
  status: OrderStatus;
  showId: string;
  seatIds: string[];
  totalCents: number;
  expiresAt: string;
  sagaId: string;
  createdAt: string;
}

/** An order as its saga (sync) or the order consumer (async) inserts it. */
export interface NewOrder {
  id: string;
  userId: string;
  showId: string;
  seatIds: string[];
  totalCents: number;
  sagaId: string;
  expiresAt: string;
  /** When it was placed, if not now: the POST's answer and a later GET agree. */
  createdAt?: string;
}

/** What a release (expiry, cancel, refund) and a settlement need to know of an order. */
export interface OrderRef {
  id: string;
  userId: string;
  showId: string;
  status: OrderStatus;
  totalCents: number;
  expiresAt: Date;
}

/**
 * The one way into `orders` and `order_seats`. The rule every reader follows is written once,
 * in `visible`: an order exists for anyone only once its order saga COMPLETED, because the order
 * row of a saga still running (or failing) may yet be deleted by its compensation. Every status
 * change is one conditional UPDATE, so of two racing changes (a pay and an expiry) one wins.
 */
export class OrderStore {
  constructor(
    private readonly db: Db,
    private readonly holds: SeatHolds,
  ) {}

  /** The orders a user can see: their own, once placed (their saga COMPLETED). */
  visibleTo(userId: string, trx: Db | Tx = this.db): Knex.QueryBuilder {
    return this.visible(trx).andWhere('orders.user_id', userId);
  }

  /** Orders that exist for anyone (the payment provider, an operator): their saga COMPLETED. */
  visible(trx: Db | Tx = this.db): Knex.QueryBuilder {
    return trx('orders').join('sagas', 'sagas.id', 'orders.saga_id').where('sagas.status', 'COMPLETED');
  }

  async insert(trx: Tx, orders: NewOrder[]): Promise<void> {
    if (orders.length === 0) return;
    await trx('orders').insert(
      orders.map((order) => ({
        id: order.id,
        user_id: order.userId,
        show_id: order.showId,
        status: 'PENDING_PAYMENT',
        total_cents: order.totalCents,
        saga_id: order.sagaId,
        expires_at: new Date(order.expiresAt),
        ...(order.createdAt ? { created_at: new Date(order.createdAt) } : {}),
      })),
    );
    await trx('order_seats').insert(orders.flatMap((order) => order.seatIds.map((seatId) => ({ order_id: order.id, seat_id: seatId }))));
  }

  /** The caller's order with its seats, or null. */
  async find(userId: string, orderId: string): Promise<OrderView | null> {
    const [order] = await this.visibleTo(userId).where('orders.id', orderId).select('orders.*');
    return order ? (await this.withSeats([order]))[0] : null;
  }

  /** The caller's orders, newest first. */
  async list(userId: string, limit = 100): Promise<OrderView[]> {
    const rows = await this.visibleTo(userId).orderBy('orders.id', 'desc').limit(limit).select('orders.*');
    return this.withSeats(rows);
  }

  /** The status of the caller's order, without its seats; null when the caller cannot see it. */
  async statusVisibleTo(userId: string, orderId: string): Promise<OrderStatus | null> {
    const order = await this.visibleTo(userId).where('orders.id', orderId).first('orders.status');
    return order?.status ?? null;
  }

  /** The caller's order as the pay saga checks it, or null. */
  async findRef(userId: string, orderId: string): Promise<OrderRef | null> {
    const row = await this.visibleTo(userId)
      .where('orders.id', orderId)
      .first(...REF_COLUMNS.map((c) => `orders.${c}`));
    return row ? refOf(row) : null;
  }

  /** An order known to exist (its saga COMPLETED), locked for the rest of `trx`; null if not known. */
  async lockVisible(trx: Tx, orderId: string): Promise<OrderRef | null> {
    const known = await this.visible(trx).where('orders.id', orderId).first('orders.id');
    if (!known) return null;
    return refOf(
      await trx('orders')
        .where({ id: orderId })
        .forUpdate()
        .first(...REF_COLUMNS),
    );
  }

  async ref(trx: Tx, orderId: string): Promise<OrderRef> {
    return refOf(
      await trx('orders')
        .where({ id: orderId })
        .first(...REF_COLUMNS),
    );
  }

  async statusOf(trx: Tx, orderId: string): Promise<OrderStatus | 'gone'> {
    const order = await trx('orders').where({ id: orderId }).first('status');
    return order?.status ?? 'gone';
  }

  async seatIds(trx: Db | Tx, orderId: string): Promise<string[]> {
    return trx('order_seats').where({ order_id: orderId }).orderBy('seat_id').pluck('seat_id');
  }

  /** PENDING_PAYMENT -> PAID (by the pay saga `sagaId`, or by the provider: null), its held seats sold. */
  async markPaid(trx: Tx, orderId: string, paidBySagaId: string | null): Promise<boolean> {
    const paid = await trx('orders')
      .where({ id: orderId, status: 'PENDING_PAYMENT' })
      .update({ status: 'PAID', paid_saga_id: paidBySagaId, updated_at: trx.fn.now(3) });
    if (paid === 0) return false;
    await this.holds.sell(trx, orderId);
    return true;
  }

  /** A failed pay saga's PAID -> PENDING_PAYMENT, its seats held again: the order stays payable. */
  async revertPayment(trx: Tx, orderId: string, sagaId: string): Promise<boolean> {
    const reverted = await trx('orders')
      .where({ id: orderId, status: 'PAID', paid_saga_id: sagaId })
      .update({ status: 'PENDING_PAYMENT', paid_saga_id: null, updated_at: trx.fn.now(3) });
    if (reverted > 0) await this.holds.unsell(trx, orderId);
    return reverted > 0;
  }

  /** PENDING_PAYMENT -> CANCELLED by its owner. */
  async cancel(trx: Tx, userId: string, orderId: string): Promise<boolean> {
    const [result] = await trx.raw(
      `UPDATE orders o JOIN sagas s ON s.id = o.saga_id
          SET o.status = 'CANCELLED', o.updated_at = NOW(3)
        WHERE o.id = ? AND o.user_id = ? AND o.status = 'PENDING_PAYMENT' AND s.status = 'COMPLETED'`,
      [orderId, userId],
    );
    return result.affectedRows > 0;
  }

  /**
   * PAID -> REFUNDED by its owner. Not while its
   * pay saga has not completed: that payment might still be compensated, and the money must not
   * come back twice.
   */
  async markRefunded(trx: Tx, userId: string, orderId: string): Promise<boolean> {
    const [result] = await trx.raw(
      `UPDATE orders o SET o.status = 'REFUNDED', o.updated_at = NOW(3)
        WHERE o.id = ? AND o.user_id = ? AND o.status = 'PAID'
          AND (o.paid_saga_id IS NULL OR EXISTS (SELECT 1 FROM sagas s WHERE s.id = o.paid_saga_id AND s.status = 'COMPLETED'))`,
      [orderId, userId],
    );
    return result.affectedRows > 0;
  }

  /** PENDING_PAYMENT -> EXPIRED once its deadline passed (by the database's clock). */
  async expireIfDue(trx: Tx, orderId: string): Promise<boolean> {
    const [result] = await trx.raw(
      `UPDATE orders SET status = 'EXPIRED', updated_at = NOW(3) WHERE id = ? AND status = 'PENDING_PAYMENT' AND expires_at <= NOW(3)`,
      [orderId],
    );
    return result.affectedRows > 0;
  }

  /** For an order still pending: in how many ms it is due (may be ≤ 0); null when it is not pending. */
  async dueInMs(trx: Tx, orderId: string): Promise<number | null> {
    const [[pending]] = await trx.raw(
      `SELECT TIMESTAMPDIFF(MICROSECOND, NOW(3), expires_at) DIV 1000 AS dueInMs FROM orders WHERE id = ? AND status = 'PENDING_PAYMENT'`,
      [orderId],
    );
    return pending ? Number(pending.dueInMs) : null;
  }

  /** Unpaid orders past their deadline, oldest deadline first. */
  async overdue(limit: number): Promise<string[]> {
    return this.db('orders')
      .where('status', 'PENDING_PAYMENT')
      .andWhere('expires_at', '<=', this.db.raw('NOW(3)'))
      .orderBy('expires_at')
      .limit(limit)
      .pluck('id');
  }

  /**
   * A failed order saga's order goes (its seats list with it). Only that saga's own order, and
   * never one that was paid: an order can be paid only once its saga COMPLETED, so a failed
   * saga's order is unpaid (PENDING_PAYMENT, or EXPIRED/CANCELLED when it stalled that long).
   */
  async deleteOfFailedSaga(trx: Tx, orderId: string, sagaId: string): Promise<boolean> {
    const deleted = await trx('orders').where({ id: orderId, saga_id: sagaId }).whereIn('status', ['PENDING_PAYMENT', 'EXPIRED', 'CANCELLED']).delete();
    return deleted > 0;
  }

  private async withSeats(rows: any[]): Promise<OrderView[]> {
    if (rows.length === 0) return [];
    const seats: Array<{ order_id: string; seat_id: string }> = await this.db('order_seats')
      .whereIn(
        'order_id',
        rows.map((r) => r.id),
      )
      .orderBy('seat_id')
      .select('order_id', 'seat_id');
    const byOrder = new Map<string, string[]>();
    for (const s of seats) byOrder.set(s.order_id, [...(byOrder.get(s.order_id) ?? []), s.seat_id]);
    return rows.map((r) => ({
      id: r.id,
      status: r.status,
      showId: r.show_id,
      seatIds: byOrder.get(r.id) ?? [],
      totalCents: toNumber(r.total_cents),
      expiresAt: r.expires_at.toISOString(),
      sagaId: r.saga_id,
      createdAt: r.created_at.toISOString(),
    }));
  }
}

const REF_COLUMNS = ['id', 'user_id', 'show_id', 'status', 'total_cents', 'expires_at'];

function refOf(row: { id: string; user_id: string; show_id: string; status: OrderStatus; total_cents: string | number; expires_at: Date }): OrderRef {
  return { id: row.id, userId: row.user_id, showId: row.show_id, status: row.status, totalCents: toNumber(row.total_cents), expiresAt: row.expires_at };
}
