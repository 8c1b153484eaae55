import type { CompensationListener } from './listener-runtime';

/**
 * Deletes the order a failed saga inserted (its seats list goes with it); the saga record stays.
 * Only that saga's own order, and never one that was paid: an order can be paid only once its
 * order saga COMPLETED, so a failed saga's order is unpaid — PENDING_PAYMENT, or EXPIRED when the
 * saga stalled past the payment window before it was compensated.
 */
export function orderDeleteListener(): CompensationListener {
  return {
    name: 'order-delete',
    async undo(trx, message) {
      const { orderId } = message.input as { orderId: string };
      const deleted = await trx('orders')
        .where({ id: orderId, saga_id: message.sagaId })
        .whereIn('status', ['PENDING_PAYMENT', 'EXPIRED', 'CANCELLED'])
        .delete();
      return { changed: deleted > 0, detail: deleted > 0 ? `deleted order ${orderId}` : `order ${orderId} did not exist` };
    },
  };
}
