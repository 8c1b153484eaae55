import { isDuplicateKey, type Db } from '../db/database';
import { AppError } from '../errors';
import type { Tx } from '../db/database';
import type { SeatInventory } from '../inventory/seat-inventory';
import type { SagaDefinition } from './engine';

/** The order saga's input, recorded on the saga: what compensation needs after a crash. */
export interface OrderSagaInput {
  orderId: string;
  userId: string;
  showId: string;
  seatIds: string[];
  priceCents: number;
  expiresAt: string;
  /** When the order was placed: its created_at, so the POST's answer and a later GET agree. */
  createdAt?: string;
}

export interface OrderSagaContext extends OrderSagaInput {
  totalCents?: number;
}

const seatsTaken = (seatIds: string[]) =>
  new AppError('SEATS_TAKEN', `seat${seatIds.length > 1 ? 's' : ''} ${seatIds.join(', ')} already taken`, { seatIds });

export interface OrderSagaDeps {
  db: Db;
  inventory: SeatInventory;
  /** Writes the order's durable expiry trigger in the transaction that inserts the order. */
  scheduleExpiry(trx: Tx, order: { id: string; expiresAt: string }): Promise<void>;
}

export function orderSaga(deps: OrderSagaDeps): SagaDefinition<OrderSagaContext> {
  const { db, inventory, scheduleExpiry } = deps;
  return {
    type: 'order',
    steps: [
      {
        // The seats exist and belong to the show: checked before the saga starts, because bad
        // input must write nothing. Here: they are free (Redis view), else SEATS_TAKEN.
        name: 'seats_check',
        tag: 'order_seats_cancel',
        undoneBy: [],
        async action(order) {
          const taken = await inventory.takenAmong(order.showId, order.seatIds);
          if (taken.length > 0) throw seatsTaken(taken);
        },
      },
      {
        // Redis first, atomically for the whole list (losers of a race learn it without touching
        // the database), then the database hold, whose primary key is the final word.
        name: 'seats_hold',
        tag: 'order_add_seats_cancel',
        undoneBy: ['seat-release'],
        async action(order, run) {
          const held = await inventory.hold(order.showId, order.orderId, order.seatIds);
          if (!held.ok) throw seatsTaken(held.taken);
          try {
            await run.guarded((trx) =>
              trx('seat_holds').insert(
                order.seatIds.map((seatId) => ({ seat_id: seatId, show_id: order.showId, order_id: order.orderId, status: 'held' })),
              ),
            );
          } catch (err) {
            // The Redis hold was provisional: the database did not take it.
            await inventory.release(order.showId, order.orderId, order.seatIds);
            if (!isDuplicateKey(err)) throw err;
            // The view missed a hold the database has (Redis lost keys): correct it, answer taken.
            const holders = await db('seat_holds').whereIn('seat_id', order.seatIds).select('seat_id as seatId', 'order_id as orderId');
            await inventory.markHeld(order.showId, holders);
            throw seatsTaken(holders.map((h: { seatId: string }) => h.seatId));
          }
        },
      },
      {
        name: 'calc_money',
        tag: 'order_calc_money_cancel',
        undoneBy: ['seat-release'],
        async action(order) {
          order.totalCents = order.priceCents * order.seatIds.length;
        },
      },
      {
        name: 'order_add',
        tag: 'order_add_cancel',
        undoneBy: ['seat-release', 'order-delete'],
        async action(order, run) {
          await run.guarded(async (trx) => {
            await trx('orders').insert({
              id: order.orderId,
              user_id: order.userId,
              show_id: order.showId,
              status: 'PENDING_PAYMENT',
              total_cents: order.totalCents,
              saga_id: run.sagaId,
              expires_at: new Date(order.expiresAt),
              ...(order.createdAt ? { created_at: new Date(order.createdAt) } : {}),
            });
            await trx('order_seats').insert(order.seatIds.map((seatId) => ({ order_id: order.orderId, seat_id: seatId })));
            // The durable expiry trigger commits with the order (a no-op if the saga is compensated).
            await scheduleExpiry(trx, { id: order.orderId, expiresAt: order.expiresAt });
          });
        },
      },
    ],
  };
}
