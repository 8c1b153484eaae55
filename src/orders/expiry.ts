import { z } from 'zod';
import { inTransaction, type Db, type Tx } from '../db/database';
import type { RedisClient } from '../db/redis';
import { UnprocessableMessageError } from '../messaging/broker';
import type { OutboxWriter } from '../messaging/outbox';
import type { Topology } from '../messaging/topology';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { Clock } from '../support/time';
import { ExpiredKeyEvents } from './expired-keys';
import type { OrderRelease } from './order-release';
import type { OrderStore } from './order-store';

export type ExpiryTrigger = 'keyspace' | 'delay-queue' | 'sweep';

export interface OrderExpiryDeps {
  db: Db;
  redis: RedisClient;
  orders: OrderStore;
  release: OrderRelease;
  outbox: OutboxWriter;
  topology: Topology;
  clock: Clock;
  logger: Logger;
  namespace: string;
  triggers: ReadonlySet<ExpiryTrigger>;
  onExpired?(trigger: ExpiryTrigger, latenessMs: number): void;
}

/** Orders named by one delay-queue message at most. */
const EXPIRY_MESSAGE_MAX_ORDERS = 1_000;
/** Orders of one due message expired at once (each in its own transaction). */
const EXPIRY_CONCURRENCY = 8;

const orderIdString = z.string().regex(/^\d+$/);
/** One order (the sync path), or the orders of one async batch: one message for the batch. */
const dueMessage = z.union([
  z.object({ orderId: orderIdString, expiresAt: z.string() }),
  z.object({ orderIds: z.array(orderIdString).min(1).max(EXPIRY_MESSAGE_MAX_ORDERS), expiresAt: z.string() }),
]);

/**
 * Expires unpaid orders. The database decides (`PENDING_PAYMENT -> EXPIRED` only once the deadline
 * has passed, in one conditional UPDATE, so a pay racing an expiry has exactly one winner); three
 * triggers only say when to ask it:
 *  - keyspace: a Redis key per order with the payment window as TTL; its `expired` keyspace event
 *    (the service turns `notify-keyspace-events` on) arrives within ~100 ms of the deadline.
 *    Events are fire-and-forget: lost when no subscriber listens, or late when the key expires late.
 *  - delay-queue: a message written to the outbox with the order, which waits out the window in
 *    a TTL queue and dead-letters into `<ns>.expiry.due`. Durable.
 *  - sweep: a periodic query for overdue PENDING_PAYMENT orders, the backstop for both.
 * The expired order's seats go back through the `order_cancel` compensation (seat-release).
 */
export class OrderExpiry {
  private events: ExpiredKeyEvents | null = null;
  private readonly keyPrefix: string;

  constructor(private readonly deps: OrderExpiryDeps) {
    this.keyPrefix = `${deps.namespace}:expiry:order:`;
  }

  /**
   * In the transaction that inserts the orders: the durable trigger (delay queue), via the outbox.
   * Orders committed together share one message (an async batch may hold hundreds): it is
   * published after the commit, so it comes due after every one of their deadlines, and each
   * order is expired on its own when it arrives.
   */
  async scheduleInTransaction(trx: Tx, orders: Array<{ id: string; expiresAt: string }>): Promise<void> {
    if (!this.deps.triggers.has('delay-queue') || orders.length === 0) return;
    const { expiry } = this.deps.topology;
    const messages = [];
    for (let i = 0; i < orders.length; i += EXPIRY_MESSAGE_MAX_ORDERS) {
      const chunk = orders.slice(i, i + EXPIRY_MESSAGE_MAX_ORDERS);
      const expiresAt = chunk.reduce((latest, order) => (order.expiresAt > latest ? order.expiresAt : latest), chunk[0].expiresAt);
      messages.push({
        exchange: expiry.exchange,
        routingKey: expiry.waitRoutingKey,
        messageId: chunk.length === 1 ? `expiry:${chunk[0].id}` : `expiry:${chunk[0].id}+${chunk.length}`,
        payload: chunk.length === 1 ? { orderId: chunk[0].id, expiresAt } : { orderIds: chunk.map((order) => order.id), expiresAt },
      });
    }
    await this.deps.outbox.enqueue(trx, messages);
  }

  /** Once the orders are committed: the fast trigger (Redis key TTL). Best effort; the others back it up. */
  async scheduleKeys(orders: Array<{ id: string; expiresAt: string }>): Promise<void> {
    if (!this.deps.triggers.has('keyspace') || orders.length === 0) return;
    const pipeline = this.deps.redis.pipeline();
    for (const order of orders) {
      pipeline.set(`${this.keyPrefix}${order.id}`, '1', 'PX', Math.max(1, Date.parse(order.expiresAt) - this.deps.clock.now()));
    }
    await pipeline.exec().catch((err) =>
      this.deps.logger.warn('expiry keys not set; the delay queue and sweep will expire the orders', {
        orderIds: orders.map((o) => o.id).slice(0, 20),
        error: errorMessage(err),
      }),
    );
  }

  /**
   * Expires the order if it is still unpaid and overdue; true when this call did it. Idempotent:
   * every trigger may fire, in any process, any number of times.
   */
  async expire(orderId: string, trigger: ExpiryTrigger): Promise<boolean> {
    return (await this.tryExpire(orderId, trigger)).expired;
  }

  /** As `expire`, and when the order is still pending but not due yet, in how many ms it will be. */
  private async tryExpire(orderId: string, trigger: ExpiryTrigger): Promise<{ expired: boolean; dueInMs?: number }> {
    const { db, orders, release } = this.deps;
    const expired = await inTransaction(db, async (trx) => {
      if (!(await orders.expireIfDue(trx, orderId))) {
        const dueInMs = await orders.dueInMs(trx, orderId);
        return dueInMs === null ? null : { dueInMs };
      }
      const order = await orders.ref(trx, orderId);
      return { releaseSagaId: await release.release(trx, order, 'expiry'), expiresAt: order.expiresAt };
    });
    if (!expired) return { expired: false };
    if ('dueInMs' in expired) return { expired: false, dueInMs: expired.dueInMs };
    const latenessMs = Math.max(0, this.deps.clock.now() - expired.expiresAt.getTime());
    this.deps.onExpired?.(trigger, latenessMs);
    this.deps.logger.info('order expired', { orderId, trigger, latenessMs, sagaId: expired.releaseSagaId, status: 'EXPIRED' });
    return { expired: true };
  }

  /** The backstop: expires every overdue unpaid order both triggers missed. Returns how many. */
  async sweepOnce(limit = 500): Promise<number> {
    if (!this.deps.triggers.has('sweep')) return 0;
    const overdue = await this.deps.orders.overdue(limit);
    let expired = 0;
    for (const orderId of overdue) if (await this.expire(orderId, 'sweep')) expired++;
    return expired;
  }

  /** The delay queue's consumer. */
  async handleDue(body: unknown): Promise<void> {
    const parsed = dueMessage.safeParse(body);
    if (!parsed.success) throw new UnprocessableMessageError(`not an expiry message: ${parsed.error.issues[0].message}`);
    const orderIds = 'orderIds' in parsed.data ? parsed.data.orderIds : [parsed.data.orderId];
    // A failure throws the whole message back for a retry: expiring is idempotent.
    let next = 0;
    const expireNext = async () => {
      while (next < orderIds.length) await this.expire(orderIds[next++], 'delay-queue');
    };
    await Promise.all(Array.from({ length: Math.min(EXPIRY_CONCURRENCY, orderIds.length) }, expireNext));
  }

  /**
   * Subscribes to Redis `expired` events of this namespace's expiry keys. Turns the events on
   * (merged into the current flags) now and after every reconnect: Redis forgets its CONFIG SET
   * when it restarts.
   */
  async startKeyspaceSubscriber(): Promise<void> {
    if (!this.deps.triggers.has('keyspace')) return;
    const { redis, logger } = this.deps;
    const onExpiredKey = async (orderId: string, retried: boolean) => {
      const result = await this.tryExpire(orderId, 'keyspace');
      // Redis may expire the key a hair before the database's clock reaches expires_at (the two
      // round to the millisecond differently): look again once it is due.
      if (!result.expired && result.dueInMs !== undefined && !retried && result.dueInMs < 60_000) {
        setTimeout(() => void onExpiredKey(orderId, true).catch(() => {}), Math.max(1, result.dueInMs + 1)).unref();
      }
    };
    this.events = new ExpiredKeyEvents(redis, logger, (key) => {
      if (!key.startsWith(this.keyPrefix)) return;
      const orderId = key.slice(this.keyPrefix.length);
      onExpiredKey(orderId, false).catch((err) =>
        logger.warn('expiry from keyspace event failed; the sweep will retry', { orderId, error: errorMessage(err) }),
      );
    });
    await this.events.start();
  }

  async stop(): Promise<void> {
    await this.events?.stop();
    this.events = null;
  }
}
