import type { Tx } from '../db/database';
import type { CompletedSaga } from './saga-types';

/**
 * The rows of sagas that ran to their end elsewhere (an async order, reserved in Redis and
 * persisted in a batch): COMPLETED, with their steps DONE. SagaLog.recordCompleted writes them.
 */
export async function insertCompletedSagas(trx: Tx, sagas: CompletedSaga[]): Promise<void> {
  if (sagas.length === 0) return;
  await trx('sagas').insert(
    sagas.map((saga) => ({
      id: saga.id,
      type: saga.type,
      status: 'COMPLETED',
      payload: JSON.stringify(saga.input),
      order_id: saga.orderId,
      user_id: saga.userId,
      created_at: saga.createdAt,
      finished_at: trx.fn.now(3),
    })),
  );
  await trx('saga_steps').insert(
    sagas.flatMap((saga) =>
      saga.steps.map((step) => ({
        saga_id: saga.id,
        step: step.name,
        tag: step.tag,
        status: 'DONE',
        started_at: step.startedAt ?? trx.fn.now(3),
        finished_at: trx.fn.now(3),
      })),
    ),
  );
}
