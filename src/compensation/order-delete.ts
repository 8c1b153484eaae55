import type { CompensationListener } from './listener-runtime';

/** Deletes the order a failed saga inserted (its seats list goes with it); the saga record stays. */
export function orderDeleteListener(): CompensationListener {
  return {
    name: 'order-delete',
    async undo(trx, message) {
      const { orderId } = message.input as { orderId: string };
      // Only an unpaid order: a saga's own order row is never paid before the saga completed.
      const deleted = await trx('orders').where({ id: orderId, status: 'PENDING_PAYMENT' }).delete();
      return { changed: deleted > 0, detail: deleted > 0 ? `deleted order ${orderId}` : `order ${orderId} did not exist` };
    },
  };
}
