import type { Db } from '../db/database';
import type { SeatInventory } from '../inventory/seat-inventory';
import { currentShowIds } from '../shows/shows';
import type { Logger } from '../observability/logger';
import type { Clock } from '../support/time';
import type { ReservationLog } from './reservations';

export interface ReservationReconcilerDeps {
  db: Db;
  inventory: SeatInventory;
  reservations: ReservationLog;
  clock: Clock;
  logger: Logger;
  /** RESERVATION_RECONCILE_AFTER_MS: a reservation pending this long is resolved. */
  afterMs: number;
  onPendingCounted?(pending: number): void;
}

/**
 * Resolves async reservations still pending after a bound: the order was persisted (its
 * confirm in Redis was lost) -> done; otherwise (its message never arrived, went to the DLQ, or
 * its worker died) -> RELEASED and its seats go back. RELEASED is written in the database first,
 * so a message arriving even later can no longer persist it; the bound is far beyond
 * ORDER_MAX_QUEUE_DELAY_MS, past which the consumer would drop it anyway. Runs in every worker;
 * the database's one outcome per reservation makes concurrent passes safe.
 */
export class ReservationReconciler {
  constructor(private readonly deps: ReservationReconcilerDeps) {}

  async reconcileOnce(limitPerShow = 500): Promise<{ released: number; pending: number }> {
    const { db, inventory, reservations, clock, afterMs, logger } = this.deps;
    const shows = await currentShowIds(db);
    const dueBefore = clock.now() - afterMs;
    let released = 0;
    let pending = 0;
    for (const showId of shows) {
      const due = await inventory.pendingReservations(showId, dueBefore, limitPerShow);
      if (due.length > 0) {
        const refs = due.map((reservation) => ({ ...reservation, showId }));
        const ids = await reservations.release(refs, 'reconciler');
        released += ids.length;
        logger.info('reconciled pending async reservations', { showId, due: due.length, released: ids.length, persisted: due.length - ids.length });
      }
      pending += await inventory.pendingCount(showId);
    }
    this.deps.onPendingCounted?.(pending);
    return { released, pending };
  }
}
