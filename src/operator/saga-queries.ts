import type { Clock } from '../support/time';
import type { Db } from '../db/database';
import { AppError } from '../errors';
import type { ListenerName } from '../messaging/topology';
import { isIdString, snowflakeFloor } from '../support/ids';
import { isReleaseSaga, RELEASE_SAGAS } from '../sagas/saga-view';
import type { DeadLetterLog } from './dead-letters';
import { SAGA_STATUSES, type ListenerProgress, type SagaFilter, type SagaStatusName, type SagaSummary, type TimelineEvent } from './saga-query-types';

/** How long one stats answer is shared. */
const STATS_CACHE_MS = 2_000;

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);

const SUMMARY_COLUMNS = ['id', 'type', 'status', 'failed_tag', 'order_id', 'user_id', 'created_at', 'updated_at', 'finished_at'] as const;

const summaryOf = (row: any): SagaSummary => ({
  id: row.id,
  type: row.type,
  status: row.status,
  failedTag: row.failed_tag,
  orderId: row.order_id,
  userId: row.user_id,
  createdAt: row.created_at.toISOString(),
  updatedAt: row.updated_at.toISOString(),
  finishedAt: iso(row.finished_at),
});

/** Keyset cursors: opaque to clients, the last id of the page underneath. */
const encodeCursor = (id: string) => Buffer.from(`saga:${id}`).toString('base64url');
function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const id = text.startsWith('saga:') ? text.slice(5) : '';
  if (!isIdString(id))
    throw new AppError('VALIDATION_FAILED', 'cursor is not one this API gave out', { issues: [{ field: 'cursor', message: 'unknown cursor' }] });
  return id;
}

/**
 * What operators read of the saga log: search, counts and one saga's timeline. Reads only; the
 * saga tables are written by SagaLog alone.
 */
export class SagaQueries {
  constructor(
    private readonly db: Db,
    private readonly deps: {
      listenersFor(tag: string): readonly ListenerName[];
      deadLetters: DeadLetterLog;
      /** A saga RUNNING (COMPENSATING) with no progress for this long is stuck. */
      staleMs: { running: number; compensating: number };
      clock: Clock;
    },
  ) {}

  /**
   * Newest first, `limit` at a time. Every filter is an equality on an indexed column followed by
   * the id (the indexes are (column, id)), and a time range is an id range, so a page costs
   * `limit` index entries whatever the table holds.
   */
  async search(filter: SagaFilter): Promise<{ items: SagaSummary[]; nextCursor: string | null }> {
    // MariaDB left to itself intersects two filters' indexes in full (status + type: 565k index
    // entries for a page over a million sagas), or, deep in the pages, reads the filter's index
    // on its first column only. One (column, id) index, of the most selective filter, read from
    // the cursor down, costs a page's worth of entries (bench/operator.md).
    const index = filter.orderId
      ? 'sagas_order_id_id'
      : filter.userId
        ? 'sagas_user_id_id'
        : filter.tag
          ? 'sagas_failed_tag_id'
          : filter.type
            ? 'sagas_type_id'
            : filter.status
              ? 'sagas_status_id'
              : 'PRIMARY';
    const query = this.db
      .from(this.db.raw('?? FORCE INDEX (??)', ['sagas', index]))
      .select(...SUMMARY_COLUMNS)
      .orderBy('id', 'desc')
      .limit(filter.limit + 1);
    if (filter.status) query.where('status', filter.status);
    if (filter.type) query.where('type', filter.type);
    if (filter.tag) query.where('failed_tag', filter.tag);
    if (filter.orderId) query.where('order_id', filter.orderId);
    if (filter.userId) query.where('user_id', filter.userId);
    if (filter.since) query.where('id', '>=', snowflakeFloor(filter.since.getTime()));
    if (filter.until) query.where('id', '<', snowflakeFloor(filter.until.getTime()));
    if (filter.cursor) query.where('id', '<', decodeCursor(filter.cursor));
    const rows = await query;
    const page = rows.slice(0, filter.limit);
    return {
      items: page.map(summaryOf),
      nextCursor: rows.length > filter.limit ? encodeCursor(page[page.length - 1].id) : null,
    };
  }

  /**
   * Counts by status and by type, and the sagas stuck past their bound (the oldest 20 of them).
   * The counts read the whole index (150 ms over a million sagas), so every console refreshing
   * shares one answer for STATS_CACHE_MS.
   */
  async stats(): ReturnType<SagaQueries['computeStats']> {
    const now = this.deps.clock.now();
    if (!this.cachedStats || now - this.cachedStats.at > STATS_CACHE_MS) {
      const pending = this.computeStats();
      this.cachedStats = { at: now, pending };
      pending.catch(() => (this.cachedStats = null));
    }
    return this.cachedStats.pending;
  }

  private cachedStats: { at: number; pending: ReturnType<SagaQueries['computeStats']> } | null = null;

  private async computeStats(): Promise<{
    byStatus: Record<SagaStatusName, number>;
    byType: Record<string, number>;
    stuck: number;
    stuckSagas: SagaSummary[];
  }> {
    const [byStatusRows, byTypeRows] = await Promise.all([
      this.db('sagas').select('status').count({ n: '*' }).groupBy('status'),
      this.db('sagas').select('type').count({ n: '*' }).groupBy('type'),
    ]);
    const byStatus = Object.fromEntries(SAGA_STATUSES.map((s) => [s, 0])) as Record<SagaStatusName, number>;
    for (const row of byStatusRows as Array<{ status: SagaStatusName; n: number | string }>) byStatus[row.status] = Number(row.n);
    const byType: Record<string, number> = {};
    for (const row of byTypeRows as Array<{ type: string; n: number | string }>) byType[row.type] = Number(row.n);
    const stuck = this.stuckQuery();
    const [[{ n }], stuckRows] = await Promise.all([
      stuck.clone().count({ n: '*' }),
      stuck
        .clone()
        .select(...SUMMARY_COLUMNS)
        .orderBy('updated_at')
        .limit(20),
    ]);
    return {
      byStatus,
      byType,
      stuck: Number(n),
      stuckSagas: stuckRows.map(summaryOf),
    };
  }

  /** RUNNING or COMPENSATING with no progress past its bound: the (status, updated_at) index. */
  private stuckQuery() {
    const { running, compensating } = this.deps.staleMs;
    return this.db('sagas').where((q) =>
      q
        .where((r) => r.where('status', 'RUNNING').andWhere('updated_at', '<', this.db.raw('NOW(3) - INTERVAL ? MICROSECOND', [running * 1000])))
        .orWhere((c) => c.where('status', 'COMPENSATING').andWhere('updated_at', '<', this.db.raw('NOW(3) - INTERVAL ? MICROSECOND', [compensating * 1000]))),
    );
  }

  /**
   * Everything that happened to one saga, in time order: its steps (start, end, error), its
   * compensation message (queued, published; again on each republish or redrive), each listener's
   * deliveries (count, error), dead-lettering and what became of it, and its end. A cancel,
   * expiry or refund reads as the release it is.
   */
  async timeline(sagaId: string): Promise<{ events: TimelineEvent[]; listeners: ListenerProgress[] } | null> {
    const saga = await this.db('sagas').where({ id: sagaId }).first();
    if (!saga) return null;
    const [steps, outbox, attempts, compensations, deadLetters] = await Promise.all([
      this.db('saga_steps').where({ saga_id: sagaId }).orderBy('id'),
      this.db('outbox').where({ saga_id: sagaId }).orderBy('id').select('routing_key', 'message_id', 'created_at', 'sent_at', 'last_error'),
      this.db('compensation_attempts').where({ saga_id: sagaId }).orderBy('id'),
      this.db('saga_compensations').where({ saga_id: sagaId }).orderBy('at'),
      this.deps.deadLetters.ofSaga(sagaId),
    ]);
    const release = isReleaseSaga(saga.type) ? RELEASE_SAGAS[saga.type] : undefined;
    const events: Array<TimelineEvent & { order: number }> = [];
    const add = (at: Date | null, event: Omit<TimelineEvent, 'at'>) => {
      if (at) events.push({ ...event, at: at.toISOString(), order: events.length });
    };

    add(saga.created_at, release ? { kind: 'release.requested', label: release } : { kind: 'saga.started', label: `${saga.type} saga started` });
    if (!release) {
      for (const step of steps) {
        add(step.started_at, { kind: 'step.started', label: `${step.step} started (tag ${step.tag})`, step: step.step, tag: step.tag });
        if (step.status === 'DONE') add(step.finished_at, { kind: 'step.done', label: `${step.step} done`, step: step.step, tag: step.tag });
        if (step.status === 'FAILED') {
          add(step.finished_at ?? saga.updated_at, {
            kind: 'step.failed',
            label: `${step.step} failed: ${step.error ?? saga.error ?? 'unknown error'}`,
            step: step.step,
            tag: step.tag,
            error: step.error ?? saga.error,
          });
        }
      }
    }
    for (const row of outbox) {
      const publish = Number(String(row.message_id).split(':')[2] ?? 1);
      const again = publish > 1 ? ` (publish ${publish}: the sweeper or an operator sent it again)` : '';
      add(row.created_at, { kind: 'compensation.queued', label: `compensation ${row.routing_key} queued${again}`, tag: row.routing_key });
      add(row.sent_at, { kind: 'compensation.published', label: `compensation ${row.routing_key} published`, tag: row.routing_key });
    }
    for (const attempt of attempts) {
      // The delivery that applied it is the listener's own event below, from saga_compensations.
      if (attempt.outcome === 'done' || attempt.outcome === 'noop') continue;
      const label =
        attempt.outcome === 'failed'
          ? `${attempt.listener}: delivery ${attempt.delivery_count} failed: ${attempt.error}`
          : `${attempt.listener}: delivery ${attempt.delivery_count} found it done already`;
      add(attempt.at, {
        kind: `listener.${attempt.outcome}`,
        label,
        listener: attempt.listener,
        tag: attempt.tag,
        deliveryCount: attempt.delivery_count,
        error: attempt.error,
      });
    }
    for (const done of compensations) {
      const applied = attempts.find((a: any) => a.listener === done.listener && a.tag === done.tag && (a.outcome === 'done' || a.outcome === 'noop'));
      const delivery = applied ? ` (delivery ${applied.delivery_count})` : '';
      add(done.at, {
        kind: done.status === 'DONE' ? 'listener.undone' : 'listener.nothing-to-undo',
        label: `${done.listener}: ${done.detail}${delivery}`,
        listener: done.listener,
        tag: done.tag,
        deliveryCount: applied?.delivery_count,
        detail: done.detail,
      });
    }
    for (const dead of deadLetters) {
      add(dead.deadLetteredAt, {
        kind: 'listener.dead-lettered',
        label: `${dead.listener}: dead-lettered after ${dead.deliveries} deliveries (${dead.reason}): ${dead.error ?? ''}`,
        listener: dead.listener,
        deliveryCount: dead.deliveries,
        error: dead.error,
      });
      if (dead.resolvedAt)
        add(dead.resolvedAt, { kind: `dead-letter.${dead.resolution}`, label: `${dead.listener}: dead letter ${dead.resolution}`, listener: dead.listener });
    }
    if (saga.status === 'COMPLETED') add(saga.finished_at, { kind: 'saga.completed', label: `${saga.type} saga completed` });
    if (saga.status === 'COMPENSATED')
      add(saga.finished_at, release ? { kind: 'release.done', label: 'seats released' } : { kind: 'saga.compensated', label: 'saga compensated' });
    events.sort((a, b) => a.at.localeCompare(b.at) || a.order - b.order);

    const listeners = saga.failed_tag ? this.deps.listenersFor(saga.failed_tag) : [];
    const progress = listeners.map((listener): ListenerProgress => {
      const mine = attempts.filter((a: any) => a.listener === listener);
      const failures = mine.filter((a: any) => a.outcome === 'failed');
      const done = compensations.find((c: any) => c.listener === listener);
      const dead = deadLetters.some((d) => d.listener === listener && !d.resolvedAt);
      return {
        listener,
        state: done ? (done.status === 'DONE' ? 'done' : 'noop') : dead ? 'dead-lettered' : failures.length > 0 ? 'retrying' : 'pending',
        attempts: mine.length,
        lastError: failures.at(-1)?.error ?? null,
      };
    });
    return { events: events.map(({ order: _order, ...event }) => event), listeners: progress };
  }
}
