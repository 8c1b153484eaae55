import { inTransaction, type Db } from '../db/database';
import type { Logger } from '../observability/logger';
import { snowflakeFloor } from '../support/ids';
import { Periodic } from '../support/periodic';
import { systemClock, type Clock } from '../support/time';

/** The statuses a saga never leaves: only these are ever purged. */
export const ENDED_SAGA_STATUSES = ['COMPLETED', 'COMPENSATED'] as const;

/** The tables the purge deletes from, in the order it deletes a batch (children before `sagas`). */
export const RETENTION_TABLES = ['saga_steps', 'saga_compensations', 'compensation_attempts', 'outbox', 'dead_letters', 'sagas', 'idempotency_keys'] as const;
export type RetentionTable = (typeof RETENTION_TABLES)[number];
export type PurgeCounts = Record<RetentionTable, number>;

export interface SagaRetentionOptions {
  /** SAGA_RETENTION_DAYS: ended sagas whose end is older than this go; 0 keeps everything. */
  retentionDays: number;
  clock?: Clock;
  /** Sagas per batch, each batch one short transaction (default 500). */
  batchSize?: number;
  /** Pause between two batches, so the purge never takes more than a slice of the database (default 100 ms). */
  pauseMs?: number;
  /** Time between two passes (default 10 minutes); a pass goes on, batch by batch, until nothing is left to purge. */
  intervalMs?: number;
  /** Rows deleted, per table, after each committed batch (the metric counter). */
  onPurged?: (table: RetentionTable, rows: number) => void;
}

export interface PurgeResult {
  deleted: PurgeCounts;
  batches: number;
  ms: number;
  /** The slowest batch transaction, ms. */
  slowestBatchMs: number;
  /** False when stop() interrupted the pass. */
  finished: boolean;
}

const CLOCK_MARGIN_MS = 60_000;
const PROGRESS_LOG_MS = 10_000;

/**
 * Deletes ended sagas older than SAGA_RETENTION_DAYS, with every row that belongs to them: their
 * steps, compensation records and listener attempts, their outbox rows once sent, their resolved
 * dead letters; then expired idempotency keys and resolved dead letters older than the window. A
 * saga that has not ended (RUNNING, COMPENSATING) is never touched, nor one with a dead letter no
 * one has resolved yet (the operator still has to see it).
 *
 * It works in id order (snowflake ids are minted in time order, so the oldest sagas come first and
 * the scan stops at the first id minted after the cutoff), in batches of `batchSize` sagas, each
 * one short transaction, with a pause between batches: the hot path's inserts (new ids, at the
 * other end of the primary key, READ COMMITTED so no gap locks) never wait behind it. Running it
 * in several processes at once is safe (deletes are idempotent), only wasteful.
 */
export class SagaRetention {
  private readonly periodic: Periodic;
  private stopping = false;
  private wakePause: (() => void) | null = null;

  constructor(
    private readonly db: Db,
    private readonly logger: Logger,
    private readonly options: SagaRetentionOptions,
  ) {
    this.periodic = new Periodic('saga retention', options.intervalMs ?? 10 * 60_000, async () => void (await this.purgeOnce()), logger);
  }

  private now(): number {
    return (this.options.clock ?? systemClock).now();
  }

  /** Starts the periodic passes (none when retentionDays is 0). */
  start(): void {
    if (this.options.retentionDays <= 0) {
      this.logger.info('saga retention off (SAGA_RETENTION_DAYS=0): the saga log is kept forever');
      return;
    }
    this.stopping = false;
    this.periodic.start();
  }

  /** Stops between two batches: the batch in its transaction commits first. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wakePause?.();
    await this.periodic.stop();
  }

  /** One pass: everything past the window, batch by batch, until none is left (or stop()). */
  async purgeOnce(): Promise<PurgeResult> {
    const started = this.now();
    const deleted = Object.fromEntries(RETENTION_TABLES.map((t) => [t, 0])) as PurgeCounts;
    const result: PurgeResult = { deleted, batches: 0, ms: 0, slowestBatchMs: 0, finished: true };
    if (this.options.retentionDays <= 0) return result;
    const batchSize = this.options.batchSize ?? 500;
    // The database's clock: it wrote every finished_at.
    const [[{ cutoff }]] = await this.db.raw('SELECT NOW(3) - INTERVAL ? DAY AS cutoff', [this.options.retentionDays]);
    const cutoffDate = cutoff instanceof Date ? cutoff : new Date(`${String(cutoff).replace(' ', 'T')}Z`);
    // A saga minted after the cutoff cannot have ended before it (a margin for clocks that differ).
    const idBound = snowflakeFloor(cutoffDate.getTime() + CLOCK_MARGIN_MS);
    let lastLog = this.now();
    const count = (table: RetentionTable, rows: number) => {
      deleted[table] += rows;
      if (rows > 0) this.options.onPurged?.(table, rows);
    };
    const batch = async (work: () => Promise<Partial<PurgeCounts>>): Promise<number> => {
      const t0 = this.now();
      const counts = await work();
      result.slowestBatchMs = Math.max(result.slowestBatchMs, this.now() - t0);
      result.batches++;
      for (const [table, rows] of Object.entries(counts)) count(table as RetentionTable, rows ?? 0);
      if (this.now() - lastLog >= PROGRESS_LOG_MS) {
        lastLog = this.now();
        this.logger.info('saga retention purging', { ...deleted, batches: result.batches, seconds: Math.round((this.now() - started) / 1000) });
      }
      return Object.values(counts).reduce((a, b) => a + (b ?? 0), 0);
    };

    let cursor = '0';
    while (!this.stopping) {
      const ids: string[] = await this.db('sagas')
        .where('id', '>', cursor)
        .andWhere('id', '<', idBound)
        .whereIn('status', ENDED_SAGA_STATUSES)
        .andWhere('finished_at', '<', cutoffDate)
        .whereNotExists((q) => q.select(this.db.raw(1)).from('dead_letters').whereRaw('dead_letters.saga_id = sagas.id').whereNull('resolved_at'))
        .orderBy('id')
        .limit(batchSize)
        .pluck('id');
      if (ids.length === 0) break;
      cursor = ids[ids.length - 1];
      await batch(() => this.purgeSagas(ids, cutoffDate));
      if (ids.length < batchSize) break;
      await this.pause();
    }
    // What is not tied to a purged saga: expired idempotency keys, dead letters resolved long ago.
    for (const purge of [() => this.purgeIdempotencyKeys(cutoffDate, batchSize), () => this.purgeResolvedDeadLetters(cutoffDate, batchSize)]) {
      while (!this.stopping && (await batch(purge)) === batchSize) await this.pause();
    }
    result.finished = !this.stopping;
    result.ms = this.now() - started;
    const total = Object.values(deleted).reduce((a, b) => a + b, 0);
    if (total > 0 || !result.finished) {
      this.logger.info(result.finished ? 'saga retention pass done' : 'saga retention pass stopped', {
        ...deleted,
        batches: result.batches,
        ms: result.ms,
        slowestBatchMs: result.slowestBatchMs,
        retentionDays: this.options.retentionDays,
      });
    }
    return result;
  }

  /** One batch of ended sagas and all their rows, in one transaction; the saga rows last, re-checked. */
  private purgeSagas(ids: string[], cutoff: Date): Promise<Partial<PurgeCounts>> {
    return inTransaction(this.db, async (trx) => {
      // Lock the sagas first (they cannot change status any more, but a concurrent purge of the same batch waits here).
      const sagas: string[] = await trx('sagas')
        .whereIn('id', ids)
        .whereIn('status', ENDED_SAGA_STATUSES)
        .andWhere('finished_at', '<', cutoff)
        .forUpdate()
        .pluck('id');
      if (sagas.length === 0) return {};
      const steps = await trx('saga_steps').whereIn('saga_id', sagas).delete();
      const compensations = await trx('saga_compensations').whereIn('saga_id', sagas).delete();
      const attempts = await trx('compensation_attempts').whereIn('saga_id', sagas).delete();
      // An unsent message stays (the relay still owes it to the broker); it names its saga for the timeline only.
      const outbox = await trx('outbox').whereIn('saga_id', sagas).whereNotNull('sent_at').delete();
      const deadLetters = await trx('dead_letters').whereIn('saga_id', sagas).whereNotNull('resolved_at').delete();
      const purged = await trx('sagas').whereIn('id', sagas).delete();
      return { saga_steps: steps, saga_compensations: compensations, compensation_attempts: attempts, outbox, dead_letters: deadLetters, sagas: purged };
    });
  }

  private async purgeIdempotencyKeys(cutoff: Date, limit: number): Promise<Partial<PurgeCounts>> {
    const rows = await this.db('idempotency_keys').where('expires_at', '<', cutoff).limit(limit).delete();
    return { idempotency_keys: rows };
  }

  /** Resolved before the cutoff, of no saga still running (a live saga keeps its whole history). */
  private async purgeResolvedDeadLetters(cutoff: Date, limit: number): Promise<Partial<PurgeCounts>> {
    const [result] = await this.db.raw(
      `DELETE FROM dead_letters WHERE resolved_at < ?
          AND (saga_id IS NULL OR NOT EXISTS (SELECT 1 FROM sagas WHERE sagas.id = dead_letters.saga_id AND sagas.status NOT IN (?, ?)))
        LIMIT ?`,
      [cutoff, ...ENDED_SAGA_STATUSES, limit],
    );
    return { dead_letters: result.affectedRows };
  }

  private pause(): Promise<void> {
    const ms = this.options.pauseMs ?? 100;
    if (ms <= 0 || this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wakePause = () => {
        this.wakePause = null;
        done();
      };
    });
  }
}
