import { isDuplicateKey, type Tx } from '../db/database';
import { AppError } from '../errors';
import type { SeatHolds } from '../inventory/seat-holds';
import type { SeatInventory } from '../inventory/seat-inventory';
import { withActions, type SagaDefinition } from '../sagas/engine';
import type { OrderStore } from './order-store';

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

/**
 * The order saga's steps, as the contract's table lists them. `reservation`: on the async path
 * (flash sale) the step is done by the reservation script in Redis, before the order is queued;
 * the others happen in the transaction that persists the order.
 */
export const ORDER_SAGA_STEPS = [
  { name: 'seats_check', tag: 'order_seats_cancel', undoneBy: [], reservation: true },
  { name: 'seats_hold', tag: 'order_add_seats_cancel', undoneBy: ['seat-release'], reservation: true },
  { name: 'calc_money', tag: 'order_calc_money_cancel', undoneBy: ['seat-release'], reservation: false },
  { name: 'order_add', tag: 'order_add_cancel', undoneBy: ['seat-release', 'order-delete'], reservation: false },
] as const;

const seatsTaken = (seatIds: string[]) => new AppError('SEATS_TAKEN', `seat${seatIds.length > 1 ? 's' : ''} ${seatIds.join(', ')} already taken`, { seatIds });

export interface OrderSagaDeps {
  inventory: SeatInventory;
  holds: SeatHolds;
  orders: OrderStore;
  /** Writes the order's durable expiry trigger in the transaction that inserts the order. */
  expiry: { scheduleInTransaction(trx: Tx, orders: Array<{ id: string; expiresAt: string }>): Promise<void> };
}

export function orderSaga(deps: OrderSagaDeps): SagaDefinition<OrderSagaContext> {
  const { inventory, holds, orders, expiry } = deps;
  return {
    type: 'order',
    steps: withActions<OrderSagaContext, typeof ORDER_SAGA_STEPS>(ORDER_SAGA_STEPS, {
      // The seats exist and belong to the show: checked before the saga starts, because bad
      // input must write nothing. Here: they are free (Redis view), else SEATS_TAKEN.
      async seats_check(order) {
        const taken = await inventory.takenAmong(order.showId, order.seatIds);
        if (taken.length > 0) throw seatsTaken(taken);
      },
      // Redis first, atomically for the whole list (losers of a race learn it without touching
      // the database), then the database hold, whose primary key is the final word.
      async seats_hold(order, run) {
        const held = await inventory.hold(order.showId, order.orderId, order.seatIds);
        if (!held.ok) throw seatsTaken(held.taken);
        try {
          await run.guarded((trx) =>
            holds.hold(
              trx,
              order.seatIds.map((seatId) => ({ seatId, showId: order.showId, orderId: order.orderId })),
            ),
          );
        } catch (err) {
          // The Redis hold was provisional: the database did not take it.
          await inventory.release(order.showId, order.orderId, order.seatIds);
          if (!isDuplicateKey(err)) throw err;
          // The view missed a hold the database has (Redis lost keys): correct it, answer taken.
          const holders = await holds.holdersOf(order.seatIds);
          await inventory.markHeld(order.showId, holders);
          throw seatsTaken(holders.map((h) => h.seatId));
        }
      },
      async calc_money(order) {
        order.totalCents = order.priceCents * order.seatIds.length;
      },
      async order_add(order, run) {
        await run.guarded(async (trx) => {
          const placed = {
            id: order.orderId,
            userId: order.userId,
            showId: order.showId,
            seatIds: order.seatIds,
            expiresAt: order.expiresAt,
            createdAt: order.createdAt,
          };
          await orders.insert(trx, [{ ...placed, totalCents: order.totalCents as number, sagaId: run.sagaId }]);
          // The durable expiry trigger commits with the order (a no-op if the saga is compensated).
          await expiry.scheduleInTransaction(trx, [{ id: order.orderId, expiresAt: order.expiresAt }]);
        });
      },
    }),
  };
}
