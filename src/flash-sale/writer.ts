import { inTransaction, isDuplicateKey, isRetriableTransactionError, type Db, type Tx } from '../db/database';
import { isDatabaseUnavailable } from '../errors';
import type { SeatHolds } from '../inventory/seat-holds';
import type { SeatInventory } from '../inventory/seat-inventory';
import type { BatchOutcome, Delivery } from '../messaging/broker';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import { FailpointError, type Failpoints } from '../support/failpoints';
import type { IdGenerator } from '../support/ids';
import type { Clock } from '../support/time';
import type { OrderExpiry } from '../orders/expiry';
import { ORDER_SAGA_STEPS } from '../orders/order-saga';
import type { OrderStore } from '../orders/order-store';
import type { SagaLog } from '../sagas/saga-log';
import { asyncOrderMessage, type AsyncOrderMessage } from './messages';
import { groupByShow, type ReservationLog, type ReservationRef } from './reservations';

export interface AsyncOrderWriterDeps {
  db: Db;
  inventory: SeatInventory;
  holds: SeatHolds;
  orders: OrderStore;
  sagaLog: SagaLog;
  reservations: ReservationLog;
  expiry: OrderExpiry;
  ids: IdGenerator;
  failpoints: Failpoints;
  metrics: Metrics;
  logger: Logger;
  clock: Clock;
  paymentWindowMs: number;
  maxQueueDelayMs: number;
}

interface Persisting extends AsyncOrderMessage {
  sagaId: string;
  expiresAt: string;
}

const refOf = (order: AsyncOrderMessage): ReservationRef => ({
  orderId: order.orderId,
  userId: order.userId,
  showId: order.showId,
  seatIds: order.seatIds,
  reservedAtMs: order.reservedAt,
});

/**
 * The order consumer: persists async orders in batches, one transaction per batch (multi-row
 * inserts of the reservations' outcome, seat holds, saga records, orders, their seats and their
 * expiry messages). The broker acks a batch only after this resolves, i.e. after the commit.
 * A redelivered message finds its reservation resolved and is not persisted again; a message
 * queued longer than maxQueueDelayMs is dropped and its seats released.
 */
export class AsyncOrderWriter {
  constructor(private readonly deps: AsyncOrderWriterDeps) {}

  readonly handleBatch = async (deliveries: Delivery[]): Promise<BatchOutcome> => {
    const { failpoints, clock, maxQueueDelayMs } = this.deps;
    await failpoints.hit('async_order.consume.before');
    const unprocessable: NonNullable<BatchOutcome['unprocessable']> = [];
    const orders = new Map<string, AsyncOrderMessage>();
    const deliveryOf = new Map<string, Delivery>();
    for (const delivery of deliveries) {
      const parsed = asyncOrderMessage.safeParse(delivery.body);
      if (!parsed.success) {
        unprocessable.push({ delivery, error: `not an async order message: ${parsed.error.issues[0].message}` });
        continue;
      }
      orders.set(parsed.data.orderId, parsed.data);
      deliveryOf.set(parsed.data.orderId, delivery);
    }
    const now = clock.now();
    const stale = [...orders.values()].filter((order) => now - order.reservedAt > maxQueueDelayMs);
    const fresh = [...orders.values()].filter((order) => now - order.reservedAt <= maxQueueDelayMs);
    if (stale.length > 0) await this.dropStale(stale, now);
    if (fresh.length > 0) {
      const failed = await this.persist(fresh);
      for (const { orderId, error } of failed) unprocessable.push({ delivery: deliveryOf.get(orderId)!, error });
    }
    return { unprocessable };
  };

  private async dropStale(stale: AsyncOrderMessage[], now: number): Promise<void> {
    const released = await this.deps.reservations.release(stale.map(refOf), 'stale');
    this.deps.metrics.asyncStaleDrops.inc(released.length);
    if (released.length > 0) {
      this.deps.logger.warn('stale async orders dropped: queued longer than ORDER_MAX_QUEUE_DELAY_MS', {
        count: released.length,
        maxQueueDelayMs: this.deps.maxQueueDelayMs,
        oldestMs: Math.max(...stale.map((order) => now - order.reservedAt)),
      });
    }
  }

  /** Returns the orders that cannot be persisted at all (they go to the DLQ; the reconciler releases them). */
  private async persist(orders: AsyncOrderMessage[]): Promise<Array<{ orderId: string; error: string }>> {
    let persisted: Persisting[];
    let seen: AsyncOrderMessage[];
    let failed: Array<{ orderId: string; error: string }> = [];
    try {
      ({ persisted, seen } = await this.persistTogether(orders));
    } catch (err) {
      // The database is down: the whole batch is retried later.
      if (isTransient(err)) throw err;
      // A seat the database already holds for another order (the Redis view had lost it), a
      // reservation resolved meanwhile by someone else, or one bad order: one at a time, to find
      // which, so the others are not held back.
      this.deps.logger.warn('async order batch refused; persisting its orders one by one', { orders: orders.length, error: errorMessage(err) });
      ({ persisted, seen, failed } = await this.persistOneByOne(orders));
    }
    if (seen.length > 0) {
      // Delivered again after its commit (a crash before the ack): the view may lack the confirm.
      await this.confirmInView(seen);
    }
    if (persisted.length > 0) await this.afterCommit(persisted);
    return failed;
  }

  private async persistOneByOne(
    orders: AsyncOrderMessage[],
  ): Promise<{ persisted: Persisting[]; seen: AsyncOrderMessage[]; failed: Array<{ orderId: string; error: string }> }> {
    const persisted: Persisting[] = [];
    const seen: AsyncOrderMessage[] = [];
    const conflicting: AsyncOrderMessage[] = [];
    const failed: Array<{ orderId: string; error: string }> = [];
    for (const order of orders) {
      try {
        const one = await this.persistTogether([order]);
        persisted.push(...one.persisted);
        seen.push(...one.seen);
      } catch (err) {
        if (isTransient(err)) throw err;
        if (isDuplicateKey(err)) conflicting.push(order);
        else failed.push({ orderId: order.orderId, error: errorMessage(err) });
      }
    }
    if (conflicting.length > 0) {
      const released = await this.deps.reservations.release(conflicting.map(refOf), 'seats-taken');
      // The view said free what the database holds: bring it in line.
      const seatIds = conflicting.flatMap((order) => order.seatIds);
      const holders = await this.deps.holds.holdersOf(seatIds);
      for (const [showId, held] of groupByShow(holders)) await this.deps.inventory.markHeld(showId, held);
      this.deps.logger.warn('async orders refused at persistence: the database holds their seats for other orders', {
        released,
      });
    }
    return { persisted, seen, failed };
  }

  /**
   * One transaction for all of `orders`. Those whose reservation already has an outcome are
   * skipped: PERSISTED ones come back as `seen`, RELEASED ones (given up on) are dropped.
   */
  private async persistTogether(orders: AsyncOrderMessage[]): Promise<{ persisted: Persisting[]; seen: AsyncOrderMessage[] }> {
    const { db, reservations, ids, paymentWindowMs, failpoints } = this.deps;
    return inTransaction(db, async (trx) => {
      const outcomes = await reservations.outcomes(
        trx,
        orders.map((order) => order.orderId),
      );
      const seen = orders.filter((order) => outcomes.get(order.orderId) === 'PERSISTED');
      const todo: Persisting[] = orders
        .filter((order) => !outcomes.has(order.orderId))
        .map((order) => ({ ...order, sagaId: ids.next(), expiresAt: new Date(order.reservedAt + paymentWindowMs).toISOString() }));
      if (todo.length > 0) {
        await this.insertOrders(trx, todo);
        await failpoints.hit('async_order.persist.before');
      }
      return { persisted: todo, seen };
    });
  }

  private async insertOrders(trx: Tx, orders: Persisting[]): Promise<void> {
    const { reservations, holds, sagaLog, expiry } = this.deps;
    // The outcome first: a reservation the reconciler released meanwhile fails the batch here.
    await reservations.recordPersisted(trx, orders.map(refOf));
    await holds.hold(
      trx,
      orders.flatMap((order) => order.seatIds.map((seatId) => ({ seatId, showId: order.showId, orderId: order.orderId }))),
    );
    await sagaLog.recordCompleted(
      trx,
      orders.map((order) => ({
        id: order.sagaId,
        type: 'order',
        input: {
          orderId: order.orderId,
          userId: order.userId,
          showId: order.showId,
          seatIds: order.seatIds,
          priceCents: order.priceCents,
          expiresAt: order.expiresAt,
          reservedAt: new Date(order.reservedAt).toISOString(),
          async: true,
        },
        orderId: order.orderId,
        userId: order.userId,
        createdAt: new Date(order.reservedAt),
        // The order saga's steps: those the reservation script did started at the reservation,
        // the rest in this transaction.
        steps: ORDER_SAGA_STEPS.map((step) => ({ name: step.name, tag: step.tag, startedAt: step.reservation ? new Date(order.reservedAt) : null })),
      })),
    );
    await this.deps.orders.insert(
      trx,
      orders.map((order) => ({
        id: order.orderId,
        userId: order.userId,
        showId: order.showId,
        seatIds: order.seatIds,
        totalCents: order.priceCents * order.seatIds.length,
        sagaId: order.sagaId,
        expiresAt: order.expiresAt,
      })),
    );
    await expiry.scheduleInTransaction(
      trx,
      orders.map((order) => ({ id: order.orderId, expiresAt: order.expiresAt })),
    );
  }

  /** After the commit, before the ack: the view, the expiry keys, the waiters, the metrics. */
  private async afterCommit(orders: Persisting[]): Promise<void> {
    const { failpoints, metrics, clock, reservations, expiry, logger } = this.deps;
    await failpoints.hit('async_order.persist.after');
    const now = clock.now();
    metrics.asyncPersisted.inc(orders.length);
    // Their saga records were written COMPLETED: the saga log says so, the outcomes count it.
    metrics.sagaOutcomes.inc({ type: 'order', status: 'COMPLETED', tag: '' }, orders.length);
    metrics.asyncBatchSize.observe(orders.length);
    for (const order of orders) {
      metrics.asyncPersistLag.observe((now - order.reservedAt) / 1000);
      if (order.waitMs > 0 && now - order.reservedAt > order.waitMs) metrics.asyncPersistedAfterGiveUp.inc();
    }
    await this.confirmInView(orders);
    await expiry.scheduleKeys(orders.map((order) => ({ id: order.orderId, expiresAt: order.expiresAt })));
    await reservations.announce({ persisted: orders.map((order) => order.orderId), released: [] });
    logger.debug('async orders persisted', { count: orders.length });
  }

  private async confirmInView(orders: AsyncOrderMessage[]): Promise<void> {
    try {
      for (const [showId, ofShow] of groupByShow(orders)) await this.deps.inventory.confirmPersisted(showId, ofShow);
    } catch (err) {
      // The database has them; the reconciler clears their pending entries later.
      this.deps.logger.warn('could not confirm persisted async orders in the seat view', { error: errorMessage(err) });
    }
  }
}

/** Failures that say nothing about the orders themselves (a failpoint stands for one): retry the batch. */
function isTransient(err: unknown): boolean {
  return isDatabaseUnavailable(err) || isRetriableTransactionError(err) || err instanceof FailpointError;
}
