import { expect } from 'chai';
import fc from 'fast-check';
import { z } from 'zod';
import { nestedDeeperThan } from '../../src/api/request';
import { schemas } from '../../src/api/validation';
import { arbitraryFromJsonSchema, encodeBody, mutatedBody, nestedJson, unicodeString, type JsonSchema } from '../support/arbitraries';

const SEED = 424242;
const sample = <T>(arb: fc.Arbitrary<T>, numRuns = 300) => fc.sample(arb, { seed: SEED, numRuns });
const digits = fc.stringMatching(/^[1-9]\d{0,18}$/);

describe('Arbitraries drawn from JSON Schema (test support)', () => {
  it('When a schema sets bounds, then every value drawn keeps them', () => {
    const schema: JsonSchema = {
      type: 'object',
      properties: {
        n: { type: 'integer', minimum: -3, maximum: 7 },
        s: { type: 'string', minLength: 2, maxLength: 5 },
        e: { type: 'string', enum: ['a', 'b'] },
        list: { type: 'array', items: { type: 'integer', minimum: 0, maximum: 3 }, minItems: 1, maxItems: 3, uniqueItems: true },
        maybe: { type: 'boolean' },
      },
      required: ['n', 's', 'e', 'list'],
      additionalProperties: false,
    };
    for (const value of sample(arbitraryFromJsonSchema(schema)) as Array<Record<string, any>>) {
      expect(Object.keys(value).every((k) => k in schema.properties!)).to.equal(true);
      expect(value.n).to.be.within(-3, 7);
      expect(Number.isInteger(value.n)).to.equal(true);
      expect(value.s.length).to.be.within(2, 5);
      expect(value.e).to.be.oneOf(['a', 'b']);
      expect(value.list.length).to.be.within(1, 3);
      expect(new Set(value.list).size).to.equal(value.list.length);
      if ('maybe' in value) expect(value.maybe).to.be.a('boolean');
    }
  });

  it('When a string is drawn, then its UTF-16 length (what zod counts) is within bounds, astral planes included', () => {
    const values = sample(unicodeString(1, 4), 1000);
    expect(values.every((s) => s.length >= 1 && s.length <= 4)).to.equal(true);
    expect(
      values.some((s) => /[\uD800-\uDBFF][\uDC00-\uDFFF]/.test(s)),
      'some astral code point',
    ).to.equal(true);
  });

  it("When drawn from the request schemas' own JSON Schema (z.toJSONSchema), then zod accepts them but for what JSON Schema cannot say (refinements, trims)", () => {
    const ids = { showId: digits, 'seatIds[]': digits };
    const twice = (v: { seatIds?: string[] }) => v.seatIds !== undefined && new Set(v.seatIds).size !== v.seatIds.length;
    const cases: Array<[z.ZodType, Record<string, fc.Arbitrary<unknown>>, (v: any) => boolean]> = [
      [schemas.createUser, {}, (v) => v.name.trim() === ''],
      [schemas.credit, {}, (v) => v.amountCents === 0], // refine: positive
      [
        schemas.createShow,
        { rows: fc.integer({ min: 1, max: 10 }), seatsPerRow: fc.integer({ min: 1, max: 10 }) },
        (v) => v.title.trim() === '' || !(Date.parse(v.startsAt) >= 0 && Date.parse(v.startsAt) < Date.UTC(10000, 0, 1)),
      ], // refine: 1970..9999
      [schemas.createOrder, ids, twice], // refine: no seat twice
      [schemas.createAsyncOrder, ids, twice],
      [schemas.pay, {}, () => false],
      [schemas.failpoint, {}, () => false],
    ];
    for (const [schema, overrides, trimmedAway] of cases) {
      for (const value of sample(arbitraryFromJsonSchema(z.toJSONSchema(schema) as JsonSchema, { overrides }), 200)) {
        const result = schema.safeParse(value);
        expect(result.success || trimmedAway(value), `${JSON.stringify(value)}: ${result.error?.message}`).to.equal(true);
      }
    }
  });

  it('When a body is mutated, then the bytes cover valid JSON, broken JSON, deep nesting and oversize', () => {
    const bodies = sample(mutatedBody(arbitraryFromJsonSchema(z.toJSONSchema(schemas.pay) as JsonSchema)), 2000).map((b) => b.toString('utf8'));
    const parsed = bodies.map((text) => {
      try {
        return { ok: true, value: JSON.parse(text) as unknown };
      } catch {
        return { ok: false, value: undefined };
      }
    });
    expect(
      parsed.some((p) => p.ok && schemas.pay.safeParse(p.value).success),
      'some valid',
    ).to.equal(true);
    expect(
      parsed.some((p) => !p.ok),
      'some not JSON',
    ).to.equal(true);
    expect(
      parsed.some((p) => p.ok && nestedDeeperThan(p.value, 32)),
      'some too deep',
    ).to.equal(true);
    expect(
      bodies.some((text) => text.length > 64 * 1024),
      'some over 64 KiB',
    ).to.equal(true);
  });

  it('When JSON is nested n levels, then the depth check counts n', () => {
    for (const kind of ['array', 'object'] as const) {
      expect(nestedDeeperThan(JSON.parse(nestedJson(32, kind)), 32)).to.equal(false);
      expect(nestedDeeperThan(JSON.parse(nestedJson(33, kind)), 32)).to.equal(true);
      expect(nestedDeeperThan(JSON.parse(nestedJson(30_000, kind)), 32)).to.equal(true);
    }
    expect(nestedDeeperThan({ a: [1, { b: 'x' }], c: null }, 3)).to.equal(false);
    expect(nestedDeeperThan({ a: [1, { b: [] }] }, 3)).to.equal(true);
  });

  it('When a body is encoded, then a truthful encoding round-trips and a lying one does not', () => {
    const body = Buffer.from('{"a":1}');
    expect(encodeBody(body, 'none')).to.deep.equal({ bytes: body });
    expect(encodeBody(body, 'gzip').bytes.subarray(0, 2)).to.deep.equal(Buffer.from([0x1f, 0x8b]));
    expect(encodeBody(body, 'gzip-lying')).to.deep.equal({ header: 'gzip', bytes: body });
  });
});
