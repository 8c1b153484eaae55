import type { Db } from '../db/database';
import { inTransaction, toNumber } from '../db/database';
import { AppError, notFound } from '../errors';
import type { Logger } from '../observability/logger';
import type { SagaDefinition, SagaEngine } from '../sagas/engine';
import type { OrderSagaContext } from '../sagas/order-saga';
import { orderNotPayable, type PaySagaContext } from '../sagas/pay-saga';
import type { SagaLog } from '../sagas/saga-log';
import type { PayPasswordGuard } from '../users/pay-password';
import type { OrderExpiry } from './expiry';
import { releaseOrderSeats } from './order-release';
import type { Shows } from '../shows/shows';
import type { Clock } from '../support/time';
import type { IdGenerator } from '../support/ids';

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

export interface OrdersDeps {
  db: Db;
  shows: Shows;
  engine: SagaEngine;
  orderSaga: SagaDefinition<OrderSagaContext>;
  paySaga: SagaDefinition<PaySagaContext>;
  sagaLog: SagaLog;
  expiry: OrderExpiry;
  passwords: PayPasswordGuard;
  /** A release was written to the outbox: publish it now. */
  onReleaseQueued(): void;
  ids: IdGenerator;
  clock: Clock;
  paymentWindowMs: number;
}

export class Orders {
  constructor(private readonly deps: OrdersDeps) {}

  /**
   * Places an order through the order saga. The request is validated with reads only (show
   * exists, seats are its own) so bad input writes nothing; then the saga holds the seats and
   * inserts the order, or compensates and throws SagaFailedError.
   */
  async place(userId: string, request: { showId: string; seatIds: string[] }, logger: Logger): Promise<OrderView> {
    const { shows, engine, orderSaga, ids, clock, paymentWindowMs } = this.deps;
    const show = await shows.get(request.showId);
    const foreign = await shows.foreignSeats(show.id, request.seatIds);
    if (foreign.length > 0) {
      throw new AppError('VALIDATION_FAILED', `seat(s) ${foreign.join(', ')} are not seats of show ${show.id}`, {
        seatIds: foreign,
      });
    }
    const orderId = ids.next();
    const placedAt = clock.now();
    const order: OrderSagaContext = {
      orderId,
      userId,
      showId: show.id,
      seatIds: request.seatIds,
      priceCents: show.priceCents,
      expiresAt: new Date(placedAt + paymentWindowMs).toISOString(),
      createdAt: new Date(placedAt).toISOString(),
    };
    const sagaId = await engine.run(orderSaga, order, { orderId, userId, logger: logger.child({ orderId }) });
    await this.deps.expiry.scheduleKeys([{ id: orderId, expiresAt: order.expiresAt }]);
    return {
      id: orderId,
      status: 'PENDING_PAYMENT',
      showId: show.id,
      seatIds: request.seatIds,
      totalCents: order.totalCents as number,
      expiresAt: order.expiresAt,
      sagaId,
      createdAt: order.createdAt!,
    };
  }

  /**
   * Pays an order from the caller's balance through the pay saga. A locked-out caller and an order
   * the caller cannot see are refused before the saga starts (nothing written); the saga checks
   * everything again, under its own steps.
   */
  async pay(userId: string, orderId: string, payPassword: string, logger: Logger): Promise<{ id: string; status: 'PAID'; balanceCents: number; sagaId: string }> {
    const { engine, paySaga, passwords, db } = this.deps;
    await passwords.assertNotLocked(userId);
    await this.visibleStatus(userId, orderId);
    const sagaId = await engine.run(paySaga, { orderId, userId, payPassword }, { orderId, userId, logger: logger.child({ orderId }) });
    const user = await db('users').where({ id: userId }).first('balance_cents');
    return { id: orderId, status: 'PAID', balanceCents: toNumber(user.balance_cents), sagaId };
  }

  /** PENDING_PAYMENT -> CANCELLED by its owner; the seats go back through `order_cancel`. */
  async cancel(userId: string, orderId: string, logger: Logger): Promise<{ id: string; status: 'CANCELLED'; releaseSagaId: string }> {
    const releaseSagaId = await inTransaction(this.deps.db, async (trx) => {
      const [result] = await trx.raw(
        `UPDATE orders o JOIN sagas s ON s.id = o.saga_id
            SET o.status = 'CANCELLED', o.updated_at = NOW(3)
          WHERE o.id = ? AND o.user_id = ? AND o.status = 'PENDING_PAYMENT' AND s.status = 'COMPLETED'`,
        [orderId, userId],
      );
      if (result.affectedRows === 0) throw orderNotPayable(await this.visibleStatus(userId, orderId));
      const order = await trx('orders').where({ id: orderId }).first('show_id');
      return releaseOrderSeats(trx, this.deps, { id: orderId, userId, showId: order.show_id }, 'cancel');
    });
    this.deps.onReleaseQueued();
    logger.info('order cancelled', { orderId, sagaId: releaseSagaId, status: 'CANCELLED' });
    return { id: orderId, status: 'CANCELLED', releaseSagaId };
  }

  /**
   * PAID -> REFUNDED by its owner: what the order's payment entry says goes back to the balance
   * (a refund entry, once per order), the seats back on sale through `order_cancel`. A payment
   * whose pay saga has not completed cannot be refunded yet: it might still be compensated, and
   * the money must not come back twice.
   */
  async refund(userId: string, orderId: string, logger: Logger): Promise<{ id: string; status: 'REFUNDED'; balanceCents: number; releaseSagaId: string }> {
    const refunded = await inTransaction(this.deps.db, async (trx) => {
      const [result] = await trx.raw(
        `UPDATE orders o SET o.status = 'REFUNDED', o.updated_at = NOW(3)
          WHERE o.id = ? AND o.user_id = ? AND o.status = 'PAID'
            AND (o.paid_saga_id IS NULL OR EXISTS (SELECT 1 FROM sagas s WHERE s.id = o.paid_saga_id AND s.status = 'COMPLETED'))`,
        [orderId, userId],
      );
      if (result.affectedRows === 0) {
        const status = await this.visibleStatus(userId, orderId);
        const why = status === 'PAID' ? 'its payment is still being processed; retry shortly' : `the order is ${status}, not PAID`;
        throw new AppError('ORDER_NOT_REFUNDABLE', `order cannot be refunded: ${why}`, { status });
      }
      const payment = await trx('ledger_entries').where({ order_id: orderId, kind: 'payment' }).first('user_id', 'amount_cents');
      if (!payment) throw new Error(`order ${orderId} is PAID but has no payment in the ledger`);
      const amount = toNumber(payment.amount_cents);
      // The user row before the ledger insert (whose foreign-key check locks it shared): no deadlock.
      await trx('users').where({ id: payment.user_id }).increment('balance_cents', amount);
      await trx('ledger_entries').insert({ user_id: payment.user_id, kind: 'refund', amount_cents: amount, order_id: orderId });
      // Sold seats become held by the refunded order for a moment: the release frees held seats.
      await trx('seat_holds').where({ order_id: orderId, status: 'sold' }).update({ status: 'held' });
      const order = await trx('orders').where({ id: orderId }).first('show_id');
      const releaseSagaId = await releaseOrderSeats(trx, this.deps, { id: orderId, userId, showId: order.show_id }, 'refund');
      const user = await trx('users').where({ id: userId }).first('balance_cents');
      return { releaseSagaId, amount, balanceCents: toNumber(user.balance_cents) };
    });
    this.deps.onReleaseQueued();
    logger.info('order refunded', { orderId, amountCents: refunded.amount, sagaId: refunded.releaseSagaId, status: 'REFUNDED' });
    return { id: orderId, status: 'REFUNDED', balanceCents: refunded.balanceCents, releaseSagaId: refunded.releaseSagaId };
  }

  /**
   * The caller's order; another user's order, or one whose saga has not completed, is not found.
   * An async order whose reservation was released says so in the 404.
   */
  async get(userId: string, orderId: string): Promise<OrderView> {
    const order = await this.find(userId, orderId);
    if (order) return order;
    const released = await this.deps.db('reservations').where({ order_id: orderId, user_id: userId, outcome: 'RELEASED' }).first('reason');
    if (released) {
      throw new AppError('NOT_FOUND', `order ${orderId} was not placed: its reservation was released (${released.reason})`, {
        orderId,
        reservation: 'RELEASED',
        reason: released.reason,
      });
    }
    throw notFound('order');
  }

  /** As `get`, or null. */
  async find(userId: string, orderId: string): Promise<OrderView | null> {
    const [order] = await this.query(userId).where('orders.id', orderId).select('orders.*');
    return order ? (await this.withSeats([order]))[0] : null;
  }

  /** The caller's orders, newest first. */
  async list(userId: string, limit = 100): Promise<OrderView[]> {
    const rows = await this.query(userId).orderBy('orders.id', 'desc').limit(limit).select('orders.*');
    return this.withSeats(rows);
  }

  /** The status of the caller's order (404 as for `get`), without loading its seats. */
  private async visibleStatus(userId: string, orderId: string): Promise<OrderStatus> {
    const order = await this.query(userId).where('orders.id', orderId).first('orders.status');
    if (!order) throw notFound('order');
    return order.status;
  }

  private query(userId: string) {
    return this.deps
      .db('orders')
      .join('sagas', 'sagas.id', 'orders.saga_id')
      .where('orders.user_id', userId)
      .andWhere('sagas.status', 'COMPLETED');
  }

  private async withSeats(rows: any[]): Promise<OrderView[]> {
    if (rows.length === 0) return [];
    const seats: Array<{ order_id: string; seat_id: string }> = await this.deps
      .db('order_seats')
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
