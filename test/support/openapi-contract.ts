import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { buildOpenApiDocument } from '../../src/api/openapi';

/**
 * Every answer the e2e suite receives through `Api.request` is checked here against the
 * service's OpenAPI document (the same one /openapi.json serves, built from the same modules):
 * its status must be one the operation documents, its JSON body must match that response's
 * schema (JSON Schema 2020-12, with ajv), and the headers it declares required must be there.
 * A request no operation covers (an unknown path, a wrong method) must still answer the error
 * shape. Violations are collected and fail the run at the end (see `after` in ./http.ts).
 */

interface ResponseObject {
  headers?: Record<string, { $ref?: string; required?: boolean }>;
  content?: Record<string, { schema?: object }>;
}

interface Operation {
  method: string;
  template: string;
  pattern: RegExp;
  literalSegments: number;
  responses: Record<string, ResponseObject>;
}

const doc = buildOpenApiDocument() as {
  paths: Record<string, Record<string, { responses: Record<string, ResponseObject> }>>;
  components: { headers: Record<string, { required?: boolean }>; schemas: Record<string, object> };
};
const ajv = new Ajv2020({ strict: false, allErrors: true });
addFormats(ajv);

const operations: Operation[] = Object.entries(doc.paths)
  .flatMap(([template, methods]) =>
    Object.entries(methods).map(([method, op]) => ({
      method: method.toUpperCase(),
      template,
      pattern: new RegExp(`^${template.replace(/\{\w+\}/g, '[^/]+')}/?$`),
      literalSegments: template.split('/').filter((s) => s && !s.startsWith('{')).length,
      responses: op.responses,
    })),
  )
  // A literal segment wins over a parameter: /api/orders/async before /api/orders/{id}.
  .sort((a, b) => b.literalSegments - a.literalSegments);

const validators = new Map<object, ValidateFunction>();
const validatorOf = (schema: object) => {
  let v = validators.get(schema);
  if (!v) validators.set(schema, (v = ajv.compile(schema)));
  return v;
};
const errorValidator = validatorOf(doc.components.schemas.Error);

export interface Violation {
  method: string;
  path: string;
  status: number;
  problem: string;
}

/** (method, template, status) answers that were checked at least once. */
const seen = new Set<string>();

export const contract = { validated: 0, skipped: 0, violations: [] as Violation[] };

/** Files and pages, not JSON answers: not checked. */
const STATIC = /^\/(console|docs)(\/|$)/;

export function checkResponse(method: string, url: string, status: number, headers: Headers, text: string, body: unknown): void {
  const path = new URL(url, 'http://x').pathname;
  method = method.toUpperCase();
  const isJson = (headers.get('content-type') ?? '').startsWith('application/json');
  if (method === 'HEAD' || method === 'OPTIONS' || STATIC.test(path)) {
    contract.skipped++;
    return;
  }
  const fail = (problem: string): void => void contract.violations.push({ method, path, status, problem });
  const op = operations.find((o) => o.method === method && o.pattern.test(path));
  if (!op) {
    // No operation: an unknown route (404) or a wrong method (405), in the error shape.
    if (status < 400) return fail('answered a success on a route the document does not describe');
    if (!isJson) return fail(`not JSON (${headers.get('content-type')})`);
    contract.validated++;
    if (!errorValidator(body)) fail(`error shape: ${ajv.errorsText(errorValidator.errors)}`);
    return;
  }
  const response = op.responses[String(status)];
  if (!response) return fail(`status ${status} is not documented for ${op.method} ${op.template} (documented: ${Object.keys(op.responses).join(', ')})`);
  const jsonSchema = response.content?.['application/json']?.schema;
  const mediaTypes = Object.keys(response.content ?? {});
  if (!mediaTypes.includes('application/json')) {
    contract.skipped++; // /metrics text
    return;
  }
  contract.validated++;
  seen.add(`${op.method} ${op.template} ${status}`);
  if (!isJson) return fail(`documented as JSON, answered ${headers.get('content-type')}: ${text.slice(0, 100)}`);
  if (jsonSchema) {
    const validate = validatorOf(jsonSchema);
    if (!validate(body)) fail(`${op.method} ${op.template} ${status}: ${ajv.errorsText(validate.errors)}; body ${JSON.stringify(body).slice(0, 300)}`);
  }
  for (const [name, ref] of Object.entries(response.headers ?? {})) {
    const declared = ref.$ref ? doc.components.headers[ref.$ref.split('/').pop() as string] : ref;
    if ((ref.required || declared?.required) && !headers.has(name)) fail(`${op.method} ${op.template} ${status}: header ${name} missing`);
  }
}

export function contractReport(): string {
  const successes = operations.flatMap((o) =>
    Object.keys(o.responses)
      .filter((s) => Number(s) < 300)
      .map((s) => `${o.method} ${o.template} ${s}`),
  );
  const unseen = successes.filter((s) => !seen.has(s));
  return (
    `${contract.validated} responses validated against /openapi.json (${contract.skipped} not JSON, skipped); ` +
    `${successes.length - unseen.length} of ${successes.length} documented success answers seen` +
    (unseen.length && unseen.length < 15 ? ` (not seen: ${unseen.join(', ')})` : '')
  );
}
