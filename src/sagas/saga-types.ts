import type { ListenerName } from '../messaging/topology';

export type SagaStatus = 'RUNNING' | 'COMPLETED' | 'COMPENSATING' | 'COMPENSATED';

/** The message a failed saga sends to the compensation exchange, routed by `tag`. */
export interface CompensationMessage {
  sagaId: string;
  sagaType: string;
  tag: string;
  failedStep: string;
  /** The saga's input, so listeners know which order, seats, user it was about. */
  input: Record<string, unknown>;
}

/** Raised when a saga is no longer RUNNING: a step that wakes up late is refused. */
export class SagaNotRunningError extends Error {
  constructor(
    readonly sagaId: string,
    readonly status: string,
  ) {
    super(`saga ${sagaId} is ${status}, not RUNNING: step refused`);
    this.name = 'SagaNotRunningError';
  }
}

export interface CompensationRouting {
  exchange: string;
  listenersFor(tag: string): readonly ListenerName[];
}

/** A saga's status changed in the log, once committed (metrics count what the log says). */
export interface SagaTransition {
  type: string;
  status: 'COMPLETED' | 'COMPENSATING' | 'COMPENSATED';
  tag: string | null;
  /** Set when the saga failed and went to compensation (COMPENSATING, or COMPENSATED at once). */
  errorCode?: string;
}

/** A saga that ran to its end elsewhere (an async order: reserved in Redis, persisted in a batch). */
export interface CompletedSaga {
  id: string;
  type: string;
  input: object;
  orderId: string;
  userId: string;
  createdAt: Date;
  /** Its steps, in order, with when each started (each finished at the commit). */
  steps: Array<{ name: string; tag: string; startedAt: Date | null }>;
}
