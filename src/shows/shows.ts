import { inTransaction, toNumber, type Db } from '../db/database';
import { notFound } from '../errors';
import type { SeatInventory } from '../inventory/seat-inventory';

export interface ShowView {
  id: string;
  title: string;
  startsAt: string;
  priceCents: number;
  seatsTotal: number;
}

export type SeatStatus = 'available' | 'held' | 'sold';

/** Row 1 is A, 26 is Z, 27 is AA: labels like "C12". */
export function rowLabel(row: number): string {
  let label = '';
  for (let n = row; n > 0; n = Math.floor((n - 1) / 26)) label = String.fromCharCode(65 + ((n - 1) % 26)) + label;
  return label;
}

const INSERT_CHUNK = 2_000;
const SHOW_CACHE_SIZE = 1_000;

/** Shows that have not started more than a day ago: those whose seats can still change. */
export function currentShowIds(db: Db): Promise<string[]> {
  return db('shows').where('starts_at', '>', db.raw('NOW(3) - INTERVAL 1 DAY')).pluck('id');
}

export class Shows {
  private readonly cache = new Map<string, ShowView>();

  constructor(
    private readonly db: Db,
    private readonly inventory: SeatInventory,
  ) {}

  /** Creates the show and one row per seat in one transaction, then loads its Redis view. */
  async create(input: { title: string; startsAt: Date; priceCents: number; rows: number; seatsPerRow: number }): Promise<ShowView> {
    const seatsTotal = input.rows * input.seatsPerRow;
    const id = await inTransaction(this.db, async (trx) => {
      const [showId] = await trx('shows').insert({
        title: input.title,
        starts_at: input.startsAt,
        price_cents: input.priceCents,
        seats_total: seatsTotal,
      });
      const seats = [];
      for (let row = 1; row <= input.rows; row++) {
        for (let seat = 1; seat <= input.seatsPerRow; seat++) {
          seats.push({ show_id: showId, row_no: row, seat_no: seat, label: `${rowLabel(row)}${seat}` });
        }
      }
      for (let i = 0; i < seats.length; i += INSERT_CHUNK) await trx('seats').insert(seats.slice(i, i + INSERT_CHUNK));
      return String(showId);
    });
    await this.inventory.ensureLoaded(id, { fresh: true });
    return { id, title: input.title, startsAt: input.startsAt.toISOString(), priceCents: input.priceCents, seatsTotal };
  }

  /** A show; cached in-process, since shows never change once created (there is no update API). */
  async get(showId: string): Promise<ShowView> {
    const cached = this.cache.get(showId);
    if (cached) return cached;
    const row = await this.db('shows').where({ id: showId }).first();
    if (!row) throw notFound('show');
    const show = {
      id: row.id,
      title: row.title,
      startsAt: row.starts_at.toISOString(),
      priceCents: toNumber(row.price_cents),
      seatsTotal: row.seats_total,
    };
    if (this.cache.size >= SHOW_CACHE_SIZE) this.cache.delete(this.cache.keys().next().value as string);
    this.cache.set(showId, show);
    return show;
  }

  /** The show with its free seat count, from the database (the truth). */
  async getWithAvailability(showId: string): Promise<ShowView & { seatsAvailable: number }> {
    const show = await this.get(showId);
    const [{ holds }] = await this.db('seat_holds').where({ show_id: showId }).count({ holds: '*' });
    return { ...show, seatsAvailable: show.seatsTotal - toNumber(holds) };
  }

  async seats(showId: string): Promise<Array<{ id: string; label: string; status: SeatStatus }>> {
    await this.get(showId);
    const rows = await this.db('seats')
      .leftJoin('seat_holds', 'seat_holds.seat_id', 'seats.id')
      .where('seats.show_id', showId)
      .orderBy('seats.id')
      .select('seats.id', 'seats.label', 'seat_holds.status');
    return rows.map((r: { id: string; label: string; status: 'held' | 'sold' | null }) => ({
      id: r.id,
      label: r.label,
      status: r.status ?? 'available',
    }));
  }

  /** Of `seatIds`, those that are not seats of this show (answered by the seat view). */
  foreignSeats(showId: string, seatIds: string[]): Promise<string[]> {
    return this.inventory.unknownAmong(showId, seatIds);
  }
}
