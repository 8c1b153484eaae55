import { brotliCompressSync, deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';

/**
 * fast-check arbitraries for property tests of the HTTP API: values drawn from a JSON Schema (as
 * zod 4's `z.toJSONSchema` writes it for the request schemas), then the hostile variants a client
 * may send instead (wrong types, sizes, unicode, huge numbers, unknown fields, broken JSON, deep
 * nesting, lying encodings). Pure: nothing here talks to the service.
 */

/** The part of JSON Schema (2020-12) that `z.toJSONSchema` writes for our request schemas. */
export interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  uniqueItems?: boolean;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  enum?: unknown[];
  const?: unknown;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
}

export interface FromSchemaOptions {
  /**
   * Arbitraries that stand in for the schema's own at a path, for what JSON Schema cannot say
   * (zod refinements such as "an id is a string of digits"): `showId`, `seatIds[]`, `a.b`...
   */
  overrides?: Record<string, fc.Arbitrary<unknown>>;
  /** The longest string or array drawn where the schema sets no maximum. */
  defaultMaxLength?: number;
}

/** A code point of any plane (no lone surrogate): ASCII most of the time, so lengths stay near their bounds. */
const anyCodePoint = fc.oneof(
  { weight: 3, arbitrary: fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
);

/** A string whose length in UTF-16 units (what zod and JavaScript count) lies in [min, max]. */
export function unicodeString(minLength = 0, maxLength = 20): fc.Arbitrary<string> {
  return fc
    .string({ unit: anyCodePoint, minLength, maxLength })
    .map((s) => (s.length > maxLength ? [...s].reduce((kept, ch) => (kept.length + ch.length <= maxLength ? kept + ch : kept), '') : s))
    .filter((s) => s.length >= minLength && s.length <= maxLength);
}

/** Valid date-times at the edges: of years 0000 and 9999 (an offset can carry them past), of 1970 and of 2^31 seconds. */
const DATE_TIME_EDGES = [
  '0000-01-01T00:00:00Z',
  '0000-01-01T00:00:00+23:59',
  '1969-12-31T23:59:59.999Z',
  '1970-01-01T00:00:00Z',
  '2038-01-19T03:14:08Z',
  '9999-12-31T23:59:59.999Z',
  '9999-12-31T23:59:59-23:59',
  '2028-02-29T12:00:00.123456789+05:30',
];

/** Values valid for `schema` (for the keywords above). */
export function arbitraryFromJsonSchema(schema: JsonSchema, options: FromSchemaOptions = {}, path = ''): fc.Arbitrary<unknown> {
  const override = options.overrides?.[path];
  if (override) return override;
  const maxDefault = options.defaultMaxLength ?? 20;
  if ('const' in schema) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const alternatives = schema.anyOf ?? schema.oneOf;
  if (alternatives) return fc.oneof(...alternatives.map((s) => arbitraryFromJsonSchema(s, options, path)));
  if (schema.allOf?.length === 1) return arbitraryFromJsonSchema(schema.allOf[0], options, path);
  if (Array.isArray(schema.type)) {
    return fc.oneof(...schema.type.map((type) => arbitraryFromJsonSchema({ ...schema, type }, options, path)));
  }
  switch (schema.type) {
    case 'null':
      return fc.constant(null);
    case 'boolean':
      return fc.boolean();
    case 'integer': {
      const min = Math.max(
        schema.minimum ?? Number.MIN_SAFE_INTEGER,
        schema.exclusiveMinimum === undefined ? -Infinity : Math.floor(schema.exclusiveMinimum) + 1,
      );
      const max = Math.min(
        schema.maximum ?? Number.MAX_SAFE_INTEGER,
        schema.exclusiveMaximum === undefined ? Infinity : Math.ceil(schema.exclusiveMaximum) - 1,
      );
      return fc.integer({ min, max });
    }
    case 'number':
      return fc.double({
        min: schema.minimum ?? schema.exclusiveMinimum ?? -1e15,
        max: schema.maximum ?? schema.exclusiveMaximum ?? 1e15,
        minExcluded: schema.exclusiveMinimum !== undefined,
        maxExcluded: schema.exclusiveMaximum !== undefined,
        noNaN: true,
        noDefaultInfinity: true,
      });
    case 'string':
      if (schema.format === 'date-time') {
        return fc.oneof(
          {
            weight: 3,
            arbitrary: fc
              .date({ min: new Date('0000-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59.999Z'), noInvalidDate: true })
              .map((d) => d.toISOString()),
          },
          { weight: 2, arbitrary: schema.pattern ? fc.stringMatching(new RegExp(schema.pattern)) : fc.constant('2026-12-31T20:00:00Z') },
          { weight: 2, arbitrary: fc.constantFrom(...DATE_TIME_EDGES) },
        );
      }
      if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern));
      return unicodeString(schema.minLength ?? 0, schema.maxLength ?? Math.max(maxDefault, schema.minLength ?? 0));
    case 'array': {
      const items = arbitraryFromJsonSchema(schema.items ?? {}, options, `${path}[]`);
      const constraints = { minLength: schema.minItems ?? 0, maxLength: schema.maxItems ?? Math.max(maxDefault, schema.minItems ?? 0) };
      return schema.uniqueItems ? fc.uniqueArray(items, { ...constraints, selector: (v) => JSON.stringify(v) }) : fc.array(items, constraints);
    }
    case 'object': {
      const properties = schema.properties ?? {};
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [key, property] of Object.entries(properties)) record[key] = arbitraryFromJsonSchema(property, options, path ? `${path}.${key}` : key);
      const requiredKeys = (schema.required ?? []).filter((key) => key in properties);
      const known = fc.record(record, { requiredKeys });
      if (schema.additionalProperties === false || Object.keys(properties).length > 0) return known;
      return fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 });
    }
    default:
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/** Numbers a parser or a database column may choke on. */
export const awkwardNumber: fc.Arbitrary<number> = fc.oneof(
  fc.constantFrom(
    0,
    -0,
    -1,
    0.5,
    1e-7,
    2 ** 31,
    2 ** 32,
    2 ** 53,
    2 ** 53 + 2,
    2 ** 63,
    2 ** 64,
    1e21,
    -1e21,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
    Number.MIN_VALUE,
  ),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
);

/** Strings of every shape: unicode (astral planes, NUL, RTL, combining), digits, huge, empty. */
export const awkwardString: fc.Arbitrary<string> = fc.oneof(
  unicodeString(0, 40),
  fc.string({ unit: 'grapheme-composite', maxLength: 10 }),
  fc.constantFrom(
    '',
    ' ',
    '\u0000',
    '\uFEFF',
    '\u202E',
    '\uD800',
    '\uDFFF',
    'e\u0301',
    '😀'.repeat(60),
    '0',
    '-1',
    '1e3',
    '18446744073709551616',
    '9'.repeat(30),
    '00012',
    ' 12 ',
  ),
  fc.stringMatching(/^[1-9]\d{0,19}$/),
  fc.integer({ min: 200, max: 70_000 }).map((n) => 'x'.repeat(n)),
);

/** Any JSON value, shallow, built from the awkward leaves. */
export const awkwardJsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    awkwardNumber,
    awkwardString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      awkwardString.filter((s) => s.length < 50),
      tie('value'),
      { maxKeys: 4 },
    ),
  ),
})).value;

/** JSON text nested `levels` deep: `[[[...]]]` or `{"a":{"a":...}}`. */
export function nestedJson(levels: number, kind: 'array' | 'object' = 'array'): string {
  return kind === 'array' ? '['.repeat(levels) + ']'.repeat(levels) : '{"a":'.repeat(levels - 1) + '{}' + '}'.repeat(levels - 1);
}

/**
 * The raw bytes of a body a client might send instead of `valid`: itself, or a field dropped,
 * added or of the wrong type, another JSON value altogether, or bytes that are not (quite) JSON.
 */
export function mutatedBody(valid: fc.Arbitrary<unknown>): fc.Arbitrary<Buffer> {
  const asObject = (v: unknown): Record<string, unknown> => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : {});
  const text = fc.oneof(
    { weight: 14, arbitrary: valid.map((v) => JSON.stringify(v)) },
    // a field dropped
    {
      weight: 2,
      arbitrary: fc.tuple(valid, fc.nat()).map(([v, n]) => {
        const o = { ...asObject(v) };
        const keys = Object.keys(o);
        if (keys.length) delete o[keys[n % keys.length]];
        return JSON.stringify(o);
      }),
    },
    // a field of the wrong type, size or value
    {
      weight: 4,
      arbitrary: fc.tuple(valid, fc.nat(), awkwardJsonValue).map(([v, n, bad]) => {
        const o = { ...asObject(v) };
        const keys = Object.keys(o);
        if (keys.length) o[keys[n % keys.length]] = bad;
        return JSON.stringify(o);
      }),
    },
    // an unknown field
    {
      weight: 2,
      arbitrary: fc
        .tuple(
          valid,
          awkwardString.filter((s) => s.length < 50),
          awkwardJsonValue,
        )
        .map(([v, key, bad]) => JSON.stringify({ ...asObject(v), [key]: bad })),
    },
    // a number JSON.stringify cannot write: overflow, or more digits than a double holds
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, fc.nat(), fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '1.0', '1E2', '-0', '0.0000001'))
        .map(([v, n, literal]) => {
          const o = asObject(v);
          const keys = Object.keys(o);
          const key = keys[n % Math.max(keys.length, 1)] ?? 'x';
          return JSON.stringify({ ...o, [key]: 0 }).replace(`${JSON.stringify(key)}:0`, `${JSON.stringify(key)}:${literal}`);
        }),
    },
    // a key twice
    {
      weight: 1,
      arbitrary: valid.map((v) => {
        const json = JSON.stringify(v);
        const first = Object.entries(asObject(v))[0];
        return first && json.startsWith('{') ? `{${JSON.stringify(first[0])}:null,${json.slice(1)}` : json;
      }),
    },
    // another JSON value altogether
    { weight: 2, arbitrary: awkwardJsonValue.map((v) => JSON.stringify(v) ?? 'null') },
    // not (quite) JSON
    {
      weight: 2,
      arbitrary: fc.tuple(valid, fc.nat()).map(([v, n]) => {
        const json = JSON.stringify(v);
        return json.slice(0, n % Math.max(json.length, 1));
      }),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '',
        ' ',
        'null',
        '"a"',
        '1',
        'true',
        '{',
        '}',
        '[',
        '{"a":1,}',
        "{'a':1}",
        'name=a&payPassword=b',
        '\uFEFF{}',
        '{"a":"\\ud800"}',
        '{"a":"\\u0000"}',
        '{"__proto__":{"x":1}}',
        '{"constructor":{"prototype":{}}}',
      ),
    },
    // nested deeper than 32 levels, or just within
    {
      weight: 2,
      arbitrary: fc
        .tuple(fc.constantFrom(31, 32, 33, 40, 1000, 20_000), fc.constantFrom<'array' | 'object'>('array', 'object'))
        .map(([levels, kind]) => nestedJson(levels, kind)),
    },
    // over 64 KiB
    { weight: 1, arbitrary: fc.integer({ min: 64 * 1024 - 64, max: 80 * 1024 }).map((n) => JSON.stringify({ name: 'x'.repeat(n), payPassword: 'secret123' })) },
  );
  return fc.oneof(
    { weight: 12, arbitrary: text.map((t) => Buffer.from(t, 'utf8')) },
    // bytes that are not UTF-8 inside a JSON string
    {
      weight: 1,
      arbitrary: fc
        .uint8Array({ minLength: 1, maxLength: 16 })
        .map((bytes) => Buffer.concat([Buffer.from('{"name":"'), Buffer.from(bytes), Buffer.from('","payPassword":"secret123"}')])),
    },
  );
}

export type ContentEncoding = 'none' | 'identity' | 'gzip' | 'deflate' | 'br' | 'gzip-lying' | 'deflate-lying' | 'unknown' | 'twice';

/** How the body travels: its Content-Encoding header and bytes, truthful or not. */
export const contentEncoding: fc.Arbitrary<ContentEncoding> = fc.oneof(
  { weight: 16, arbitrary: fc.constant('none' as const) },
  { weight: 3, arbitrary: fc.constantFrom<ContentEncoding>('identity', 'gzip', 'deflate', 'br', 'gzip-lying', 'deflate-lying', 'unknown', 'twice') },
);

export function encodeBody(body: Buffer, encoding: ContentEncoding): { header?: string; bytes: Buffer } {
  switch (encoding) {
    case 'none':
      return { bytes: body };
    case 'identity':
      return { header: 'identity', bytes: body };
    case 'gzip':
      return { header: 'gzip', bytes: gzipSync(body) };
    case 'deflate':
      return { header: 'deflate', bytes: deflateSync(body) };
    case 'br':
      return { header: 'br', bytes: brotliCompressSync(body) };
    case 'gzip-lying':
      return { header: 'gzip', bytes: body };
    case 'deflate-lying':
      return { header: 'deflate', bytes: Buffer.concat([Buffer.from([0x78, 0x9c]), body]) };
    case 'unknown':
      return { header: 'x-squash', bytes: body };
    case 'twice':
      return { header: 'gzip, gzip', bytes: gzipSync(gzipSync(body)) };
  }
}

/** Content-Type values: the right one most of the time, else a wrong type or charset, or none. */
export const contentType: fc.Arbitrary<string | undefined> = fc.oneof(
  { weight: 16, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      undefined,
      'application/json; charset=utf-8',
      'application/json; charset=UTF-16',
      'application/json; charset=latin1',
      'application/json; charset=x-nope',
      'application/merge-patch+json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      'json',
      ';;;',
    ),
  },
);

/** Path segments that are not ids: escapes that do not decode, unicode, traversal, huge numbers... */
export const awkwardPathSegment: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '%',
    '%zz',
    '%E0%A4%A',
    '%C0%AF',
    '%FF',
    '%00',
    '%2F',
    '..',
    '.',
    '%2e%2e',
    '0',
    '-1',
    '1e3',
    '01',
    '18446744073709551616',
    '9'.repeat(25),
    'me',
    'async',
    '%20',
    '%F0%9F%98%80',
    'x'.repeat(300),
  ),
  awkwardString.filter((s) => s.length < 100).map((s) => encodeURIComponent(s.replace(/[\uD800-\uDFFF]/g, ''))),
  fc.stringMatching(/^[1-9]\d{0,19}$/),
);

/** Header values Node's client can send (visible Latin-1): the contract's forms and broken ones. */
export const headerValue: fc.Arbitrary<string> = fc.oneof(
  fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 }),
  fc.string({ unit: fc.integer({ min: 0xa0, max: 0xff }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 4 }),
  fc.integer({ min: 120, max: 300 }).map((n) => 'k'.repeat(n)),
);
