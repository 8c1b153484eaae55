import { AppError, notFound } from '../errors';
import type { OrderStore } from '../orders/order-store';
import { withActions, type SagaDefinition } from '../sagas/engine';
import type { Clock } from '../support/time';
import type { PayPasswordGuard } from '../users/pay-password';
import { OrderAlreadyPaidError, type Wallet } from './wallet';

/** What the pay saga records (and its compensation messages carry): never the password. */
export interface PaySagaInput {
  orderId: string;
  userId: string;
}

export interface PaySagaContext extends PaySagaInput {
  payPassword: string;
  totalCents?: number;
}

export const orderNotPayable = (status: string, why = `the order is ${status}`) =>
  new AppError('ORDER_NOT_PAYABLE', `order cannot be paid: ${why}`, { status });

/** The pay saga's steps, as the contract's table lists them. */
export const PAY_SAGA_STEPS = [
  { name: 'pay_check', tag: 'pay_check_cancel', undoneBy: [] },
  { name: 'pay_money', tag: 'pay_money_cancel', undoneBy: ['balance-restore'] },
  { name: 'pay_order_update', tag: 'pay_cancel', undoneBy: ['balance-restore'] },
] as const;

export interface PaySagaDeps {
  orders: OrderStore;
  wallet: Wallet;
  passwords: PayPasswordGuard;
  clock: Clock;
}

/**
 * The pay saga. Money moves through the wallet only; the ledger's one payment per order lets
 * concurrent pays of one order charge once. A failure after the deduction is undone by the
 * balance-restore listener, which adds back what this saga's ledger entry says and leaves the
 * order payable.
 */
export function paySaga(deps: PaySagaDeps): SagaDefinition<PaySagaContext> {
  const { orders, wallet, passwords, clock } = deps;
  return {
    type: 'pay',
    recordedInput: ({ orderId, userId }) => ({ orderId, userId }),
    steps: withActions<PaySagaContext, typeof PAY_SAGA_STEPS>(PAY_SAGA_STEPS, {
      // Owner, status, deadline, pay password, balance: reads only.
      async pay_check(pay) {
        const order = await orders.findRef(pay.userId, pay.orderId);
        if (!order) throw notFound('order');
        if (order.status !== 'PENDING_PAYMENT') throw orderNotPayable(order.status);
        if (order.expiresAt.getTime() <= clock.now()) throw orderNotPayable(order.status, 'its payment window has passed');
        await passwords.verify(pay.userId, pay.payPassword);
        pay.totalCents = order.totalCents;
        const balanceCents = await wallet.balanceOf(pay.userId);
        if (balanceCents < pay.totalCents) {
          throw new AppError('INSUFFICIENT_BALANCE', `the balance (${balanceCents} cents) does not cover the total (${pay.totalCents} cents)`, {
            balanceCents,
            totalCents: pay.totalCents,
          });
        }
      },
      // One conditional, relative deduction and the ledger entry that can exist once per order.
      async pay_money(pay, run) {
        await run.guarded(async (trx) => {
          try {
            await wallet.deduct(trx, { userId: pay.userId, orderId: pay.orderId, sagaId: run.sagaId, amountCents: pay.totalCents as number });
          } catch (err) {
            if (!(err instanceof OrderAlreadyPaidError)) throw err;
            throw orderNotPayable('PENDING_PAYMENT', 'another payment of this order is in progress (or being reversed); retry shortly');
          }
        });
      },
      // PAID only if still PENDING_PAYMENT (an expiry or a cancel may have won); its seats sold.
      async pay_order_update(pay, run) {
        await run.guarded(async (trx) => {
          if (!(await orders.markPaid(trx, pay.orderId, run.sagaId))) throw orderNotPayable(await orders.statusOf(trx, pay.orderId));
        });
      },
    }),
  };
}
