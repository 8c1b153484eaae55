import type { Db } from '../db/database';
import { toNumber } from '../db/database';
import { AppError, notFound } from '../errors';
import type { Logger } from '../observability/logger';
import type { SagaDefinition, SagaEngine } from '../sagas/engine';
import type { OrderSagaContext } from '../sagas/order-saga';
import type { Shows } from '../shows/shows';
import type { Clock } from '../support/time';
import type { IdGenerator } from '../support/ids';

export type OrderStatus = 'PENDING_PAYMENT' | 'PAID' | 'CANCELLED' | 'EXPIRED' | 'REFUNDED';

export interface OrderView {
  id: string;
  status: OrderStatus;
  showId: string;
  seatIds: string[];
  totalCents: number;
  expiresAt: string;
  sagaId: string;
  createdAt: string;
}

export interface OrdersDeps {
  db: Db;
  shows: Shows;
  engine: SagaEngine;
  orderSaga: SagaDefinition<OrderSagaContext>;
  ids: IdGenerator;
  clock: Clock;
  paymentWindowMs: number;
}

export class Orders {
  constructor(private readonly deps: OrdersDeps) {}

  /**
   * Places an order through the order saga. The request is validated with reads only (show
   * exists, seats are its own) so bad input writes nothing; then the saga holds the seats and
   * inserts the order, or compensates and throws SagaFailedError.
   */
  async place(userId: string, request: { showId: string; seatIds: string[] }, logger: Logger): Promise<OrderView> {
    const { shows, engine, orderSaga, ids, clock, paymentWindowMs } = this.deps;
    const show = await shows.get(request.showId);
    const foreign = await shows.foreignSeats(show.id, request.seatIds);
    if (foreign.length > 0) {
      throw new AppError('VALIDATION_FAILED', `seat(s) ${foreign.join(', ')} are not seats of show ${show.id}`, {
        seatIds: foreign,
      });
    }
    const orderId = ids.next();
    const placedAt = clock.now();
    const order: OrderSagaContext = {
      orderId,
      userId,
      showId: show.id,
      seatIds: request.seatIds,
      priceCents: show.priceCents,
      expiresAt: new Date(placedAt + paymentWindowMs).toISOString(),
    };
    const sagaId = await engine.run(orderSaga, order, { orderId, userId, logger: logger.child({ orderId }) });
    return {
      id: orderId,
      status: 'PENDING_PAYMENT',
      showId: show.id,
      seatIds: request.seatIds,
      totalCents: order.totalCents as number,
      expiresAt: order.expiresAt,
      sagaId,
      createdAt: new Date(placedAt).toISOString(),
    };
  }

  /** The caller's order; another user's order, or one whose saga has not completed, is not found. */
  async get(userId: string, orderId: string): Promise<OrderView> {
    const [order] = await this.query(userId).where('orders.id', orderId);
    if (!order) throw notFound('order');
    return (await this.withSeats([order]))[0];
  }

  /** The caller's orders, newest first. */
  async list(userId: string, limit = 100): Promise<OrderView[]> {
    const rows = await this.query(userId).orderBy('orders.id', 'desc').limit(limit);
    return this.withSeats(rows);
  }

  private query(userId: string) {
    return this.deps
      .db('orders')
      .join('sagas', 'sagas.id', 'orders.saga_id')
      .where('orders.user_id', userId)
      .andWhere('sagas.status', 'COMPLETED')
      .select('orders.*');
  }

  private async withSeats(rows: any[]): Promise<OrderView[]> {
    if (rows.length === 0) return [];
    const seats: Array<{ order_id: string; seat_id: string }> = await this.deps
      .db('order_seats')
      .whereIn(
        'order_id',
        rows.map((r) => r.id),
      )
      .orderBy('seat_id')
      .select('order_id', 'seat_id');
    const byOrder = new Map<string, string[]>();
    for (const s of seats) byOrder.set(s.order_id, [...(byOrder.get(s.order_id) ?? []), s.seat_id]);
    return rows.map((r) => ({
      id: r.id,
      status: r.status,
      showId: r.show_id,
      seatIds: byOrder.get(r.id) ?? [],
      totalCents: toNumber(r.total_cents),
      expiresAt: r.expires_at.toISOString(),
      sagaId: r.saga_id,
      createdAt: r.created_at.toISOString(),
    }));
  }
}
