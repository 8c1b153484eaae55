import { isDuplicateKey, toNumber, type Db } from '../db/database';
import { AppError, notFound } from '../errors';
import type { Clock } from '../support/time';
import type { PayPasswordGuard } from '../users/pay-password';
import type { SagaDefinition } from './engine';

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

/**
 * The pay saga. Money moves by relative, conditional statements only; the ledger's unique key
 * (order, kind) lets one payment of an order exist at a time, so concurrent pays of one order
 * charge once. A failure after the deduction is undone by the balance-restore listener, which
 * adds back what this saga's ledger entry says and leaves the order payable.
 */
export function paySaga(deps: { db: Db; passwords: PayPasswordGuard; clock: Clock }): SagaDefinition<PaySagaContext> {
  const { db, passwords, clock } = deps;
  return {
    type: 'pay',
    recordedInput: ({ orderId, userId }) => ({ orderId, userId }),
    steps: [
      {
        // Owner, status, deadline, pay password, balance: reads only.
        name: 'pay_check',
        tag: 'pay_check_cancel',
        undoneBy: [],
        async action(pay) {
          // Another user's order, or one whose order saga has not completed, does not exist for the caller.
          const order = await db('orders')
            .join('sagas', 'sagas.id', 'orders.saga_id')
            .where({ 'orders.id': pay.orderId, 'orders.user_id': pay.userId, 'sagas.status': 'COMPLETED' })
            .first('orders.status', 'orders.total_cents', 'orders.expires_at');
          if (!order) throw notFound('order');
          if (order.status !== 'PENDING_PAYMENT') throw orderNotPayable(order.status);
          if (order.expires_at.getTime() <= clock.now()) throw orderNotPayable(order.status, 'its payment window has passed');
          await passwords.verify(pay.userId, pay.payPassword);
          pay.totalCents = toNumber(order.total_cents);
          const user = await db('users').where({ id: pay.userId }).first('balance_cents');
          const balanceCents = toNumber(user.balance_cents);
          if (balanceCents < pay.totalCents) {
            throw new AppError('INSUFFICIENT_BALANCE', `the balance (${balanceCents} cents) does not cover the total (${pay.totalCents} cents)`, {
              balanceCents,
              totalCents: pay.totalCents,
            });
          }
        },
      },
      {
        // One conditional, relative deduction and the ledger entry that can exist once per order.
        name: 'pay_money',
        tag: 'pay_money_cancel',
        undoneBy: ['balance-restore'],
        async action(pay, run) {
          const total = pay.totalCents as number;
          await run.guarded(async (trx) => {
            // The user row first: its exclusive lock, taken before the ledger insert's foreign-key
            // check would take a shared one, keeps concurrent pays of one user from deadlocking.
            const deducted = await trx('users')
              .where({ id: pay.userId })
              .andWhere('balance_cents', '>=', total)
              .decrement('balance_cents', total);
            if (deducted === 0) throw new AppError('INSUFFICIENT_BALANCE', `the balance does not cover the total (${total} cents)`, { totalCents: total });
            try {
              await trx('ledger_entries').insert({ user_id: pay.userId, kind: 'payment', amount_cents: total, order_id: pay.orderId, saga_id: run.sagaId });
            } catch (err) {
              if (!isDuplicateKey(err)) throw err;
              throw orderNotPayable('PENDING_PAYMENT', 'another payment of this order is in progress (or being reversed); retry shortly');
            }
          });
        },
      },
      {
        // PAID only if still PENDING_PAYMENT (an expiry or a cancel may have won); its seats sold.
        name: 'pay_order_update',
        tag: 'pay_cancel',
        undoneBy: ['balance-restore'],
        async action(pay, run) {
          await run.guarded(async (trx) => {
            const paid = await trx('orders')
              .where({ id: pay.orderId, status: 'PENDING_PAYMENT' })
              .update({ status: 'PAID', paid_saga_id: run.sagaId, updated_at: trx.fn.now(3) });
            if (paid === 0) {
              const order = await trx('orders').where({ id: pay.orderId }).first('status');
              throw orderNotPayable(order?.status ?? 'gone');
            }
            await trx('seat_holds').where({ order_id: pay.orderId, status: 'held' }).update({ status: 'sold' });
          });
        },
      },
    ],
  };
}
