import { notificationSchema } from '../../payments/notification';
import { responses } from '../responses';
import type { Operation } from './operation';

/** The payment provider's callback. */
export const PAYMENT_OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/api/payments/notify',
    operationId: 'paymentNotify',
    summary: "The payment provider's HMAC-signed callback",
    tag: 'payments',
    auth: 'none',
    body: notificationSchema,
    signed: true,
    success: { 200: { description: 'stored, settled or flagged', schema: responses.paymentNotification } },
    errors: ['VALIDATION_FAILED', 'INVALID_SIGNATURE', 'STALE_NOTIFICATION', 'NOT_FOUND', 'IDEMPOTENCY_KEY_REUSED'],
    description: 'The body is any bytes (signed as they are, header X-Payment-Signature); see the README for the fields and the signature.',
  },
];
