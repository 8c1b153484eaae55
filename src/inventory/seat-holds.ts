import type { Db, Tx } from '../db/database';

/** A seat held (or sold) by an order: the database's word, which the Redis view follows. */
export interface SeatHolder {
  seatId: string;
  orderId: string;
  showId: string;
}

/**
 * The one way into `seat_holds`: a seat's row exists while an order holds it (`held`) or bought it
 * (`sold`); its primary key (the seat) refuses a second holder, so it is the final word on "taken"
 * whatever the Redis view said. Every change is a conditional statement on the order's rows.
 */
export class SeatHolds {
  constructor(private readonly db: Db) {}

  /**
   * Holds seats for their orders. Rows go in seat order, so two transactions holding overlapping
   * seats lock them in the same order and cannot deadlock. A seat already held fails the insert
   * (duplicate key): the caller decides what that means.
   */
  async hold(trx: Tx, holders: SeatHolder[]): Promise<void> {
    if (holders.length === 0) return;
    const rows = [...holders]
      .sort((a, b) => compareIds(a.seatId, b.seatId))
      .map((h) => ({ seat_id: h.seatId, show_id: h.showId, order_id: h.orderId, status: 'held' }));
    await trx('seat_holds').insert(rows);
  }

  /** Who holds these seats now. */
  async holdersOf(seatIds: string[], trx: Db | Tx = this.db): Promise<SeatHolder[]> {
    if (seatIds.length === 0) return [];
    return trx('seat_holds').whereIn('seat_id', seatIds).select('seat_id as seatId', 'order_id as orderId', 'show_id as showId');
  }

  /** The order paid: its held seats are sold. */
  async sell(trx: Tx, orderId: string): Promise<number> {
    return trx('seat_holds').where({ order_id: orderId, status: 'held' }).update({ status: 'sold' });
  }

  /** The payment was reversed or refunded: the order's sold seats are held by it again. */
  async unsell(trx: Tx, orderId: string): Promise<number> {
    return trx('seat_holds').where({ order_id: orderId, status: 'sold' }).update({ status: 'held' });
  }

  /** Frees the seats the order holds and has not paid for; returns how many. */
  async releaseHeld(trx: Tx, orderId: string): Promise<number> {
    return trx('seat_holds').where({ order_id: orderId, status: 'held' }).delete();
  }

  /** The seats the order still holds, locked for the rest of `trx`. */
  async lockHeld(trx: Tx, orderId: string): Promise<string[]> {
    return trx('seat_holds').where({ order_id: orderId, status: 'held' }).forUpdate().pluck('seat_id');
  }

  async countOfShow(showId: string): Promise<number> {
    const [{ holds }] = await this.db('seat_holds').where({ show_id: showId }).count({ holds: '*' });
    return Number(holds);
  }

  /** Every seat of the show with the order holding it (null: free), in seat order: what the view is built from. */
  async seatsOfShow(showId: string): Promise<Array<{ seatId: string; orderId: string | null }>> {
    return this.db('seats')
      .leftJoin('seat_holds', 'seat_holds.seat_id', 'seats.id')
      .where('seats.show_id', showId)
      .orderBy('seats.id')
      .select('seats.id as seatId', 'seat_holds.order_id as orderId');
  }

  /** The holds of a show: seat -> order. */
  async holdsOfShow(showId: string): Promise<Map<string, string>> {
    const rows: Array<{ seat_id: string; order_id: string }> = await this.db('seat_holds').where({ show_id: showId }).select('seat_id', 'order_id');
    return new Map(rows.map((h) => [h.seat_id, h.order_id]));
  }
}

/** Numeric order of decimal id strings (they may exceed 2^53). */
export function compareIds(a: string, b: string): number {
  return a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);
}
