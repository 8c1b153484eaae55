import type { SeatHolds } from '../inventory/seat-holds';
import type { SeatInventory } from '../inventory/seat-inventory';
import type { CompensationListener } from './listener-runtime';

/**
 * Releases exactly the seats this order holds and has not paid for: in the database (the truth,
 * inside the compensation's transaction) and then in the Redis view (idempotent: only seats the
 * view still shows as held by this order). A seat re-held by another order since is untouched.
 */
export function seatReleaseListener(deps: { holds: SeatHolds; inventory: SeatInventory }): CompensationListener {
  const { holds, inventory } = deps;
  return {
    name: 'seat-release',
    async undo(trx, message) {
      const { orderId } = message.input as { orderId: string };
      const released = await holds.releaseHeld(trx, orderId);
      return {
        changed: released > 0,
        detail: released > 0 ? `released ${released} seat(s) of order ${orderId}` : `order ${orderId} held no seat`,
      };
    },
    async afterCommit(message) {
      const { orderId, showId, seatIds } = message.input as { orderId: string; showId: string; seatIds: string[] };
      await inventory.release(showId, orderId, seatIds);
    },
  };
}
