import { inTransaction, type Db, type Tx } from '../db/database';
import { AppError } from '../errors';
import type { ListenerName } from '../messaging/topology';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { Failpoints } from '../support/failpoints';
import { retryWithBackoff } from '../support/retry';
import type { IdGenerator } from '../support/ids';
import type { Clock } from '../support/time';
import type { SagaLog } from './saga-log';
import { SagaNotRunningError } from './saga-types';

/**
 * One engine, many saga definitions. A definition is data: named steps, each with the tag it
 * records before it acts and the listeners that undo it. The engine walks the steps; when one
 * fails, it hands the saga to compensation (saga log + outbox, one transaction) and the client
 * gets SAGA_FAILED with the saga id and tag. The tag lives on the saga instance in the database,
 * never in memory shared between requests.
 *
 * The rule for step authors: a step's durable effect commits through `run.guarded()`, which
 * locks the saga row and refuses to commit unless the saga is still RUNNING. So a step that wakes
 * up after the sweeper compensated its saga changes nothing.
 */

export interface StepRun {
  sagaId: string;
  /**
   * Runs `work` in a transaction that commits only if the saga is still RUNNING; marks the step
   * DONE in it (and, for the last step, completes the saga in it). Called once per step.
   */
  guarded<T>(work: (trx: Tx) => Promise<T>): Promise<T>;
}

/** A step as the topology and the saga log know it: its name, the tag it records, who undoes it. */
export interface StepSpec {
  readonly name: string;
  readonly tag: string;
  readonly undoneBy: readonly ListenerName[];
}

export interface SagaStep<Ctx> extends StepSpec {
  action(ctx: Ctx, run: StepRun): Promise<void>;
}

/**
 * A definition's steps: its specs (static data, which the topology is built from without any
 * dependency) joined with one action per step name.
 */
export function withActions<Ctx, const Specs extends readonly StepSpec[]>(
  specs: Specs,
  actions: { [Name in Specs[number]['name']]: SagaStep<Ctx>['action'] },
): Array<SagaStep<Ctx>> {
  return specs.map((spec) => ({ ...spec, action: actions[spec.name as Specs[number]['name']] }));
}

export interface SagaDefinition<Ctx> {
  type: string;
  steps: ReadonlyArray<SagaStep<Ctx>>;
  /**
   * What of the context goes into the saga log (and so into compensation messages); the whole
   * context when absent. Secrets, such as a pay password, stay out.
   */
  recordedInput?(ctx: Ctx): object;
}

export interface SagaMeta {
  sagaId?: string;
  orderId?: string;
  userId?: string;
  logger?: Logger;
}

/** The saga failed and is being compensated; `cause` says why (a business AppError or a fault). */
export class SagaFailedError extends Error {
  constructor(
    readonly sagaId: string,
    readonly tag: string | null,
    override readonly cause: unknown,
  ) {
    super(`saga ${sagaId} failed at ${tag ?? 'start'}: ${errorMessage(cause)}`);
    this.name = 'SagaFailedError';
  }
}

export interface SagaOutcomeListener {
  (outcome: { type: string; status: 'COMPLETED' | 'FAILED'; tag: string | null; durationMs: number }): void;
}

/** How long a process keeps retrying a hand-off that could not be written; then the sweeper's. */
const HAND_OFF_RETRY_FOR_MS = 10 * 60_000;

export interface SagaEngineDeps {
  db: Db;
  log: SagaLog;
  ids: IdGenerator;
  failpoints: Failpoints;
  logger: Logger;
  clock: Clock;
  onOutcome?: SagaOutcomeListener;
}

export class SagaEngine {
  private stopped = false;
  private readonly db: Db;
  private readonly log: SagaLog;
  private readonly failpoints: Failpoints;
  private readonly clock: Clock;

  constructor(private readonly deps: SagaEngineDeps) {
    ({ db: this.db, log: this.log, failpoints: this.failpoints, clock: this.clock } = deps);
  }

  private onOutcome(outcome: Parameters<SagaOutcomeListener>[0]): void {
    this.deps.onOutcome?.(outcome);
  }

  /**
   * Runs `definition` on `ctx` (recorded as the saga's input, through `recordedInput` if defined: JSON).
   * Resolves with the saga id when every step completed; throws SagaFailedError otherwise.
   */
  async run<Ctx extends object>(definition: SagaDefinition<Ctx>, ctx: Ctx, meta: SagaMeta = {}): Promise<string> {
    const sagaId = meta.sagaId ?? this.deps.ids.next();
    const logger = (meta.logger ?? this.deps.logger).child({ sagaId, sagaType: definition.type });
    const started = this.clock.now();
    await this.log.create({ id: sagaId, type: definition.type, input: definition.recordedInput?.(ctx) ?? ctx, orderId: meta.orderId, userId: meta.userId });

    const { steps } = definition;
    let step = steps[0];
    let completed = false;
    try {
      await this.failpoints.hit(`${definition.type}.${step.name}.record`); // recording itself failing
      await this.log.recordStepStart(sagaId, step.name, step.tag);
      for (let i = 0; i < steps.length; i++) {
        step = steps[i];
        completed = await this.runStep(definition, step, steps[i + 1] ?? null, ctx, sagaId);
      }
      if (!completed) completed = await this.log.complete(sagaId, definition.type);
    } catch (err) {
      // A step failed, or the saga could not be marked complete (the database went away at the
      // end): either way the client hears of a failure, so what was done is undone.
      const tag = await this.fail(sagaId, step, err, logger);
      this.onOutcome({ type: definition.type, status: 'FAILED', tag, durationMs: this.clock.now() - started });
      throw new SagaFailedError(sagaId, tag, err);
    }

    if (!completed) {
      // Compensated (by the sweeper) after its last step: it must not complete any more.
      const err = new SagaNotRunningError(sagaId, await this.log.statusOf(sagaId));
      const tag = await this.log.failedTagOf(sagaId);
      logger.warn('saga compensated before it could complete', { tag });
      this.onOutcome({ type: definition.type, status: 'FAILED', tag, durationMs: this.clock.now() - started });
      throw new SagaFailedError(sagaId, tag, err);
    }
    logger.info('saga completed', { status: 'COMPLETED', durationMs: this.clock.now() - started });
    this.onOutcome({ type: definition.type, status: 'COMPLETED', tag: null, durationMs: this.clock.now() - started });
    return sagaId;
  }

  /** Stops the hand-offs still being retried (another process's sweeper finishes them). */
  stop(): void {
    this.stopped = true;
  }

  /**
   * Runs one step, whose start is already recorded. A step with a durable effect commits it
   * through `run.guarded`, which marks it done in the same transaction, and the last step's
   * transaction also completes the saga (returns true then). A step without one is marked done
   * in the statement that records the next step's start. Unless a failpoint stands between the
   * last step's commit and the saga's completion (`<saga>.<step>.after`): then they stay apart.
   */
  private async runStep<Ctx>(definition: SagaDefinition<Ctx>, step: SagaStep<Ctx>, next: SagaStep<Ctx> | null, ctx: Ctx, sagaId: string): Promise<boolean> {
    const after = `${definition.type}.${step.name}.after`;
    const completesSaga = next === null && !this.failpoints.isSet(after);
    await this.failpoints.hit(`${definition.type}.${step.name}.before`);
    let committed = false;
    const run: StepRun = {
      sagaId,
      guarded: (work) =>
        inTransaction(this.db, async (trx) => {
          await this.log.lockRunning(trx, sagaId, { complete: completesSaga });
          const result = await work(trx);
          await this.log.markStepDone(sagaId, step.name, trx);
          committed = true;
          return result;
        }),
    };
    await step.action(ctx, run);
    const completed = committed && completesSaga;
    if (completed) this.log.completed(definition.type);
    await this.failpoints.hit(after);
    if (next) {
      await this.failpoints.hit(`${definition.type}.${next.name}.record`); // recording itself failing
      if (committed) await this.log.recordStepStart(sagaId, next.name, next.tag);
      else await this.log.advance(sagaId, step, next);
    } else if (!committed) {
      await this.log.markStepDone(sagaId, step.name);
    }
    return completed;
  }

  /**
   * Hands a failed saga to compensation; returns the tag its compensation goes out with (the
   * last tag recorded). When the hand-off itself cannot be written (the database is away: often
   * the very reason the step failed), it is retried in the background with backoff, so the saga
   * is compensated seconds after the database is back rather than when the sweeper finds it
   * stale; the sweeper stays the backstop should this process die meanwhile.
   */
  private async fail<Ctx>(sagaId: string, step: SagaStep<Ctx>, err: unknown, logger: Logger): Promise<string | null> {
    const errorCode = err instanceof AppError ? err.code : err instanceof SagaNotRunningError ? 'SAGA_NOT_RUNNING' : 'STEP_FAILED';
    const failure = { errorCode, error: errorMessage(err) };
    let handOff: { started: boolean; tag: string | null };
    try {
      handOff = await this.log.beginCompensation(sagaId, failure);
    } catch (handOffError) {
      logger.warn('saga failed; its compensation could not be queued yet, retrying', {
        step: step.name,
        error: errorMessage(handOffError),
        cause: failure.error,
      });
      void this.handOffLater(sagaId, failure, logger);
      // The client's answer names the hand-off's fault (503 when the database is down).
      throw new SagaFailedError(sagaId, step.tag, handOffError);
    }
    if (handOff.started) {
      this.logFailure(step.name, handOff.tag, failure, err instanceof AppError, logger);
      return handOff.tag;
    }
    // Someone else (the sweeper) already compensates it, from the tag it recorded.
    const failedTag = await this.log.failedTagOf(sagaId);
    logger.warn('saga step refused: saga already compensated', { step: step.name, tag: failedTag, error: errorMessage(err) });
    return failedTag;
  }

  private async handOffLater(sagaId: string, failure: { errorCode: string; error: string }, logger: Logger): Promise<void> {
    const deadline = this.clock.now() + HAND_OFF_RETRY_FOR_MS;
    try {
      const { started, tag } = await retryWithBackoff('mysql', () => this.log.beginCompensation(sagaId, failure), logger, {
        initialDelayMs: 100,
        maxDelayMs: 2_000,
        aborted: () => this.stopped || this.clock.now() > deadline,
      });
      logger.info(started ? 'saga compensation queued after a retry' : 'saga no longer running: nothing to hand off', {
        tag,
        status: started ? 'COMPENSATING' : undefined,
      });
    } catch (err) {
      logger.warn('saga compensation still not queued; the recovery sweeper will do it', { error: errorMessage(err) });
    }
  }

  private logFailure(step: string, tag: string | null, failure: { errorCode: string; error: string }, business: boolean, logger: Logger): void {
    const level = business ? 'info' : 'warn';
    const status = tag && this.log.undoneBy(tag).length > 0 ? 'COMPENSATING' : 'COMPENSATED';
    logger.log(level, status === 'COMPENSATING' ? 'saga failed, compensating' : 'saga failed, nothing to undo', {
      status,
      step,
      tag,
      ...failure,
    });
  }
}
