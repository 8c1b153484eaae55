import type { Logger } from '../observability/logger';
import type { SagaLog } from './saga-log';

/**
 * Finishes sagas whose process died. A saga RUNNING for longer than `staleMs` is compensated from
 * the last tag it recorded (its late steps are then refused, see SagaEngine); a saga stuck in
 * COMPENSATING for longer than `compensationStaleMs` gets its compensation published again
 * (listeners are idempotent). Safe to run in every process at once: each transition is
 * conditional on the saga's status, under its row lock.
 */
export class RecoverySweeper {
  constructor(private readonly deps: { log: SagaLog; logger: Logger; staleMs: number; compensationStaleMs: number }) {}

  async sweepOnce(): Promise<{ compensated: number; republished: number }> {
    const { log, logger, staleMs, compensationStaleMs } = this.deps;
    let compensated = 0;
    let republished = 0;
    for (const sagaId of await log.findStale('RUNNING', staleMs)) {
      const { started, tag } = await log.beginCompensation(sagaId, {
        errorCode: 'SAGA_STALE',
        error: `RUNNING for more than ${staleMs} ms: its process presumably died`,
      });
      if (started) {
        compensated++;
        logger.warn('stale saga compensated by the sweeper', { sagaId, tag, status: 'COMPENSATING' });
      }
    }
    for (const sagaId of await log.findStale('COMPENSATING', compensationStaleMs)) {
      if (await log.republishCompensation(sagaId, compensationStaleMs)) {
        republished++;
        logger.warn('compensation republished for a saga stuck in COMPENSATING', { sagaId });
      }
    }
    return { compensated, republished };
  }
}
