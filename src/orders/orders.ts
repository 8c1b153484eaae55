import { inTransaction, type Db } from '../db/database';
import { AppError, notFound } from '../errors';
import type { ReservationLog } from '../flash-sale/reservations';
import type { Logger } from '../observability/logger';
import { orderNotPayable, type PaySagaContext } from '../payments/pay-saga';
import type { Refunds } from '../payments/refunds';
import type { Wallet } from '../payments/wallet';
import type { SagaDefinition, SagaEngine } from '../sagas/engine';
import type { Shows } from '../shows/shows';
import type { IdGenerator } from '../support/ids';
import type { Clock } from '../support/time';
import type { PayPasswordGuard } from '../users/pay-password';
import type { OrderExpiry } from './expiry';
import type { OrderRelease } from './order-release';
import type { OrderSagaContext } from './order-saga';
import type { OrderStatus, OrderStore, OrderView } from './order-store';

export type { OrderStatus, OrderView } from './order-store';

export interface OrdersDeps {
  db: Db;
  store: OrderStore;
  shows: Shows;
  engine: SagaEngine;
  orderSaga: SagaDefinition<OrderSagaContext>;
  paySaga: SagaDefinition<PaySagaContext>;
  expiry: OrderExpiry;
  release: OrderRelease;
  refunds: Refunds;
  wallet: Wallet;
  /** The flash-sale path's reservations: why an async order was not placed. */
  reservations: Pick<ReservationLog, 'releaseReasonOf'>;
  passwords: PayPasswordGuard;
  ids: IdGenerator;
  clock: Clock;
  paymentWindowMs: number;
}

/** What a buyer does with orders: place, pay, cancel, refund, look. */
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
  async pay(
    userId: string,
    orderId: string,
    payPassword: string,
    logger: Logger,
  ): Promise<{ id: string; status: 'PAID'; balanceCents: number; sagaId: string }> {
    const { engine, paySaga, passwords, wallet } = this.deps;
    await passwords.assertNotLocked(userId);
    await this.visibleStatus(userId, orderId);
    const sagaId = await engine.run(paySaga, { orderId, userId, payPassword }, { orderId, userId, logger: logger.child({ orderId }) });
    return { id: orderId, status: 'PAID', balanceCents: await wallet.balanceOf(userId), sagaId };
  }

  /** PENDING_PAYMENT -> CANCELLED by its owner; the seats go back through `order_cancel`. */
  async cancel(userId: string, orderId: string, logger: Logger): Promise<{ id: string; status: 'CANCELLED'; releaseSagaId: string }> {
    const { db, store, release } = this.deps;
    const releaseSagaId = await inTransaction(db, async (trx) => {
      if (!(await store.cancel(trx, userId, orderId))) throw orderNotPayable(await this.visibleStatus(userId, orderId));
      return release.release(trx, await store.ref(trx, orderId), 'cancel');
    });
    logger.info('order cancelled', { orderId, sagaId: releaseSagaId, status: 'CANCELLED' });
    return { id: orderId, status: 'CANCELLED', releaseSagaId };
  }

  /** PAID -> REFUNDED by its owner (see Refunds). */
  async refund(userId: string, orderId: string, logger: Logger): Promise<{ id: string; status: 'REFUNDED'; balanceCents: number; releaseSagaId: string }> {
    const refunded = await this.deps.refunds.refund(userId, orderId);
    logger.info('order refunded', { orderId, amountCents: refunded.amountCents, sagaId: refunded.releaseSagaId, status: 'REFUNDED' });
    return { id: orderId, status: 'REFUNDED', balanceCents: refunded.balanceCents, releaseSagaId: refunded.releaseSagaId };
  }

  /**
   * The caller's order; another user's order, or one whose saga has not completed, is not found.
   * An async order whose reservation was released says so in the 404.
   */
  async get(userId: string, orderId: string): Promise<OrderView> {
    const order = await this.find(userId, orderId);
    if (order) return order;
    const reason = await this.deps.reservations.releaseReasonOf(userId, orderId);
    if (reason) {
      throw new AppError('NOT_FOUND', `order ${orderId} was not placed: its reservation was released (${reason})`, {
        orderId,
        reservation: 'RELEASED',
        reason,
      });
    }
    throw notFound('order');
  }

  /** As `get`, or null. */
  find(userId: string, orderId: string): Promise<OrderView | null> {
    return this.deps.store.find(userId, orderId);
  }

  /** The caller's orders, newest first. */
  list(userId: string, limit = 100): Promise<OrderView[]> {
    return this.deps.store.list(userId, limit);
  }

  /** The status of the caller's order (404 as for `get`), without loading its seats. */
  private async visibleStatus(userId: string, orderId: string): Promise<OrderStatus> {
    const status = await this.deps.store.statusVisibleTo(userId, orderId);
    if (!status) throw notFound('order');
    return status;
  }
}
