import { inTransaction, isDuplicateKey, toNumber, type Db, type Tx } from '../db/database';
import { AppError, notFound } from '../errors';

/** A payment of an order as the ledger recorded it: what a reversal or a refund gives back. */
export interface PaymentEntry {
  id: string;
  userId: string;
  amountCents: number;
}

/** The ledger already has a payment of this order: another payment of it is in progress or done. */
export class OrderAlreadyPaidError extends Error {
  constructor(readonly orderId: string) {
    super(`order ${orderId} already has a payment in the ledger`);
    this.name = 'OrderAlreadyPaidError';
  }
}

/**
 * The one way into `ledger_entries` and users' balances. Money moves only by relative,
 * conditional statements, each with the ledger entry that explains it, in the caller's
 * transaction, so the contract's invariant holds after every commit:
 *
 *   balance = credits − payments + refunds, and never below zero.
 *
 * The ledger's unique key (order, kind) lets one payment and one refund of an order exist at a
 * time. Lock order: the user row first, then the ledger (whose foreign-key check would otherwise
 * take a shared lock on the user row first and deadlock concurrent pays of one user).
 */
export class Wallet {
  constructor(private readonly db: Db) {}

  async balanceOf(userId: string, trx: Db | Tx = this.db): Promise<number> {
    const user = await trx('users').where({ id: userId }).first('balance_cents');
    if (!user) throw notFound('user');
    return toNumber(user.balance_cents);
  }

  /** A top-up: the balance grows by `amountCents`, with its credit entry. */
  async credit(userId: string, amountCents: number): Promise<number> {
    return inTransaction(this.db, async (trx) => {
      const updated = await trx('users').where({ id: userId }).increment('balance_cents', amountCents);
      if (updated === 0) throw notFound('user');
      await trx('ledger_entries').insert({ user_id: userId, kind: 'credit', amount_cents: amountCents });
      return this.balanceOf(userId, trx);
    });
  }

  /**
   * The pay saga's deduction: only if the balance covers it (INSUFFICIENT_BALANCE otherwise), with
   * the order's one payment entry, which names the saga so its compensation finds exactly it.
   */
  async deduct(trx: Tx, payment: { userId: string; orderId: string; sagaId: string; amountCents: number }): Promise<void> {
    const { userId, orderId, sagaId, amountCents } = payment;
    const deducted = await trx('users').where({ id: userId }).andWhere('balance_cents', '>=', amountCents).decrement('balance_cents', amountCents);
    if (deducted === 0) throw new AppError('INSUFFICIENT_BALANCE', `the balance does not cover the total (${amountCents} cents)`, { totalCents: amountCents });
    try {
      await trx('ledger_entries').insert({ user_id: userId, kind: 'payment', amount_cents: amountCents, order_id: orderId, saga_id: sagaId });
    } catch (err) {
      if (isDuplicateKey(err)) throw new OrderAlreadyPaidError(orderId);
      throw err;
    }
  }

  /** The payment a pay saga wrote for the order, locked for the rest of `trx`; null: it deducted nothing. */
  async lockPaymentOfSaga(trx: Tx, orderId: string, sagaId: string): Promise<PaymentEntry | null> {
    const entry = await trx('ledger_entries').where({ order_id: orderId, kind: 'payment', saga_id: sagaId }).forUpdate().first('id', 'user_id', 'amount_cents');
    return entry ? { id: String(entry.id), userId: String(entry.user_id), amountCents: toNumber(entry.amount_cents) } : null;
  }

  /**
   * Undoes a payment that failed: the entry goes with the money it recorded (the saga log keeps
   * the history), which frees the order's one payment slot for the next attempt.
   */
  async reverse(trx: Tx, entry: PaymentEntry): Promise<void> {
    await trx('ledger_entries').where({ id: entry.id }).delete();
    await trx('users').where({ id: entry.userId }).increment('balance_cents', entry.amountCents);
  }

  /** A paid order refunded: what its payment entry says goes back, with a refund entry (once per order). */
  async refund(trx: Tx, orderId: string): Promise<PaymentEntry> {
    const payment = await trx('ledger_entries').where({ order_id: orderId, kind: 'payment' }).first('id', 'user_id', 'amount_cents');
    if (!payment) throw new Error(`order ${orderId} is PAID but has no payment in the ledger`);
    const entry = { id: String(payment.id), userId: String(payment.user_id), amountCents: toNumber(payment.amount_cents) };
    await trx('users').where({ id: entry.userId }).increment('balance_cents', entry.amountCents);
    await trx('ledger_entries').insert({ user_id: entry.userId, kind: 'refund', amount_cents: entry.amountCents, order_id: orderId });
    return entry;
  }

  /**
   * The payment provider's money enters the wallet and pays the order at once: a credit and a
   * payment of the same amount, so the balance does not move. OrderAlreadyPaidError when the order
   * already has a payment (a pay saga's, not finished).
   */
  async creditAndPay(trx: Tx, payment: { userId: string; orderId: string; amountCents: number }): Promise<void> {
    const { userId, orderId, amountCents } = payment;
    try {
      await trx('ledger_entries').insert({ user_id: userId, kind: 'credit', amount_cents: amountCents, order_id: orderId });
      await trx('ledger_entries').insert({ user_id: userId, kind: 'payment', amount_cents: amountCents, order_id: orderId, saga_id: null });
    } catch (err) {
      if (isDuplicateKey(err)) throw new OrderAlreadyPaidError(orderId);
      throw err;
    }
  }
}
