import { z } from 'zod';
import { ERROR_STATUS, type ErrorCode } from '../errors';
import { CONSUMER_NAMES } from '../operator/dead-letter-queues';
import { SAGA_STATUSES } from '../operator/saga-query-types';

/**
 * What the API answers, as zod schemas: the success bodies of every route and the shared error
 * shape. They are not used to build responses (the services return plain objects); they feed
 * /openapi.json, and the e2e suite checks every answer it receives against that document, so a
 * schema here that drifts from what the code returns fails the tests.
 */

const id = z
  .string()
  .regex(/^\d{1,20}$/)
  .describe('an id: a decimal string (may exceed 2^53)');
const instant = z.string().describe('an ISO 8601 date-time (UTC)');
const cents = z.number().int().min(0);

export const ORDER_STATUSES = ['PENDING_PAYMENT', 'PAID', 'CANCELLED', 'EXPIRED', 'REFUNDED'] as const;

export const responses = {
  createdUser: z.object({ id, name: z.string(), balanceCents: cents, token: z.string().describe('the bearer token of this user') }),
  user: z.object({ id, name: z.string(), balanceCents: cents }),
  credited: z.object({ id, balanceCents: cents }),
  createdShow: z.object({ id, title: z.string(), startsAt: instant, priceCents: cents, seatsTotal: z.number().int() }),
  show: z.object({ id, title: z.string(), startsAt: instant, priceCents: cents, seatsTotal: z.number().int(), seatsAvailable: z.number().int() }),
  seats: z.array(z.object({ id, label: z.string(), status: z.enum(['available', 'held', 'sold']) })),
  order: z.object({
    id,
    status: z.enum(ORDER_STATUSES),
    showId: id,
    seatIds: z.array(id),
    totalCents: cents,
    expiresAt: instant,
    sagaId: id,
    createdAt: instant,
  }),
  queued: z.object({ orderId: id, status: z.literal('QUEUED') }),
  paid: z.object({ id, status: z.literal('PAID'), balanceCents: cents, sagaId: id }),
  cancelled: z.object({ id, status: z.literal('CANCELLED') }),
  refunded: z.object({ id, status: z.literal('REFUNDED'), balanceCents: cents }),
  paymentNotification: z.object({
    txnId: z.string(),
    orderId: z.string(),
    status: z.enum(['UNMATCHED', 'SETTLED', 'FLAGGED']),
    reason: z.enum(['NO_ORDER', 'AMOUNT_MISMATCH', 'ORDER_NOT_PAYABLE']).optional(),
    duplicate: z.literal(true).optional().describe('present when this txnId was notified before'),
  }),
  sagaSummary: z.object({
    id,
    type: z.string(),
    status: z.enum(SAGA_STATUSES),
    failedTag: z.string().nullable(),
    orderId: id.nullable(),
    userId: id.nullable(),
    createdAt: instant,
    updatedAt: instant.describe('its last progress: a stuck saga has made none since'),
    finishedAt: instant.nullable(),
  }),
  failpoint: z.object({
    name: z.string(),
    action: z.enum(['throw', 'off', 'delay', 'crash']),
    ms: z.number().int().optional(),
    count: z.number().int().optional(),
  }),
  health: z.object({
    status: z.enum(['ok', 'degraded']),
    mysql: z.enum(['up', 'down']),
    redis: z.enum(['up', 'down']),
    rabbitmq: z.enum(['up', 'down']),
  }),
  livez: z.object({ status: z.literal('ok') }),
};

const sagaSummary = responses.sagaSummary;
const listeners = z.enum(CONSUMER_NAMES);

export const operatorResponses = {
  sagaPage: z.object({ items: z.array(sagaSummary), nextCursor: z.string().nullable().describe('null on the last page') }),
  sagaStats: z.object({
    byStatus: z.object(Object.fromEntries(SAGA_STATUSES.map((s) => [s, z.number().int()])) as Record<(typeof SAGA_STATUSES)[number], z.ZodNumber>),
    byType: z.record(z.string(), z.number().int()),
    stuck: z.number().int().describe('RUNNING or COMPENSATING past its bound'),
    stuckSagas: z.array(sagaSummary).describe('at most 20 of them, longest stuck first'),
  }),
  saga: z.object({
    id,
    type: z.string(),
    status: z.enum(SAGA_STATUSES),
    orderId: id.nullable(),
    failedTag: z.string().nullable(),
    error: z.object({ code: z.string().nullable(), message: z.string() }).nullable().describe('why a failed saga failed; null for a release'),
    reason: z.string().nullable().describe('why a release (cancel, expiry, refund) happened; null otherwise'),
    createdAt: instant,
    finishedAt: instant.nullable(),
    steps: z.array(
      z.object({ step: z.string(), tag: z.string(), status: z.string(), at: instant, finishedAt: instant.nullable(), error: z.string().nullable() }),
    ),
    compensations: z.array(z.object({ tag: z.string(), listener: z.string(), status: z.string(), detail: z.string().nullable(), at: instant })),
    timeline: z.array(
      z.object({
        at: instant,
        kind: z.string(),
        label: z.string(),
        step: z.string().optional(),
        tag: z.string().optional(),
        listener: z.string().optional(),
        deliveryCount: z.number().int().optional(),
        error: z.string().nullable().optional(),
        detail: z.string().nullable().optional(),
      }),
    ),
    listeners: z.array(
      z.object({
        listener: z.string(),
        state: z.enum(['pending', 'retrying', 'dead-lettered', 'done', 'noop']),
        attempts: z.number().int(),
        lastError: z.string().nullable(),
      }),
    ),
  }),
  sagaRedriven: z.object({ id, status: z.literal('COMPENSATING'), redriven: z.literal(true) }),
  deadLetters: z.array(
    z.object({
      id: z.string(),
      listener: listeners,
      queue: z.string(),
      messageId: z.string().nullable(),
      sagaId: z.string().nullable(),
      tag: z.string().nullable(),
      reason: z.string(),
      error: z.string().nullable(),
      deliveries: z.number().int(),
      deadLetteredAt: instant,
      sagaStatus: z.string().nullable(),
    }),
  ),
  deadLetterRedrive: z.object({ redriven: z.number().int(), dropped: z.number().int() }),
  overview: z.object({
    at: instant,
    ordersAccepted: z.object({ lastMinute: z.number().int(), lastHour: z.number().int() }),
    sagas: z.object({ running: z.number().int(), compensating: z.number().int() }),
    compensationsInFlight: z.number().int(),
    deadLetters: z.object({ total: z.number().int(), byListener: z.record(z.string(), z.number().int()) }),
  }),
  failpoints: z.record(
    z.string(),
    z.object({ action: z.enum(['throw', 'off', 'delay', 'crash']), ms: z.number().int().optional(), count: z.number().int().optional() }),
  ),
};

/** The contract's error shape, `{error: {code, message, details?}}`, for the given codes. */
export function errorShape(codes: readonly ErrorCode[]) {
  return z.object({
    error: z.object({
      code: z.enum(codes as [ErrorCode, ...ErrorCode[]]),
      message: z.string(),
      details: z.unknown().optional(),
    }),
  });
}

export const ALL_ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];
