import { inTransaction, type Db, type Tx } from '../db/database';
import type { OutboxWriter } from '../messaging/outbox';
import type { ListenerName } from '../messaging/topology';
import { CompensationRecords } from './compensation-records';
import { insertCompletedSagas } from './completed-sagas';
import { readSagaView, type SagaView } from './saga-view';
import { SagaNotRunningError, type CompensationMessage, type CompensationRouting, type CompletedSaga, type SagaTransition } from './saga-types';

export interface SagaLogDeps {
  db: Db;
  routing: CompensationRouting;
  /** Compensation messages go out through it, in the transaction that decides them. */
  outbox: OutboxWriter;
  onTransition?(transition: SagaTransition): void;
}

/**
 * The one way into the saga tables (sagas, saga_steps, and through `compensations` the records
 * of the listeners: saga_compensations, compensation_attempts). State changes are conditional on
 * the current status.
 */
export class SagaLog {
  /** What the listeners did about each saga's compensation. */
  readonly compensations: CompensationRecords;
  private readonly db: Db;
  private readonly routing: CompensationRouting;
  private readonly onTransition: (transition: SagaTransition) => void;

  constructor(private readonly deps: SagaLogDeps) {
    this.db = deps.db;
    this.routing = deps.routing;
    this.onTransition = deps.onTransition ?? (() => {});
    this.compensations = new CompensationRecords(deps.db);
  }

  async create(saga: { id: string; type: string; input: object; orderId?: string; userId?: string }): Promise<void> {
    await this.db('sagas').insert({
      id: saga.id,
      type: saga.type,
      status: 'RUNNING',
      payload: JSON.stringify(saga.input),
      order_id: saga.orderId ?? null,
      user_id: saga.userId ?? null,
    });
  }

  /** In the caller's transaction: sagas that are already COMPLETED, with their steps all DONE. */
  async recordCompleted(trx: Tx, sagas: CompletedSaga[]): Promise<void> {
    await insertCompletedSagas(trx, sagas);
  }

  /**
   * Records that a step starts, with its tag, before it acts; in one statement that inserts
   * nothing unless the saga is still RUNNING.
   */
  async recordStepStart(sagaId: string, step: string, tag: string): Promise<void> {
    const [result] = await this.db.raw(
      `INSERT INTO saga_steps (saga_id, step, tag, status) SELECT id, ?, ?, 'STARTED' FROM sagas WHERE id = ? AND status = 'RUNNING'`,
      [step, tag, sagaId],
    );
    if (result.affectedRows === 0) throw new SagaNotRunningError(sagaId, await this.statusOf(sagaId));
  }

  async markStepDone(sagaId: string, step: string, trx: Db | Tx = this.db): Promise<void> {
    await trx.raw(`UPDATE saga_steps SET status = 'DONE', finished_at = NOW(3) WHERE saga_id = ? AND step = ? AND status = 'STARTED'`, [sagaId, step]);
  }

  /**
   * A step without a durable effect is done and the next one starts, in one statement that writes
   * nothing unless the saga is still RUNNING: the next step's tag is recorded before it acts, as
   * if recorded on its own, one round trip sooner.
   */
  async advance(sagaId: string, done: { name: string; tag: string }, next: { name: string; tag: string }): Promise<void> {
    const [result] = await this.db.raw(
      `INSERT INTO saga_steps (saga_id, step, tag, status, finished_at)
       SELECT s.id, v.step, v.tag, v.status, v.finished_at
         FROM sagas s
         JOIN (SELECT ? AS step, ? AS tag, 'DONE' AS status, NOW(3) AS finished_at
               UNION ALL SELECT ?, ?, 'STARTED', NULL) v
        WHERE s.id = ? AND s.status = 'RUNNING'
       ON DUPLICATE KEY UPDATE finished_at = IF(saga_steps.status = 'STARTED', VALUES(finished_at), saga_steps.finished_at),
                               status = IF(saga_steps.status = 'STARTED', VALUES(status), saga_steps.status)`,
      [done.name, done.tag, next.name, next.tag, sagaId],
    );
    if (result.affectedRows === 0) throw new SagaNotRunningError(sagaId, await this.statusOf(sagaId));
  }

  /**
   * Locks the saga row for the rest of `trx` and checks it is still RUNNING, in one conditional
   * UPDATE; with `complete`, the same statement marks it COMPLETED (the last step's transaction
   * completes the saga with its effect: call `completed` once it committed).
   */
  async lockRunning(trx: Tx, sagaId: string, options: { complete?: boolean } = {}): Promise<void> {
    const [result] = await trx.raw(
      options.complete
        ? `UPDATE sagas SET status = 'COMPLETED', finished_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND status = 'RUNNING'`
        : `UPDATE sagas SET updated_at = NOW(3) WHERE id = ? AND status = 'RUNNING'`,
      [sagaId],
    );
    if (result.affectedRows === 0) {
      const row = await trx('sagas').where({ id: sagaId }).first('status');
      throw new SagaNotRunningError(sagaId, row?.status ?? 'missing');
    }
  }

  /** A saga completed in its last step's transaction (`lockRunning` with complete), now committed. */
  completed(type: string): void {
    this.onTransition({ type, status: 'COMPLETED', tag: null });
  }

  /** RUNNING -> COMPLETED, unless it was compensated meanwhile. */
  async complete(sagaId: string, type: string): Promise<boolean> {
    const [result] = await this.db.raw(`UPDATE sagas SET status = 'COMPLETED', finished_at = NOW(3), updated_at = NOW(3) WHERE id = ? AND status = 'RUNNING'`, [
      sagaId,
    ]);
    if (result.affectedRows === 1) this.completed(type);
    return result.affectedRows === 1;
  }

  /**
   * RUNNING -> COMPENSATING, with the compensation message written to the outbox in the same
   * transaction (or straight to COMPENSATED when no listener undoes the tag). The tag is that of
   * the last step recorded: the step that failed, or, when recording a step failed, the one
   * before it, whose tag covers all that was done. Returns started=false when the saga was not
   * RUNNING any more (someone else already decided its fate).
   */
  async beginCompensation(sagaId: string, failure: { errorCode: string; error: string }): Promise<{ started: boolean; tag: string | null }> {
    const outcome = await inTransaction(this.db, async (trx): Promise<{ started: boolean; tag: string | null; transition?: SagaTransition }> => {
      const saga = await trx('sagas').where({ id: sagaId }).forUpdate().first('id', 'type', 'status', 'payload');
      if (!saga || saga.status !== 'RUNNING') return { started: false, tag: null };
      const failed = await trx('saga_steps').where({ saga_id: sagaId }).orderBy('id', 'desc').first('step', 'tag');
      if (!failed) {
        // No step started: nothing to undo.
        await trx('sagas')
          .where({ id: sagaId })
          .update({
            status: 'COMPENSATED',
            error_code: failure.errorCode,
            error: failure.error,
            finished_at: trx.fn.now(3),
            updated_at: trx.fn.now(3),
          });
        return { started: true, tag: null, transition: { type: saga.type, status: 'COMPENSATED', tag: null, errorCode: failure.errorCode } };
      }
      await trx('saga_steps')
        .where({ saga_id: sagaId, step: failed.step })
        .update({ status: 'FAILED', error: failure.error, finished_at: trx.fn.now(3) });
      const listeners = this.routing.listenersFor(failed.tag);
      await trx('sagas')
        .where({ id: sagaId })
        .update({
          status: listeners.length === 0 ? 'COMPENSATED' : 'COMPENSATING',
          failed_tag: failed.tag,
          error_code: failure.errorCode,
          error: failure.error,
          compensations_pending: listeners.length,
          compensation_publishes: 1,
          finished_at: listeners.length === 0 ? trx.fn.now(3) : null,
          updated_at: trx.fn.now(3),
        });
      await this.enqueueCompensation(trx, saga, failed.tag, failed.step, 1);
      const status = listeners.length === 0 ? 'COMPENSATED' : 'COMPENSATING';
      return { started: true, tag: failed.tag as string, transition: { type: saga.type, status, tag: failed.tag, errorCode: failure.errorCode } };
    });
    if (outcome.transition) this.onTransition(outcome.transition);
    return { started: outcome.started, tag: outcome.tag };
  }

  /**
   * Inside the caller's transaction (which just made an order EXPIRED, CANCELLED or REFUNDED):
   * records a saga of `type` whose one step is `tag`, already in COMPENSATING, and its message in
   * the outbox, so the listeners bound to `tag` release what the order held, exactly once, with
   * the same retries, dead-lettering and inspector view as any compensation.
   */
  async recordRelease(
    trx: Tx,
    saga: { id: string; type: string; tag: string; orderId: string; userId: string; input: Record<string, unknown>; reason: string },
  ): Promise<void> {
    const listeners = this.routing.listenersFor(saga.tag);
    const payload = JSON.stringify(saga.input);
    await trx('sagas').insert({
      id: saga.id,
      type: saga.type,
      status: listeners.length === 0 ? 'COMPENSATED' : 'COMPENSATING',
      payload,
      order_id: saga.orderId,
      user_id: saga.userId,
      failed_tag: saga.tag,
      error: saga.reason,
      compensations_pending: listeners.length,
      compensation_publishes: 1,
      finished_at: listeners.length === 0 ? trx.fn.now(3) : null,
    });
    await trx('saga_steps').insert({ saga_id: saga.id, step: saga.tag, tag: saga.tag, status: 'DONE', finished_at: trx.fn.now(3) });
    await this.enqueueCompensation(trx, { id: saga.id, type: saga.type, payload }, saga.tag, saga.tag, 1);
  }

  private async enqueueCompensation(trx: Tx, saga: { id: string; type: string; payload: string }, tag: string, step: string, publishNo: number): Promise<void> {
    const message: CompensationMessage = { sagaId: saga.id, sagaType: saga.type, tag, failedStep: step, input: JSON.parse(saga.payload) };
    await this.deps.outbox.enqueue(trx, [
      { exchange: this.routing.exchange, routingKey: tag, messageId: `${saga.id}:${tag}:${publishNo}`, payload: message, sagaId: saga.id },
    ]);
  }

  /**
   * Publishes the compensation of a saga stuck in COMPENSATING again (its message went to a DLQ,
   * or a queue was deleted). Safe because every listener is idempotent.
   */
  async republishCompensation(sagaId: string, stuckForMs: number | null): Promise<boolean> {
    return inTransaction(this.db, async (trx) => {
      const query = trx('sagas').where({ id: sagaId, status: 'COMPENSATING' });
      // An operator's redrive (null) publishes whatever the saga's last progress.
      if (stuckForMs !== null) query.andWhere('updated_at', '<', trx.raw('NOW(3) - INTERVAL ? MICROSECOND', [stuckForMs * 1000]));
      const saga = await query.forUpdate().first('id', 'type', 'payload', 'failed_tag', 'compensation_publishes');
      if (!saga) return false;
      const step = await trx('saga_steps').where({ saga_id: sagaId, tag: saga.failed_tag }).first('step');
      const publishNo = saga.compensation_publishes + 1;
      await trx('sagas')
        .where({ id: sagaId })
        .update({ compensation_publishes: publishNo, updated_at: trx.fn.now(3) });
      await this.enqueueCompensation(trx, saga, saga.failed_tag, step?.step ?? 'unknown', publishNo);
      return true;
    });
  }

  /** A listener's transaction starts here: the saga row locked, so its listeners go one at a time. */
  async lockForCompensation(trx: Tx, sagaId: string): Promise<void> {
    const saga = await trx('sagas').where({ id: sagaId }).forUpdate().first('status');
    if (!saga) throw new Error(`saga ${sagaId} does not exist`);
  }

  /**
   * Called by a listener inside its transaction, after recording its compensation: one fewer
   * listener to wait for; the last one marks the saga COMPENSATED (and learns it: true).
   */
  async listenerFinished(trx: Tx, sagaId: string): Promise<boolean> {
    // Assignments run left to right, so both IFs read the count before it is decremented.
    await trx.raw(
      `UPDATE sagas SET
         status = IF(compensations_pending <= 1, 'COMPENSATED', status),
         finished_at = IF(compensations_pending <= 1, NOW(3), finished_at),
         updated_at = NOW(3),
         compensations_pending = compensations_pending - 1
       WHERE id = ? AND status = 'COMPENSATING' AND compensations_pending > 0`,
      [sagaId],
    );
    const saga = await trx('sagas').where({ id: sagaId }).first('status', 'compensations_pending');
    return saga.status === 'COMPENSATED' && saga.compensations_pending === 0;
  }

  /** The listeners that undo a tag (none: the saga is COMPENSATED as soon as it fails). */
  undoneBy(tag: string): readonly ListenerName[] {
    return this.routing.listenersFor(tag);
  }

  async statusOf(sagaId: string): Promise<string> {
    const row = await this.db('sagas').where({ id: sagaId }).first('status');
    return row?.status ?? 'missing';
  }

  async failedTagOf(sagaId: string): Promise<string | null> {
    const row = await this.db('sagas').where({ id: sagaId }).first('failed_tag');
    return row?.failed_tag ?? null;
  }

  /**
   * Sagas in `status` without progress for `olderThanMs`, oldest first: RUNNING since they were
   * created (their process is presumed dead), COMPENSATING since their last update.
   */
  async findStale(status: 'RUNNING' | 'COMPENSATING', olderThanMs: number, limit = 100): Promise<string[]> {
    const since = status === 'RUNNING' ? 'created_at' : 'updated_at';
    return this.db('sagas')
      .where('status', status)
      .andWhere(since, '<', this.db.raw('NOW(3) - INTERVAL ? MICROSECOND', [olderThanMs * 1000]))
      .orderBy(since)
      .limit(limit)
      .pluck('id');
  }

  async view(sagaId: string): Promise<SagaView | null> {
    return readSagaView(this.db, sagaId);
  }
}
