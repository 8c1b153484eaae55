/** What the operator API's saga queries take and answer (operator/saga-queries.ts). */

export const SAGA_STATUSES = ['RUNNING', 'COMPLETED', 'COMPENSATING', 'COMPENSATED'] as const;
export type SagaStatusName = (typeof SAGA_STATUSES)[number];

export interface SagaFilter {
  status?: SagaStatusName;
  type?: string;
  /** The failed tag (the tag its compensation went out with). */
  tag?: string;
  orderId?: string;
  userId?: string;
  since?: Date;
  until?: Date;
  limit: number;
  cursor?: string;
}

export interface SagaSummary {
  id: string;
  type: string;
  status: SagaStatusName;
  failedTag: string | null;
  orderId: string | null;
  userId: string | null;
  createdAt: string;
  /** Its last progress (a stuck saga has made none since). */
  updatedAt: string;
  finishedAt: string | null;
}

export interface TimelineEvent {
  at: string;
  kind: string;
  /** What an operator reads: "seats_hold failed: seat 4 already taken", "order cancelled by its owner". */
  label: string;
  step?: string;
  tag?: string;
  listener?: string;
  deliveryCount?: number;
  error?: string | null;
  detail?: string;
}

export interface ListenerProgress {
  listener: string;
  state: 'pending' | 'retrying' | 'dead-lettered' | 'done' | 'noop';
  attempts: number;
  lastError: string | null;
}
