import { z } from 'zod';
import { AppError } from '../errors';
import { cents, idString } from '../support/schemas';

/** The payment provider's notification (the signed body of its callback). */
export const notificationSchema = z.strictObject({
  orderId: idString,
  amountCents: cents(1_000_000_000_00).refine((n) => n > 0, 'must be positive'),
  txnId: z.string().regex(/^[\w.:-]{1,128}$/, 'must be 1-128 letters, digits or _ . : -'),
  paidAt: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with offset, e.g. 2026-12-31T20:00:00Z' }),
});

export type Notification = z.output<typeof notificationSchema>;
export type NotificationStatus = 'UNMATCHED' | 'SETTLED' | 'FLAGGED';
export type FlagReason = 'NO_ORDER' | 'AMOUNT_MISMATCH' | 'ORDER_NOT_PAYABLE';
export const FLAG_REASONS: readonly FlagReason[] = ['NO_ORDER', 'AMOUNT_MISMATCH', 'ORDER_NOT_PAYABLE'];

/** A row of `payment_notifications` (owned by PaymentNotifications and its settle function). */
export interface NotificationRow {
  txn_id: string;
  order_id: string;
  amount_cents: string | number;
  paid_at: Date;
  status: NotificationStatus;
  flag_reason: FlagReason | null;
  detail: string | null;
  match_attempts: number;
  received_at: Date;
  resolved_at: Date | null;
}

export function parseJson(rawBody: Buffer): unknown {
  try {
    return JSON.parse(rawBody.toString('utf8'));
  } catch {
    throw new AppError('MALFORMED_JSON', 'the body is not valid JSON');
  }
}

/** The callback's answer: what became of the notification. */
export function answer(row: NotificationRow) {
  return {
    txnId: row.txn_id,
    orderId: row.order_id,
    status: row.status,
    ...(row.flag_reason ? { reason: row.flag_reason } : {}),
  };
}
