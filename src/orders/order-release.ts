import type { Tx } from '../db/database';
import type { SagaLog } from '../sagas/saga-log';
import type { IdGenerator } from '../support/ids';
import type { OrderStore } from './order-store';

/** Why an order gives its seats back; also the type of the saga record that releases them. */
export type ReleaseReason = 'expiry' | 'cancel' | 'refund';

/** The tag every release goes out with: the seat-release listener is bound to it. */
export const RELEASE_TAG = 'order_cancel';

/** For the topology: who undoes a release (expiry, cancel, refund). */
export const RELEASE_ROUTE = { tag: RELEASE_TAG, undoneBy: ['seat-release'] } as const;

/**
 * Gives an order's seats back after it left PENDING_PAYMENT or PAID (expired, cancelled,
 * refunded): inside that transaction, records the release (a saga of type `reason`, in
 * COMPENSATING) and its `order_cancel` message in the outbox. The seat-release listener frees the
 * seats once, in the database and then in the Redis view.
 */
export class OrderRelease {
  constructor(private readonly deps: { orders: OrderStore; sagaLog: SagaLog; ids: IdGenerator }) {}

  /** Returns the release saga's id. */
  async release(trx: Tx, order: { id: string; userId: string; showId: string }, reason: ReleaseReason): Promise<string> {
    const seatIds = await this.deps.orders.seatIds(trx, order.id);
    const sagaId = this.deps.ids.next();
    await this.deps.sagaLog.recordRelease(trx, {
      id: sagaId,
      type: reason,
      tag: RELEASE_TAG,
      orderId: order.id,
      userId: order.userId,
      input: { orderId: order.id, userId: order.userId, showId: order.showId, seatIds, reason },
      reason: `order ${order.id}: ${reason}`,
    });
    return sagaId;
  }
}
