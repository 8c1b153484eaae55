import { inTransaction, type Db } from '../db/database';
import { AppError, notFound } from '../errors';
import type { SeatHolds } from '../inventory/seat-holds';
import type { OrderRelease } from '../orders/order-release';
import type { OrderStore } from '../orders/order-store';
import type { Wallet } from './wallet';

export interface RefundsDeps {
  db: Db;
  orders: OrderStore;
  holds: SeatHolds;
  wallet: Wallet;
  release: OrderRelease;
}

/**
 * PAID -> REFUNDED by the order's owner, in one transaction: what the order's payment entry says
 * goes back to the balance (a refund entry, once per order) and the seats go back on sale through
 * `order_cancel`. A payment whose pay saga has not completed cannot be refunded yet: it might
 * still be compensated, and the money must not come back twice.
 */
export class Refunds {
  constructor(private readonly deps: RefundsDeps) {}

  async refund(userId: string, orderId: string): Promise<{ amountCents: number; balanceCents: number; releaseSagaId: string }> {
    const { db, orders, holds, wallet, release } = this.deps;
    return inTransaction(db, async (trx) => {
      if (!(await orders.markRefunded(trx, userId, orderId))) {
        const status = await orders.statusVisibleTo(userId, orderId);
        if (status === null) throw notFound('order');
        const why = status === 'PAID' ? 'its payment is still being processed; retry shortly' : `the order is ${status}, not PAID`;
        throw new AppError('ORDER_NOT_REFUNDABLE', `order cannot be refunded: ${why}`, { status });
      }
      const payment = await wallet.refund(trx, orderId);
      // Sold seats become held by the refunded order for a moment: the release frees held seats.
      await holds.unsell(trx, orderId);
      const order = await orders.ref(trx, orderId);
      const releaseSagaId = await release.release(trx, order, 'refund');
      return { amountCents: payment.amountCents, balanceCents: await wallet.balanceOf(userId, trx), releaseSagaId };
    });
  }
}
