import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { inTransaction, type Db, type Tx } from '../db/database';
import type { RedisClient } from '../db/redis';
import { UnprocessableMessageError, type Delivery } from '../messaging/broker';
import type { ListenerName } from '../messaging/topology';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { Failpoints } from '../support/failpoints';
import { sleep, type Clock } from '../support/time';
import type { CompensationKey } from '../sagas/compensation-records';
import type { SagaLog } from '../sagas/saga-log';
import type { CompensationMessage } from '../sagas/saga-types';

/**
 * A compensating listener: `undo` runs inside the transaction that records the compensation, so
 * the database commits the effect at most once per (saga, tag, listener). `afterCommit` is for
 * effects outside the database (the Redis seat view); it must be idempotent, because it runs
 * again whenever a delivery finds the database part already done.
 */
export interface CompensationListener {
  name: ListenerName;
  undo(trx: Tx, message: CompensationMessage): Promise<{ changed: boolean; detail: string }>;
  afterCommit?(message: CompensationMessage): Promise<void>;
}

const messageSchema = z.object({
  sagaId: z.string().regex(/^\d+$/),
  sagaType: z.string(),
  tag: z.string(),
  failedStep: z.string(),
  input: z.record(z.string(), z.unknown()),
});

export type ListenerOutcome = 'done' | 'noop' | 'duplicate-redis' | 'duplicate-db' | 'busy';

export class CompensationBusyError extends Error {
  constructor(key: string) {
    super(`another delivery holds ${key}; retrying later`);
    this.name = 'CompensationBusyError';
  }
}

export interface ListenerRuntimeDeps {
  db: Db;
  redis: RedisClient;
  sagaLog: SagaLog;
  failpoints: Failpoints;
  logger: Logger;
  clock: Clock;
  namespace: string;
  onOutcome?: (listener: ListenerName, outcome: ListenerOutcome) => void;
  /** This delivery was the saga's last compensation: it is COMPENSATED (committed). */
  onSagaCompensated?: (sagaType: string, tag: string) => void;
}

/**
 * A delivery in progress holds its key for this long; a crashed one's lease then runs out. The lease
 * only saves work: correctness rests on the database record, so a lease that runs out under a slow
 * handler costs a blocked duplicate, never a second effect.
 */
const LEASE_MS = 5_000;
/** A finished compensation is remembered in Redis this long (the database remembers forever). */
const DONE_TTL_SECONDS = 2 * 24 * 3600;

const RELEASE_LEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * Wraps a listener with the exactly-once discipline every compensation follows:
 *  1. take the Redis key (listener, saga, tag) with SET NX as a short lease; a key that says
 *     "done", or a compensation record in the database, means a duplicate: ack without acting;
 *  2. in one database transaction: insert the compensation record (its primary key refuses a
 *     second one even when Redis lost the key), apply the undo, count the listener finished;
 *  3. after commit: the idempotent non-database part, then mark the key "done" for two days;
 *  4. on failure: give the key back so the retry can take it.
 */
export function compensationHandler(listener: CompensationListener, deps: ListenerRuntimeDeps) {
  const { db, redis, sagaLog, failpoints, namespace, clock } = deps;
  const records = sagaLog.compensations;
  const outcome = (value: ListenerOutcome) => deps.onOutcome?.(listener.name, value);

  return async (delivery: Delivery): Promise<void> => {
    const parsed = messageSchema.safeParse(delivery.body);
    if (!parsed.success) throw new UnprocessableMessageError(`not a compensation message: ${parsed.error.issues[0].message}`);
    const message: CompensationMessage = parsed.data;
    const logger = deps.logger.child({ sagaId: message.sagaId, tag: message.tag, listener: listener.name });
    const key = `${namespace}:dedupe:${listener.name}:${message.sagaId}:${message.tag}`;
    const lease = `lease:${randomUUID()}`;
    const record: CompensationKey = { sagaId: message.sagaId, tag: message.tag, listener: listener.name };

    // Take the lease, or learn that the compensation is done. A copy that finds another delivery
    // holding the lease waits for it (at most as long as a lease lives) rather than spending its
    // bounded retries.
    let waited = false;
    for (const deadline = clock.now() + 2 * LEASE_MS; ;) {
      if ((await redis.set(key, lease, 'PX', LEASE_MS, 'NX')) === 'OK') break;
      if ((await redis.get(key)) === 'done') {
        logger.info('duplicate compensation ignored (redis)', { attempt: delivery.deliveryCount });
        outcome('duplicate-redis');
        await records.recordAttempt(record, delivery.deliveryCount, 'duplicate');
        return;
      }
      if (await records.isRecorded(record)) {
        // Done, but Redis does not know (it lost the key, or the holder died before saying so).
        await listener.afterCommit?.(message);
        logger.info('duplicate compensation ignored (database)', { attempt: delivery.deliveryCount });
        outcome('duplicate-db');
        await records.recordAttempt(record, delivery.deliveryCount, 'duplicate');
        return;
      }
      if (!waited) outcome('busy');
      waited = true;
      if (clock.now() > deadline) throw new CompensationBusyError(key);
      await sleep(50);
    }

    try {
      await failpoints.hit(`listener.${listener.name}.before`);
      const result = await inTransaction(db, async (trx) => {
        // Serializes the listeners of one saga, so exactly one of them sees the last pending count.
        await sagaLog.lockForCompensation(trx, message.sagaId);
        if (!(await records.claim(trx, record))) return 'duplicate' as const;
        const { changed, detail } = await listener.undo(trx, message);
        await records.finish(trx, record, { changed, detail }, delivery.deliveryCount);
        const sagaCompensated = await sagaLog.listenerFinished(trx, message.sagaId);
        return { changed, detail, sagaCompensated };
      });
      await listener.afterCommit?.(message);
      await failpoints.hit(`listener.${listener.name}.after`);
      await redis.set(key, 'done', 'EX', DONE_TTL_SECONDS);

      if (result === 'duplicate') {
        logger.info('duplicate compensation ignored (database)', { attempt: delivery.deliveryCount });
        outcome('duplicate-db');
        await records.recordAttempt(record, delivery.deliveryCount, 'duplicate');
      } else {
        logger.info('compensation applied', { status: result.changed ? 'DONE' : 'NOOP', detail: result.detail, attempt: delivery.deliveryCount });
        outcome(result.changed ? 'done' : 'noop');
        if (result.sagaCompensated) {
          logger.info('saga compensated', { status: 'COMPENSATED', sagaType: message.sagaType });
          deps.onSagaCompensated?.(message.sagaType, message.tag);
        }
      }
    } catch (err) {
      await redis.eval(RELEASE_LEASE, 1, key, lease).catch(() => {});
      logger.warn('compensation attempt failed', { attempt: delivery.deliveryCount, error: errorMessage(err) });
      await records.recordAttempt(record, delivery.deliveryCount, 'failed', errorMessage(err));
      throw err;
    }
  };
}
