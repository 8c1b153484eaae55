import { ALL_ERROR_CODES, errorShape } from './responses';
import { buildOperation, header, jsonSchema, openApiPath } from './openapi/build';
import type { Operation } from './openapi/operation';
import { OPERATOR_OPERATIONS } from './openapi/operator';
import { ORDER_OPERATIONS } from './openapi/orders';
import { PAYMENT_OPERATIONS } from './openapi/payments';
import { PROBE_OPERATIONS } from './openapi/probes';
import { SHOW_OPERATIONS } from './openapi/shows';
import { USER_OPERATIONS } from './openapi/users';

/**
 * The OpenAPI 3.1 description of every route, served at /openapi.json. Request bodies and query
 * parameters are the very zod schemas that validate requests (`schemas`, `operatorSchemas`),
 * turned into JSON Schema 2020-12 by zod 4's own `z.toJSONSchema` on their input side (what a
 * client may send); success bodies come from ./responses. zod-to-openapi was not needed: OpenAPI
 * 3.1 schemas are JSON Schema 2020-12, which zod 4 emits itself, so nothing else has to agree
 * with the validators.
 */

export { openApiPath };

/** Every route, in the order of the document's paths. */
export const OPERATIONS: Operation[] = [
  ...USER_OPERATIONS,
  ...SHOW_OPERATIONS,
  ...ORDER_OPERATIONS,
  ...PAYMENT_OPERATIONS,
  ...OPERATOR_OPERATIONS,
  ...PROBE_OPERATIONS,
];

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
        'Idempotent-Replayed': header('`true` when this is the stored answer to an earlier request with the same Idempotency-Key', {
          type: 'string',
          enum: ['true'],
        }),
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
