import { z } from 'zod';
import { ERROR_STATUS, type ErrorCode } from '../../errors';
import { SIGNATURE_HEADER } from '../../payments/signature';
import { errorShape } from '../responses';
import type { Operation } from './operation';

/**
 * An Operation as OpenAPI writes it: path, query and header parameters, the request body, the
 * success answers and, grouped by status, the error codes it may answer (its own and the common
 * ones), every schema as JSON Schema 2020-12 from zod.
 */

/** A route without a body takes nothing, or `{}`. */
const emptyBody = z.strictObject({});

/** Codes any JSON route may answer: the body parser's refusals, a dependency down, a bug. */
const COMMON_ERRORS: ErrorCode[] = ['BAD_REQUEST', 'MALFORMED_JSON', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE', 'INTERNAL', 'SERVICE_UNAVAILABLE'];
const PLAIN_ERRORS: ErrorCode[] = ['INTERNAL'];

export const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(schema, { io, target: 'draft-2020-12', unrepresentable: 'any' }) as Record<string, unknown>;
  return rest;
};

/** `/api/orders/:id` -> `/api/orders/{id}` */
export const openApiPath = (expressPath: string) => expressPath.replace(/:(\w+)/g, '{$1}');

export const header = (description: string, schema: object = { type: 'string' }, required = false) => ({ description, required, schema });

const STATUS_TEXT: Record<number, string> = {
  400: 'bad request',
  401: 'no valid credentials',
  402: 'balance too low',
  403: 'forbidden',
  404: 'not found',
  405: 'method not allowed',
  408: 'request timeout',
  409: 'conflict',
  413: 'body too large',
  415: 'unsupported media type',
  422: 'unprocessable',
  429: 'too many attempts',
  431: 'headers too large',
  500: 'server error',
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

export function buildOperation(op: Operation) {
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
    ...(body ? { requestBody: { required: !(op.bodyOptional || op.noBody), content: { 'application/json': { schema: jsonSchema(body, 'input') } } } } : {}),
    responses: responsesOut,
  };
}
