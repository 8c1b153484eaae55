import type { CompensationListener } from '../compensation/listener-runtime';
import type { OrderStore } from '../orders/order-store';
import type { Wallet } from './wallet';

/**
 * Gives back what a failed pay saga deducted, exactly: the amount of the ledger entry that saga
 * wrote (none: it deducted nothing, a no-op). When that saga had already marked the order PAID
 * (pay_cancel after its effect), the order goes back to PENDING_PAYMENT and its seats to held, so
 * the order stays payable. The ledger entry is removed with the money it recorded (the saga log
 * keeps the history), which frees the order's one payment slot for the next attempt.
 */
export function balanceRestoreListener(deps: { orders: OrderStore; wallet: Wallet }): CompensationListener {
  const { orders, wallet } = deps;
  return {
    name: 'balance-restore',
    async undo(trx, message) {
      const { orderId } = message.input as { orderId: string };
      const entry = await wallet.lockPaymentOfSaga(trx, orderId, message.sagaId);
      if (!entry) return { changed: false, detail: `saga ${message.sagaId} deducted nothing for order ${orderId}` };
      const reverted = await orders.revertPayment(trx, orderId, message.sagaId);
      await wallet.reverse(trx, entry);
      return {
        changed: true,
        detail: `restored ${entry.amountCents} cents to user ${entry.userId}${reverted ? `; order ${orderId} payable again` : ''}`,
      };
    },
  };
}
