import { z } from 'zod';
import { responses } from '../responses';
import { schemas } from '../validation';
import { type Operation, userCommon } from './operation';

const waitMs = z
  .string()
  .regex(/^\d{1,5}$/)
  .describe('wait up to this many milliseconds (0..10000) for the order to be persisted: 201 with it, else 202 as without');

/** Orders: placed (synchronously or on the flash-sale path), listed, paid, cancelled, refunded. */
export const ORDER_OPERATIONS: Operation[] = [
  {
    method: 'post',
    path: '/api/orders',
    operationId: 'placeOrder',
    summary: 'Place an order (the order saga, synchronously)',
    tag: 'orders',
    auth: 'bearer',
    body: schemas.createOrder,
    idempotent: true,
    success: { 201: { description: 'the order, PENDING_PAYMENT', schema: responses.order } },
    errors: ['VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'SEATS_TAKEN', 'SAGA_FAILED', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_KEY_IN_PROGRESS'],
    description: 'SAGA_FAILED (500) carries `details.sagaId` and `details.tag`.',
  },
  {
    method: 'post',
    path: '/api/orders/async',
    operationId: 'placeAsyncOrder',
    summary: 'Place an order on the flash-sale path',
    tag: 'orders',
    auth: 'bearer',
    body: schemas.createAsyncOrder,
    query: z.object({ waitMs: waitMs.optional() }),
    success: {
      201: { description: 'with waitMs: the order, persisted within the wait', schema: responses.order, location: true },
      202: { description: 'seats reserved, the order queued', schema: responses.queued, location: true },
    },
    errors: ['VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'SEATS_TAKEN', 'SOLD_OUT', 'DUPLICATE_REQUEST'],
  },
  {
    method: 'get',
    path: '/api/orders',
    operationId: 'listOrders',
    summary: "The caller's orders, newest first",
    tag: 'orders',
    auth: 'bearer',
    success: { 200: { description: 'the orders', schema: z.array(responses.order) } },
    errors: userCommon,
  },
  {
    method: 'get',
    path: '/api/orders/:id',
    operationId: 'getOrder',
    summary: "One of the caller's orders",
    tag: 'orders',
    auth: 'bearer',
    success: { 200: { description: 'the order', schema: responses.order } },
    errors: [...userCommon, 'NOT_FOUND'],
    description: "404 also while an async order is not yet persisted, and for another user's order.",
  },
  {
    method: 'post',
    path: '/api/orders/:id/pay',
    operationId: 'payOrder',
    summary: 'Pay an order (the pay saga)',
    tag: 'orders',
    auth: 'bearer',
    body: schemas.pay,
    idempotent: true,
    success: { 200: { description: 'paid', schema: responses.paid } },
    errors: [
      'VALIDATION_FAILED',
      ...userCommon,
      'NOT_FOUND',
      'WRONG_PAY_PASSWORD',
      'INSUFFICIENT_BALANCE',
      'ORDER_NOT_PAYABLE',
      'SAGA_FAILED',
      'TOO_MANY_ATTEMPTS',
      'IDEMPOTENCY_KEY_REUSED',
      'IDEMPOTENCY_KEY_IN_PROGRESS',
    ],
  },
  {
    method: 'post',
    path: '/api/orders/:id/cancel',
    operationId: 'cancelOrder',
    summary: 'Cancel an unpaid order',
    tag: 'orders',
    auth: 'bearer',
    noBody: true,
    success: { 200: { description: 'cancelled', schema: responses.cancelled } },
    errors: ['VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'ORDER_NOT_PAYABLE'],
  },
  {
    method: 'post',
    path: '/api/orders/:id/refund',
    operationId: 'refundOrder',
    summary: 'Refund a paid order',
    tag: 'orders',
    auth: 'bearer',
    noBody: true,
    success: { 200: { description: 'refunded', schema: responses.refunded } },
    errors: ['VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'ORDER_NOT_REFUNDABLE', 'ORDER_NOT_PAYABLE'],
  },
];
