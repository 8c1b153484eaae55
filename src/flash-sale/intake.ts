import { AppError, serviceUnavailable } from '../errors';
import type { SeatInventory, ReserveResult } from '../inventory/seat-inventory';
import { BrokerUnavailableError, type Broker } from '../messaging/broker';
import type { Topology } from '../messaging/topology';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { Shows } from '../shows/shows';
import type { Failpoints } from '../support/failpoints';
import type { IdGenerator } from '../support/ids';
import type { Clock } from '../support/time';
import type { OrderView } from '../orders/order-store';
import type { AsyncOrderMessage, AsyncOrderRequest } from './messages';
import type { ReservationLog, ReservationReleaseReason } from './reservations';
import type { AsyncOrderWaiters, Resolution } from './waiters';

export interface AsyncOrderIntakeOptions {
  repeatWindowMs: number;
  soldOutCacheMs: number;
  publishWindow: number;
  publishTimeoutMs: number;
}

export interface AsyncOrderIntakeDeps {
  shows: Shows;
  inventory: SeatInventory;
  broker: Broker;
  topology: Topology;
  reservations: ReservationLog;
  waiters: AsyncOrderWaiters;
  /** The caller's persisted order, or null (404). */
  findOrder(userId: string, orderId: string): Promise<OrderView | null>;
  ids: IdGenerator;
  clock: Clock;
  failpoints: Failpoints;
  metrics: Metrics;
  logger: Logger;
  options: AsyncOrderIntakeOptions;
}

/** What POST /api/orders/async answers: the order once persisted (201), or its id while queued (202). */
export type AsyncOrderAnswer = { status: 'PERSISTED'; order: OrderView } | { status: 'QUEUED'; orderId: string };

/**
 * The flash-sale path, HTTP side: one Lua call reserves the seats (and refuses sold-out shows,
 * repeat submits and taken seats), then the order message is published with publisher confirms
 * and the client is answered 202. Nothing here touches the database on the way to a 202.
 */
export class AsyncOrderIntake {
  /** Show id -> until when this process answers SOLD_OUT without asking Redis. */
  private readonly soldOutUntil = new Map<string, number>();
  private readonly publishing = new PublishWindow();

  constructor(private readonly deps: AsyncOrderIntakeDeps) {}

  /**
   * True when this process saw the show sold out less than SOLD_OUT_CACHE_MS ago: the request is
   * answered SOLD_OUT without asking Redis (and counted as such).
   */
  refuseIfKnownSoldOut(showId: string): boolean {
    if (this.soldOutUntil.size === 0) return false;
    const cachedUntil = this.soldOutUntil.get(showId);
    if (cachedUntil === undefined) return false;
    if (cachedUntil <= this.deps.clock.now()) {
      this.soldOutUntil.delete(showId);
      return false;
    }
    this.deps.metrics.asyncRequests.inc({ outcome: 'sold_out_cached' });
    return true;
  }

  /** Whether any show is known sold out in this process right now (the HTTP shortcut is worth trying). */
  get anyKnownSoldOut(): boolean {
    return this.soldOutUntil.size > 0;
  }

  async place(userId: string, request: AsyncOrderRequest, waitMs: number): Promise<AsyncOrderAnswer> {
    const { metrics, clock } = this.deps;
    if (this.refuseIfKnownSoldOut(request.showId)) throw soldOut(request.showId);
    const show = await this.deps.shows.get(request.showId);
    const orderId = this.deps.ids.next();
    const reservedAt = clock.now();
    const reserved = await this.deps.inventory.reserve(show.id, {
      orderId,
      userId,
      nowMs: reservedAt,
      repeatWindowMs: this.deps.options.repeatWindowMs,
      ...('quantity' in request ? { quantity: request.quantity } : { seatIds: request.seatIds }),
    });
    if (!reserved.ok) throw this.refusal(show.id, reserved);

    const message: AsyncOrderMessage = { orderId, userId, showId: show.id, seatIds: reserved.seatIds, priceCents: show.priceCents, reservedAt, waitMs };
    // Listening before publishing: the order may be persisted before the publish call returns.
    const waiting = waitMs > 0 ? this.deps.waiters.wait(orderId, waitMs) : null;
    try {
      await this.deps.failpoints.hit('async_order.publish.before');
      await this.publish(message);
    } catch (err) {
      waiting?.cancel();
      metrics.asyncRequests.inc({ outcome: 'unavailable' });
      await this.releaseUnpublished(message, err);
      throw err instanceof BrokerUnavailableError
        ? serviceUnavailable('rabbitmq', err)
        : new AppError('SERVICE_UNAVAILABLE', 'the order could not be queued, retry later', { dependency: 'rabbitmq' }, { cause: err });
    }
    metrics.asyncRequests.inc({ outcome: 'accepted' });
    if (!waiting) return { status: 'QUEUED', orderId };
    return this.awaitPersisted(userId, orderId, waiting.resolution);
  }

  /** Waits for the consumer's word; at the timeout, the database has the last word. */
  private async awaitPersisted(userId: string, orderId: string, resolution: Promise<Resolution | null>): Promise<AsyncOrderAnswer> {
    const resolved = await resolution;
    if (resolved?.outcome === 'released') throw notPersisted(orderId, resolved.reason);
    const order = await this.deps.findOrder(userId, orderId);
    if (order) return { status: 'PERSISTED', order };
    if (resolved === null) this.deps.metrics.asyncWaitTimeouts.inc();
    return { status: 'QUEUED', orderId };
  }

  /** Publishes with a publisher confirm, at most `publishWindow` unconfirmed at a time, bounded in time. */
  private async publish(message: AsyncOrderMessage): Promise<void> {
    const { broker, topology, options } = this.deps;
    const deadline = this.deps.clock.now() + options.publishTimeoutMs;
    await this.publishing.enter(options.publishWindow, options.publishTimeoutMs);
    try {
      const confirmed = broker.publish(topology.asyncOrders.exchange, topology.asyncOrders.routingKey, message, { messageId: `order:${message.orderId}` });
      await withTimeout(
        confirmed,
        Math.max(1, deadline - this.deps.clock.now()),
        () => new BrokerUnavailableError(`publish not confirmed within ${options.publishTimeoutMs} ms`),
      );
    } finally {
      this.publishing.leave();
    }
  }

  /**
   * The client will hear 503: the seats go back. RELEASED is written first, so the message, should
   * the broker have taken it after all, is never persisted. If even that fails (the database is
   * down too), the reservation stays pending and the reconciler releases it later: the seats stay
   * unsold meanwhile, never sold twice.
   */
  private async releaseUnpublished(message: AsyncOrderMessage, cause: unknown): Promise<void> {
    this.deps.logger.warn('async order not queued; releasing its reservation', { orderId: message.orderId, error: errorMessage(cause) });
    await this.deps.reservations
      .release(
        [{ orderId: message.orderId, userId: message.userId, showId: message.showId, seatIds: message.seatIds, reservedAtMs: message.reservedAt }],
        'publish-failed',
      )
      .catch((err) =>
        this.deps.logger.error('could not release an unqueued reservation; the reconciler will', { orderId: message.orderId, error: errorMessage(err) }),
      );
  }

  private refusal(showId: string, result: Exclude<ReserveResult, { ok: true }>): AppError {
    const { metrics } = this.deps;
    switch (result.reason) {
      case 'SOLD_OUT':
        if (this.deps.options.soldOutCacheMs > 0) this.soldOutUntil.set(showId, this.deps.clock.now() + this.deps.options.soldOutCacheMs);
        metrics.asyncRequests.inc({ outcome: 'sold_out' });
        return soldOut(showId);
      case 'DUPLICATE':
        metrics.asyncRequests.inc({ outcome: 'duplicate' });
        return new AppError('DUPLICATE_REQUEST', `you placed order ${result.previousOrderId} for this show moments ago; poll it rather than ordering again`, {
          orderId: result.previousOrderId,
          windowMs: this.deps.options.repeatWindowMs,
        });
      case 'TAKEN':
        metrics.asyncRequests.inc({ outcome: 'seats_taken' });
        return new AppError('SEATS_TAKEN', `seat${result.seatIds.length > 1 ? 's' : ''} ${result.seatIds.join(', ')} already taken`, {
          seatIds: result.seatIds,
        });
      case 'NOT_ENOUGH':
        metrics.asyncRequests.inc({ outcome: 'seats_taken' });
        return new AppError('SEATS_TAKEN', `only ${result.available} seat(s) left`, { available: result.available });
      case 'UNKNOWN':
        return new AppError('VALIDATION_FAILED', `seat(s) ${result.seatIds.join(', ')} are not seats of show ${showId}`, { seatIds: result.seatIds });
      case 'SETTLING': {
        metrics.asyncRequests.inc({ outcome: 'settling' });
        const retryAfterSeconds = Math.max(1, Math.ceil((result.acceptFromMs - this.deps.clock.now()) / 1000));
        return new AppError('SERVICE_UNAVAILABLE', 'the seat inventory of this show is being rebuilt; retry shortly', {
          dependency: 'redis',
          retryAfterSeconds,
        });
      }
    }
  }
}

export const soldOut = (showId: string) => new AppError('SOLD_OUT', `show ${showId} is sold out`, { showId });

const notPersisted = (orderId: string, reason: ReservationReleaseReason) =>
  reason === 'seats-taken'
    ? new AppError('SEATS_TAKEN', `order ${orderId} was not placed: its seats were taken meanwhile`, { orderId, reason })
    : new AppError('SERVICE_UNAVAILABLE', `order ${orderId} was not placed (${reason}); its seats were released, retry`, { orderId, reason });

function withTimeout<T>(promise: Promise<T>, ms: number, error: () => Error): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(error()), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Bounds the publishes awaiting their confirm; the rest wait their turn, within a time limit. */
class PublishWindow {
  private inFlight = 0;
  private readonly queue: Array<() => void> = [];

  async enter(size: number, timeoutMs: number): Promise<void> {
    if (this.inFlight < size) {
      this.inFlight++;
      return;
    }
    let turn!: () => void;
    const granted = new Promise<void>((resolve) => {
      turn = resolve;
      this.queue.push(turn);
    });
    try {
      await withTimeout(granted, timeoutMs, () => new BrokerUnavailableError(`more than ${size} order messages await their confirm`));
    } catch (err) {
      const index = this.queue.indexOf(turn);
      if (index >= 0) this.queue.splice(index, 1);
      else this.leave(); // the slot came just as the wait ran out: pass it on
      throw err;
    }
  }

  /** A slot goes straight to the next in line, if any. */
  leave(): void {
    const next = this.queue.shift();
    if (next) next();
    else this.inFlight--;
  }
}
