import type { Db } from '../db/database';
import type { SagaStatus } from './saga-types';

/** Sagas that release an order on purpose (recordRelease), not failures, and what each one is. */
export const RELEASE_SAGAS: Readonly<Record<string, string>> = {
  cancel: 'order cancelled by its owner',
  expiry: 'order expired unpaid',
  refund: 'order refunded',
};
export const isReleaseSaga = (type: string): boolean => Object.hasOwn(RELEASE_SAGAS, type);

const iso = (d: Date | null) => (d ? d.toISOString() : null);

export interface SagaView {
  id: string;
  type: string;
  status: SagaStatus;
  orderId: string | null;
  failedTag: string | null;
  /** Why a failed saga failed (null for a release: it did not fail). */
  error: { code: string | null; message: string } | null;
  /** Why a release (cancel, expiry, refund) happened. */
  reason: string | null;
  createdAt: string;
  finishedAt: string | null;
  steps: Array<{ step: string; tag: string; status: string; at: string; finishedAt: string | null; error: string | null }>;
  compensations: Array<{ tag: string; listener: string; status: string; detail: string; at: string }>;
}

/** A saga with its steps and compensations, as the operator API shows it. */
export async function readSagaView(db: Db, sagaId: string): Promise<SagaView | null> {
  const saga = await db('sagas').where({ id: sagaId }).first();
  if (!saga) return null;
  const [steps, compensations] = await Promise.all([
    db('saga_steps').where({ saga_id: sagaId }).orderBy('id'),
    db('saga_compensations').where({ saga_id: sagaId }).orderBy('at'),
  ]);
  return {
    id: saga.id,
    type: saga.type,
    status: saga.status,
    orderId: saga.order_id,
    failedTag: saga.failed_tag,
    error: saga.error && !isReleaseSaga(saga.type) ? { code: saga.error_code, message: saga.error } : null,
    reason: isReleaseSaga(saga.type) ? saga.error : null,
    createdAt: saga.created_at.toISOString(),
    finishedAt: iso(saga.finished_at),
    steps: steps.map((s: any) => ({
      step: s.step,
      tag: s.tag,
      status: s.status,
      at: s.started_at.toISOString(),
      finishedAt: iso(s.finished_at),
      error: s.error,
    })),
    compensations: compensations.map((c: any) => ({
      tag: c.tag,
      listener: c.listener,
      status: c.status,
      detail: c.detail,
      at: c.at.toISOString(),
    })),
  };
}
