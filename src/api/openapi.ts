import { z } from 'zod';
import { ERROR_STATUS, type ErrorCode } from '../errors';
import { operatorResponses, responses, errorShape, ALL_ERROR_CODES } from './responses';
import { operatorSchemas } from './routes/operator';
import { notificationSchema, SIGNATURE_HEADER } from '../payments/notifications';
import { schemas } from './validation';

/**
 * The OpenAPI 3.1 description of every route, served at /openapi.json. Request bodies and query
 * parameters are the very zod schemas that validate requests (`schemas`, `operatorSchemas`),
 * turned into JSON Schema 2020-12 by zod 4's own `z.toJSONSchema` on their input side (what a
 * client may send); success bodies come from ./responses. zod-to-openapi was not needed: OpenAPI
 * 3.1 schemas are JSON Schema 2020-12, which zod 4 emits itself, so nothing else has to agree
 * with the validators.
 */

type Auth = 'none' | 'bearer' | 'admin';
type Method = 'get' | 'post' | 'put';

interface Operation {
  method: Method;
  /** Express style: `/api/orders/:id`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  auth: Auth;
  body?: z.ZodType;
  /** The request body is optional (an empty body or `{}` is fine). */
  bodyOptional?: boolean;
  /** A route that takes no body: nothing, or `{}`. */
  noBody?: boolean;
  query?: z.ZodType;
  idempotent?: boolean;
  /** Signed by the payment provider (header X-Payment-Signature over the raw body). */
  signed?: boolean;
  /** status -> schema (JSON) or a media type description. */
  success: Record<number, { description: string; schema?: z.ZodType; location?: boolean; contentType?: string }>;
  /** Codes this route answers besides the common ones (a status per code, from ERROR_STATUS). */
  errors: ErrorCode[];
  /** Outside the JSON API: no common body-parsing errors. */
  plain?: boolean;
  description?: string;
}

const userCommon: ErrorCode[] = ['UNAUTHORIZED'];
const pathIdNotFound: ErrorCode[] = ['NOT_FOUND'];

const waitMs = z
  .string()
  .regex(/^\d{1,5}$/)
  .describe('wait up to this many milliseconds (0..10000) for the order to be persisted: 201 with it, else 202 as without');

const emptyBody = z.strictObject({});

export const OPERATIONS: Operation[] = [
  // --- users, shows, orders
  {
    method: 'post', path: '/api/users', operationId: 'createUser', summary: 'Create a user (returns its bearer token)', tag: 'users', auth: 'none',
    body: schemas.createUser, success: { 201: { description: 'the user, with its token', schema: responses.createdUser } }, errors: ['VALIDATION_FAILED'],
  },
  {
    method: 'get', path: '/api/users/me', operationId: 'getMe', summary: 'The caller', tag: 'users', auth: 'bearer',
    success: { 200: { description: 'the caller', schema: responses.user } }, errors: [...userCommon, 'NOT_FOUND'],
  },
  {
    method: 'post', path: '/api/admin/users/:id/credits', operationId: 'creditUser', summary: "Credit a user's balance", tag: 'admin', auth: 'admin',
    body: schemas.credit, success: { 200: { description: 'the new balance', schema: responses.credited } }, errors: ['VALIDATION_FAILED', 'UNAUTHORIZED', 'NOT_FOUND'],
  },
  {
    method: 'post', path: '/api/admin/shows', operationId: 'createShow', summary: 'Create a show and its seats', tag: 'admin', auth: 'admin',
    body: schemas.createShow, success: { 201: { description: 'the show', schema: responses.createdShow } }, errors: ['VALIDATION_FAILED', 'UNAUTHORIZED'],
  },
  {
    method: 'get', path: '/api/shows/:id', operationId: 'getShow', summary: 'A show, with its seats available', tag: 'shows', auth: 'none',
    success: { 200: { description: 'the show', schema: responses.show } }, errors: pathIdNotFound,
  },
  {
    method: 'get', path: '/api/shows/:id/seats', operationId: 'getSeats', summary: "A show's seats", tag: 'shows', auth: 'none',
    success: { 200: { description: 'every seat of the show', schema: responses.seats } }, errors: pathIdNotFound,
  },
  {
    method: 'post', path: '/api/orders', operationId: 'placeOrder', summary: 'Place an order (the order saga, synchronously)', tag: 'orders', auth: 'bearer',
    body: schemas.createOrder, idempotent: true,
    success: { 201: { description: 'the order, PENDING_PAYMENT', schema: responses.order } },
    errors: ['VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'SEATS_TAKEN', 'SAGA_FAILED', 'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_KEY_IN_PROGRESS'],
    description: 'SAGA_FAILED (500) carries `details.sagaId` and `details.tag`.',
  },
  {
    method: 'post', path: '/api/orders/async', operationId: 'placeAsyncOrder', summary: 'Place an order on the flash-sale path', tag: 'orders', auth: 'bearer',
    body: schemas.createAsyncOrder, query: z.object({ waitMs: waitMs.optional() }),
    success: {
      201: { description: 'with waitMs: the order, persisted within the wait', schema: responses.order, location: true },
      202: { description: 'seats reserved, the order queued', schema: responses.queued, location: true },
    },
    errors: ['VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'SEATS_TAKEN', 'SOLD_OUT', 'DUPLICATE_REQUEST'],
  },
  {
    method: 'get', path: '/api/orders', operationId: 'listOrders', summary: "The caller's orders, newest first", tag: 'orders', auth: 'bearer',
    success: { 200: { description: 'the orders', schema: z.array(responses.order) } }, errors: userCommon,
  },
  {
    method: 'get', path: '/api/orders/:id', operationId: 'getOrder', summary: 'One of the caller\'s orders', tag: 'orders', auth: 'bearer',
    success: { 200: { description: 'the order', schema: responses.order } }, errors: [...userCommon, 'NOT_FOUND'],
    description: "404 also while an async order is not yet persisted, and for another user's order.",
  },
  {
    method: 'post', path: '/api/orders/:id/pay', operationId: 'payOrder', summary: 'Pay an order (the pay saga)', tag: 'orders', auth: 'bearer',
    body: schemas.pay, idempotent: true,
    success: { 200: { description: 'paid', schema: responses.paid } },
    errors: [
      'VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'WRONG_PAY_PASSWORD', 'INSUFFICIENT_BALANCE', 'ORDER_NOT_PAYABLE', 'SAGA_FAILED', 'TOO_MANY_ATTEMPTS',
      'IDEMPOTENCY_KEY_REUSED', 'IDEMPOTENCY_KEY_IN_PROGRESS',
    ],
  },
  {
    method: 'post', path: '/api/orders/:id/cancel', operationId: 'cancelOrder', summary: 'Cancel an unpaid order', tag: 'orders', auth: 'bearer', noBody: true,
    success: { 200: { description: 'cancelled', schema: responses.cancelled } }, errors: ['VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'ORDER_NOT_PAYABLE'],
  },
  {
    method: 'post', path: '/api/orders/:id/refund', operationId: 'refundOrder', summary: 'Refund a paid order', tag: 'orders', auth: 'bearer', noBody: true,
    success: { 200: { description: 'refunded', schema: responses.refunded } },
    errors: ['VALIDATION_FAILED', ...userCommon, 'NOT_FOUND', 'ORDER_NOT_REFUNDABLE', 'ORDER_NOT_PAYABLE'],
  },
  {
    method: 'post', path: '/api/payments/notify', operationId: 'paymentNotify', summary: "The payment provider's HMAC-signed callback", tag: 'payments', auth: 'none',
    body: notificationSchema, signed: true,
    success: { 200: { description: 'stored, settled or flagged', schema: responses.paymentNotification } },
    errors: ['VALIDATION_FAILED', 'INVALID_SIGNATURE', 'STALE_NOTIFICATION', 'NOT_FOUND', 'IDEMPOTENCY_KEY_REUSED'],
    description: 'The body is any bytes (signed as they are, header X-Payment-Signature); see the README for the fields and the signature.',
  },
  // --- operators
  {
    method: 'get', path: '/api/admin/sagas', operationId: 'searchSagas', summary: 'Search sagas (keyset-paginated, newest first)', tag: 'operator', auth: 'admin',
    query: operatorSchemas.sagaSearch, success: { 200: { description: 'a page of sagas', schema: operatorResponses.sagaPage } }, errors: ['VALIDATION_FAILED', 'UNAUTHORIZED'],
  },
  {
    method: 'get', path: '/api/admin/sagas/stats', operationId: 'sagaStats', summary: 'Saga counts and stuck sagas', tag: 'operator', auth: 'admin',
    success: { 200: { description: 'the counts', schema: operatorResponses.sagaStats } }, errors: ['UNAUTHORIZED'],
  },
  {
    method: 'get', path: '/api/admin/sagas/:id', operationId: 'getSaga', summary: 'A saga: steps, compensations and timeline', tag: 'operator', auth: 'admin',
    success: { 200: { description: 'the saga', schema: operatorResponses.saga } }, errors: ['UNAUTHORIZED', 'NOT_FOUND'],
  },
  {
    method: 'post', path: '/api/admin/sagas/:id/redrive', operationId: 'redriveSaga', summary: "Publish a COMPENSATING saga's compensation again", tag: 'operator', auth: 'admin',
    success: { 202: { description: 'published again', schema: operatorResponses.sagaRedriven, location: true } }, errors: ['UNAUTHORIZED', 'NOT_FOUND', 'SAGA_NOT_COMPENSATING'],
  },
  {
    method: 'get', path: '/api/admin/dead-letters', operationId: 'listDeadLetters', summary: 'Dead letters (read without consuming)', tag: 'operator', auth: 'admin',
    query: operatorSchemas.deadLetterList, success: { 200: { description: 'the dead letters', schema: operatorResponses.deadLetters } }, errors: ['VALIDATION_FAILED', 'UNAUTHORIZED'],
  },
  {
    method: 'post', path: '/api/admin/dead-letters/redrive', operationId: 'redriveDeadLetters', summary: 'Send dead letters back to their work queue', tag: 'operator', auth: 'admin',
    body: operatorSchemas.deadLetterRedrive, bodyOptional: true,
    success: { 200: { description: 'how many went back, how many were dropped (saga already COMPENSATED)', schema: operatorResponses.deadLetterRedrive } },
    errors: ['VALIDATION_FAILED', 'UNAUTHORIZED'],
  },
  {
    method: 'get', path: '/api/admin/overview', operationId: 'overview', summary: "The console's live counters", tag: 'operator', auth: 'admin',
    success: { 200: { description: 'the counters', schema: operatorResponses.overview } }, errors: ['UNAUTHORIZED'],
  },
  {
    method: 'get', path: '/api/admin/failpoints', operationId: 'listFailpoints', summary: 'The failpoints set (only with ENABLE_FAILPOINTS=1, else 404)', tag: 'admin', auth: 'admin',
    success: { 200: { description: 'name -> setting', schema: operatorResponses.failpoints } }, errors: ['UNAUTHORIZED', 'NOT_FOUND'],
  },
  {
    method: 'put', path: '/api/admin/failpoints/:name', operationId: 'setFailpoint', summary: 'Set a failpoint (only with ENABLE_FAILPOINTS=1, else 404)', tag: 'admin', auth: 'admin',
    body: schemas.failpoint, success: { 200: { description: 'the setting', schema: responses.failpoint } }, errors: ['VALIDATION_FAILED', 'UNAUTHORIZED', 'NOT_FOUND'],
  },
  // --- probes and documents
  {
    method: 'get', path: '/livez', operationId: 'livez', summary: 'Liveness: the process alone', tag: 'ops', auth: 'none', plain: true,
    success: { 200: { description: 'alive', schema: responses.livez } }, errors: [],
  },
  {
    method: 'get', path: '/health', operationId: 'health', summary: 'Readiness: MySQL, Redis and RabbitMQ', tag: 'ops', auth: 'none', plain: true,
    success: { 200: { description: 'every dependency up', schema: responses.health }, 503: { description: 'one is down', schema: responses.health } }, errors: [],
  },
  {
    method: 'get', path: '/metrics', operationId: 'metrics', summary: 'Prometheus metrics', tag: 'ops', auth: 'none', plain: true,
    success: { 200: { description: 'Prometheus text exposition', contentType: 'text/plain' } }, errors: [],
  },
  {
    method: 'get', path: '/openapi.json', operationId: 'openapi', summary: 'This document', tag: 'ops', auth: 'none', plain: true,
    success: { 200: { description: 'OpenAPI 3.1', contentType: 'application/json' } }, errors: [],
  },
  {
    method: 'get', path: '/docs', operationId: 'docs', summary: 'This document, rendered (Swagger UI, served by the service itself)', tag: 'ops', auth: 'none', plain: true,
    success: { 200: { description: 'an HTML page', contentType: 'text/html' } }, errors: [],
  },
];

/** Codes any JSON route may answer: the body parser's refusals, a dependency down, a bug. */
const COMMON_ERRORS: ErrorCode[] = ['BAD_REQUEST', 'MALFORMED_JSON', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'INTERNAL', 'SERVICE_UNAVAILABLE'];
const PLAIN_ERRORS: ErrorCode[] = ['INTERNAL'];

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

/** `/api/orders/:id` -> `/api/orders/{id}` */
export const openApiPath = (expressPath: string) => expressPath.replace(/:(\w+)/g, '{$1}');

const header = (description: string, schema: object = { type: 'string' }, required = false) => ({ description, required, schema });

const STATUS_TEXT: Record<number, string> = {
  400: 'bad request', 401: 'no valid credentials', 402: 'balance too low', 403: 'forbidden', 404: 'not found', 405: 'method not allowed', 408: 'request timeout',
  409: 'conflict', 413: 'body too large', 415: 'unsupported media type', 422: 'unprocessable', 429: 'too many attempts', 431: 'headers too large', 500: 'server error',
  503: 'a dependency is unavailable',
};

function errorResponses(codes: ErrorCode[]) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of new Set(codes)) {
    const status = ERROR_STATUS[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, object> = {};
  for (const [status, list] of [...byStatus].sort(([a], [b]) => a - b)) {
    const headers: Record<string, object> = { 'X-Request-Id': { $ref: '#/components/headers/X-Request-Id' } };
    if (status === 503 || status === 429) headers['Retry-After'] = { $ref: '#/components/headers/Retry-After' };
    out[String(status)] = {
      description: `${STATUS_TEXT[status] ?? 'error'}: ${list.join(', ')}`,
      headers,
      content: { 'application/json': { schema: jsonSchema(errorShape(list), 'output') } },
    };
  }
  return out;
}

function queryParameters(query: z.ZodType) {
  const schema = jsonSchema(query, 'input') as { properties?: Record<string, object>; required?: string[] };
  return Object.entries(schema.properties ?? {}).map(([name, s]) => ({
    name,
    in: 'query',
    required: schema.required?.includes(name) ?? false,
    schema: s,
  }));
}

function buildOperation(op: Operation) {
  const pathParams = [...op.path.matchAll(/:(\w+)/g)].map(([, name]) => ({
    name,
    in: 'path',
    required: true,
    schema: name === 'id' ? { type: 'string', pattern: '^\\d{1,20}$' } : { type: 'string', pattern: '^[\\w.-]{1,128}$' },
  }));
  const parameters: object[] = [...pathParams, ...(op.query ? queryParameters(op.query) : [])];
  if (op.idempotent) parameters.push({ $ref: '#/components/parameters/Idempotency-Key' });
  if (op.signed) {
    parameters.push({
      name: SIGNATURE_HEADER,
      in: 'header',
      required: true,
      description: 'the HMAC-SHA256 of the raw body under PAYMENT_NOTIFY_SECRET (see the README for its format)',
      schema: { type: 'string' },
    });
  }

  const responsesOut: Record<string, object> = {};
  for (const [status, s] of Object.entries(op.success)) {
    const headers: Record<string, object> = {};
    if (!op.plain || op.path === '/health') headers['X-Request-Id'] = { $ref: '#/components/headers/X-Request-Id' };
    if (s.location) headers.Location = { $ref: '#/components/headers/Location' };
    if (op.idempotent) headers['Idempotent-Replayed'] = { $ref: '#/components/headers/Idempotent-Replayed' };
    if (Number(status) === 503) headers['Retry-After'] = { $ref: '#/components/headers/Retry-After' };
    const content = s.schema
      ? { 'application/json': { schema: jsonSchema(s.schema, 'output') } }
      : { [s.contentType ?? 'application/json']: { schema: s.contentType === 'application/json' ? { type: 'object' } : { type: 'string' } } };
    responsesOut[status] = { description: s.description, ...(Object.keys(headers).length ? { headers } : {}), content };
  }
  Object.assign(responsesOut, errorResponses([...op.errors, ...(op.plain ? PLAIN_ERRORS : COMMON_ERRORS)]));

  const body = op.body ?? (op.noBody ? emptyBody : undefined);
  return {
    operationId: op.operationId,
    summary: op.summary,
    ...(op.description ? { description: op.description } : {}),
    tags: [op.tag],
    security: op.auth === 'bearer' ? [{ bearer: [] }] : op.auth === 'admin' ? [{ adminToken: [] }] : [],
    ...(parameters.length ? { parameters } : {}),
    ...(body
      ? { requestBody: { required: !(op.bodyOptional || op.noBody), content: { 'application/json': { schema: jsonSchema(body, 'input') } } } }
      : {}),
    responses: responsesOut,
  };
}

export function buildOpenApiDocument(): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of OPERATIONS) (paths[openApiPath(op.path)] ??= {})[op.method] = buildOperation(op);
  return {
    openapi: '3.1.0',
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    info: {
      title: 'seat-saga',
      version: '0.1.0',
      description:
        'Seat sales under flash-sale load. JSON in and out; money in integer cents; ids are decimal strings. Every error is `{"error": {"code", "message", "details"?}}`. ' +
        'Generated at start from the zod schemas that validate requests.',
    },
    tags: ['users', 'shows', 'orders', 'payments', 'admin', 'operator', 'ops'].map((name) => ({ name })),
    paths,
    components: {
      securitySchemes: {
        bearer: { type: 'http', scheme: 'bearer', description: 'the token returned by POST /api/users' },
        adminToken: { type: 'apiKey', in: 'header', name: 'X-Admin-Token', description: 'the ADMIN_TOKEN of the service' },
      },
      parameters: {
        'Idempotency-Key': {
          name: 'Idempotency-Key',
          in: 'header',
          required: false,
          description: 'a retry with the same key returns the first response; the same key with another body answers 422 IDEMPOTENCY_KEY_REUSED',
          schema: { type: 'string', minLength: 1, maxLength: 128, pattern: '^[\\x21-\\x7e]+$' },
        },
      },
      headers: {
        'X-Request-Id': header('the request id (the one sent, if valid, else a new one); every log line of the request carries it', { type: 'string' }, true),
        'Retry-After': header('seconds to wait before retrying', { type: 'string', pattern: '^\\d+$' }),
        Location: header('the URL of the resource', { type: 'string' }, true),
        'Idempotent-Replayed': header('`true` when this is the stored answer to an earlier request with the same Idempotency-Key', { type: 'string', enum: ['true'] }),
      },
      schemas: {
        Error: jsonSchema(errorShape(ALL_ERROR_CODES), 'output'),
      },
    },
  };
}

let cached: Record<string, unknown> | undefined;
/** The document, built once (at start, from the schemas). */
export function openApiDocument(): Record<string, unknown> {
  return (cached ??= buildOpenApiDocument());
}
