import type { Tx } from '../db/database';
import { toNumber } from '../db/database';
import type { SeatHolds } from '../inventory/seat-holds';
import type { OrderStore } from '../orders/order-store';
import type { Clock } from '../support/time';
import type { FlagReason, NotificationRow } from './notification';
import { OrderAlreadyPaidError, type Wallet } from './wallet';

/** What one settling attempt did: `unchanged` when the notification was no longer UNMATCHED. */
export interface Settlement {
  outcome: 'settled' | 'flagged' | 'unmatched' | 'unchanged';
  notification: NotificationRow;
}

/** Someone else (a pay saga) is paying the order right now: roll back, try again next pass. */
export class OrderBeingPaid extends Error {}

export interface SettleDeps {
  orders: OrderStore;
  holds: SeatHolds;
  wallet: Wallet;
  clock: Clock;
  matchDeadlineMs: number;
}

/**
 * Under the notification's row lock: find its order (known = its order saga COMPLETED), and
 * either settle it (the provider's money credited to the buyer's wallet pays the order, in this
 * transaction), flag it, or count one more attempt. Every change is a conditional UPDATE.
 * Throws OrderBeingPaid when a pay saga holds the order's payment: the caller rolls back.
 */
export async function settleNotification(trx: Tx, deps: SettleDeps, txnId: string): Promise<Settlement> {
  const { orders, holds, wallet, clock, matchDeadlineMs } = deps;
  const note: NotificationRow | undefined = await trx('payment_notifications').where({ txn_id: txnId }).forUpdate().first();
  if (!note) throw new Error(`payment notification ${txnId} not found`);
  if (note.status !== 'UNMATCHED') return { outcome: 'unchanged', notification: note };

  // An order row whose saga is still running may yet be deleted by compensation: not known yet.
  const order = await orders.lockVisible(trx, note.order_id);
  if (!order) {
    const waitedMs = clock.now() - note.received_at.getTime();
    if (waitedMs > matchDeadlineMs) return flag(trx, deps, note, 'NO_ORDER', `no order ${note.order_id} appeared within ${matchDeadlineMs} ms`);
    await trx('payment_notifications').where({ txn_id: txnId, status: 'UNMATCHED' }).increment('match_attempts', 1);
    return { outcome: 'unmatched', notification: { ...note, match_attempts: note.match_attempts + 1 } };
  }

  const amountCents = toNumber(note.amount_cents);
  if (amountCents !== order.totalCents) return flag(trx, deps, note, 'AMOUNT_MISMATCH', `paid ${amountCents} cents, the order's total is ${order.totalCents}`);
  if (order.status !== 'PENDING_PAYMENT') return flag(trx, deps, note, 'ORDER_NOT_PAYABLE', `the order is ${order.status}`);
  if (note.paid_at.getTime() > order.expiresAt.getTime()) {
    return flag(trx, deps, note, 'ORDER_NOT_PAYABLE', `paid at ${note.paid_at.toISOString()}, after the order expired at ${order.expiresAt.toISOString()}`);
  }
  // Rather undersell than oversell: an order whose seats are no longer all held is not sold.
  const held = await holds.lockHeld(trx, order.id);
  const seatCount = (await orders.seatIds(trx, order.id)).length;
  if (held.length !== seatCount) return flag(trx, deps, note, 'ORDER_NOT_PAYABLE', `only ${held.length} of the order's ${seatCount} seats are still held`);

  // The provider's money enters the wallet and pays the order: the balance does not move.
  try {
    await wallet.creditAndPay(trx, { userId: order.userId, orderId: order.id, amountCents });
  } catch (err) {
    // One payment per order: a pay saga wrote its payment and has not finished.
    if (err instanceof OrderAlreadyPaidError) throw new OrderBeingPaid();
    throw err;
  }
  if (!(await orders.markPaid(trx, order.id, null))) throw new OrderBeingPaid();
  const resolvedAt = new Date(clock.now());
  await trx('payment_notifications').where({ txn_id: txnId, status: 'UNMATCHED' }).update({ status: 'SETTLED', resolved_at: resolvedAt });
  return { outcome: 'settled', notification: { ...note, status: 'SETTLED', resolved_at: resolvedAt } };
}

async function flag(trx: Tx, deps: SettleDeps, note: NotificationRow, reason: FlagReason, detail: string): Promise<Settlement> {
  const resolvedAt = new Date(deps.clock.now());
  const change = { status: 'FLAGGED' as const, flag_reason: reason, detail: detail.slice(0, 255), resolved_at: resolvedAt };
  await trx('payment_notifications').where({ txn_id: note.txn_id, status: 'UNMATCHED' }).update(change);
  return { outcome: 'flagged', notification: { ...note, ...change } };
}
