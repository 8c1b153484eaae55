import { toNumber } from '../db/database';
import type { CompensationListener } from './listener-runtime';

/**
 * Gives back what a failed pay saga deducted, exactly: the amount of the ledger entry that saga
 * wrote (none: it deducted nothing, a no-op). When that saga had already marked the order PAID
 * (pay_cancel after its effect), the order goes back to PENDING_PAYMENT and its seats to held, so
 * the order stays payable. The ledger entry is removed with the money it recorded (the saga log
 * keeps the history), which frees the order's one payment slot for the next attempt.
 */
export function balanceRestoreListener(): CompensationListener {
  return {
    name: 'balance-restore',
    async undo(trx, message) {
      const { orderId } = message.input as { orderId: string };
      const entry = await trx('ledger_entries')
        .where({ order_id: orderId, kind: 'payment', saga_id: message.sagaId })
        .forUpdate()
        .first('id', 'user_id', 'amount_cents');
      if (!entry) return { changed: false, detail: `saga ${message.sagaId} deducted nothing for order ${orderId}` };
      const amount = toNumber(entry.amount_cents);
      const reverted = await trx('orders')
        .where({ id: orderId, status: 'PAID', paid_saga_id: message.sagaId })
        .update({ status: 'PENDING_PAYMENT', paid_saga_id: null, updated_at: trx.fn.now(3) });
      if (reverted > 0) await trx('seat_holds').where({ order_id: orderId, status: 'sold' }).update({ status: 'held' });
      await trx('ledger_entries').where({ id: entry.id }).delete();
      await trx('users').where({ id: entry.user_id }).increment('balance_cents', amount);
      return {
        changed: true,
        detail: `restored ${amount} cents to user ${entry.user_id}${reverted > 0 ? `; order ${orderId} payable again` : ''}`,
      };
    },
  };
}
