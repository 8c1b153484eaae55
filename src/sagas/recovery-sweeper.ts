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
  constructor(
    private readonly log: SagaLog,
    private readonly logger: Logger,
    private readonly options: { staleMs: number; compensationStaleMs: number },
    private readonly onCompensationQueued: () => void,
  ) {}

  async sweepOnce(): Promise<{ compensated: number; republished: number }> {
    let compensated = 0;
    let republished = 0;
    for (const sagaId of await this.log.findStaleRunning(this.options.staleMs)) {
      const { started, tag } = await this.log.beginCompensation(sagaId, {
        errorCode: 'SAGA_STALE',
        error: `RUNNING for more than ${this.options.staleMs} ms: its process presumably died`,
      });
      if (started) {
        compensated++;
        this.logger.warn('stale saga compensated by the sweeper', { sagaId, tag, status: 'COMPENSATING' });
      }
    }
    for (const sagaId of await this.log.findStaleCompensating(this.options.compensationStaleMs)) {
      if (await this.log.republishCompensation(sagaId, this.options.compensationStaleMs)) {
        republished++;
        this.logger.warn('compensation republished for a saga stuck in COMPENSATING', { sagaId });
      }
    }
    if (compensated + republished > 0) this.onCompensationQueued();
    return { compensated, republished };
  }
}
