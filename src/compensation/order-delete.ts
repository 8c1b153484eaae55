import type { OrderStore } from '../orders/order-store';
import type { CompensationListener } from './listener-runtime';

/**
 * Deletes the order a failed saga inserted (its seats list goes with it); the saga record stays.
 * Only that saga's own order, and never one that was paid (see OrderStore.deleteOfFailedSaga).
 */
export function orderDeleteListener(orders: OrderStore): CompensationListener {
  return {
    name: 'order-delete',
    async undo(trx, message) {
      const { orderId } = message.input as { orderId: string };
      const deleted = await orders.deleteOfFailedSaga(trx, orderId, message.sagaId);
      return { changed: deleted, detail: deleted ? `deleted order ${orderId}` : `order ${orderId} did not exist` };
    },
  };
}
