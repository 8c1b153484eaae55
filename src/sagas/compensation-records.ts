import { isDuplicateKey, type Db, type Tx } from '../db/database';

/** One listener's compensation of one saga's tag: the unit that happens exactly once. */
export interface CompensationKey {
  sagaId: string;
  tag: string;
  listener: string;
}

export type AttemptOutcome = 'done' | 'noop' | 'duplicate' | 'failed';

/**
 * The saga log's record of what the compensating listeners did (saga_compensations: one row per
 * saga, tag and listener, whose primary key refuses a second compensation even when Redis lost
 * its dedupe key), and of every delivery they handled (compensation_attempts, for the operator's
 * timeline). Reached through `SagaLog.compensations`.
 */
export class CompensationRecords {
  constructor(private readonly db: Db) {}

  /**
   * In the listener's transaction, before it undoes anything: claims the compensation. False when
   * it is already recorded (a duplicate delivery): the listener must not act.
   */
  async claim(trx: Tx, key: CompensationKey): Promise<boolean> {
    try {
      await trx('saga_compensations').insert({ saga_id: key.sagaId, tag: key.tag, listener: key.listener, status: 'NOOP', detail: 'in progress' });
      return true;
    } catch (err) {
      if (isDuplicateKey(err)) return false;
      throw err;
    }
  }

  /** In the same transaction: what the undo did, and the delivery that did it. */
  async finish(trx: Tx, key: CompensationKey, result: { changed: boolean; detail: string }, deliveryCount: number): Promise<void> {
    await trx('saga_compensations')
      .where({ saga_id: key.sagaId, tag: key.tag, listener: key.listener })
      .update({ status: result.changed ? 'DONE' : 'NOOP', detail: result.detail.slice(0, 255) });
    await trx('compensation_attempts').insert(attemptRow(key, deliveryCount, result.changed ? 'done' : 'noop'));
  }

  /** Whether the compensation is recorded (done), outside any transaction. */
  async isRecorded(key: CompensationKey): Promise<boolean> {
    const row = await this.db('saga_compensations').where({ saga_id: key.sagaId, tag: key.tag, listener: key.listener }).first('status');
    return row !== undefined;
  }

  /**
   * Records a delivery that did not apply the compensation, on its own: a record the database
   * cannot take while it is away is only lost from the timeline, the delivery's outcome stands.
   */
  async recordAttempt(key: CompensationKey, deliveryCount: number, outcome: 'duplicate' | 'failed', error?: string): Promise<void> {
    await this.db('compensation_attempts')
      .insert(attemptRow(key, deliveryCount, outcome, error))
      .catch(() => {});
  }
}

function attemptRow(key: CompensationKey, deliveryCount: number, outcome: AttemptOutcome, error?: string) {
  return { saga_id: key.sagaId, tag: key.tag, listener: key.listener, delivery_count: deliveryCount, outcome, error: error?.slice(0, 4000) ?? null };
}
