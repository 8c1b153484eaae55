import type { Tx } from '../db/database';
import type { SagaLog } from '../sagas/saga-log';
import type { IdGenerator } from '../support/ids';

/** Why an order gives its seats back; also the type of the saga record that releases them. */
export type ReleaseReason = 'expiry' | 'cancel' | 'refund';

/** The tag every release goes out with: the seat-release listener is bound to it. */
export const RELEASE_TAG = 'order_cancel';

/** For the topology: who undoes a release (expiry, cancel, refund). */
export const RELEASE_ROUTE = { tag: RELEASE_TAG, undoneBy: ['seat-release'] } as const;

/**
 * Inside the transaction that just moved the order out of PENDING_PAYMENT or PAID: records the
 * release (a saga of type `reason`, in COMPENSATING) and its `order_cancel` message in the outbox.
 * The seat-release listener frees the seats once, in the database and then in the Redis view.
 * Returns the release saga's id.
 */
export async function releaseOrderSeats(
  trx: Tx,
  deps: { sagaLog: SagaLog; ids: IdGenerator },
  order: { id: string; userId: string; showId: string },
  reason: ReleaseReason,
): Promise<string> {
  const seatIds: string[] = await trx('order_seats').where({ order_id: order.id }).orderBy('seat_id').pluck('seat_id');
  const sagaId = deps.ids.next();
  await deps.sagaLog.recordRelease(trx, {
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
