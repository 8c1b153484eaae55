import type { Request, RequestHandler } from 'express';
import { z } from 'zod';
import { AppError } from '../errors';
import { isIdString } from '../support/ids';
import { cents, idString } from '../support/schemas';

export { cents, idString, parse } from '../support/schemas';

const seatList = z
  .array(idString)
  .min(1, 'must name at least one seat')
  .max(50, 'at most 50 seats per order')
  .refine((ids) => new Set(ids).size === ids.length, 'must not name a seat twice');

const EARLIEST_SHOW_MS = Date.parse('1970-01-01T00:00:00Z');
const LATEST_SHOW_MS = Date.parse('9999-12-31T23:59:59.999Z');

export const schemas = {
  createUser: z.strictObject({
    name: z.string().trim().min(1).max(100),
    payPassword: z.string().min(6, 'must be at least 6 characters').max(128),
  }),
  credit: z.strictObject({
    amountCents: cents(1_000_000_000_00).refine((n) => n > 0, 'must be positive'),
  }),
  createShow: z
    .strictObject({
      title: z.string().trim().min(1).max(200),
      startsAt: z.iso
        .datetime({ offset: true, message: 'must be an ISO 8601 date-time, e.g. 2026-12-31T20:00:00Z' })
        // An offset moves 9999-12-31T23:59:59-23:59 into year 10000, which no DATETIME holds.
        .refine((s) => Date.parse(s) >= EARLIEST_SHOW_MS && Date.parse(s) <= LATEST_SHOW_MS, 'must be between 1970-01-01 and 9999-12-31 (UTC)'),
      priceCents: cents(100_000_000),
      rows: z.number().int().min(1).max(1000),
      seatsPerRow: z.number().int().min(1).max(1000),
    })
    .refine((show) => show.rows * show.seatsPerRow <= 100_000, { message: 'a show has at most 100000 seats', path: ['rows'] }),
  createOrder: z.strictObject({ showId: idString, seatIds: seatList }),
  // Either the seats, or how many (the best free ones are picked).
  createAsyncOrder: z.union([
    z.strictObject({ showId: idString, seatIds: seatList }),
    z.strictObject({
      showId: idString,
      quantity: z.number().int('must be a whole number').min(1, 'must be at least 1').max(50, 'at most 50 seats per order'),
    }),
  ]),
  pay: z.strictObject({
    payPassword: z.string().min(1, 'is required').max(128),
  }),
  failpoint: z.strictObject({
    action: z.enum(['throw', 'off', 'delay', 'crash']),
    ms: z.number().int().min(0).max(600_000).optional(),
    count: z.number().int().min(1).optional(),
  }),
};

/** `?waitMs=N`: absent is 0; otherwise a whole number of milliseconds up to 10000. */
export function parseWaitMs(value: unknown): number {
  if (value === undefined) return 0;
  if (typeof value !== 'string' || !/^\d{1,5}$/.test(value) || Number(value) > 10_000) {
    throw new AppError('VALIDATION_FAILED', 'waitMs must be a whole number of milliseconds from 0 to 10000', {
      issues: [{ field: 'waitMs', message: 'must be 0..10000' }],
    });
  }
  return Number(value);
}

/** For routes that take no body: nothing, or an empty JSON object. */
export function expectNoBody(input: unknown): void {
  if (input === undefined || (typeof input === 'object' && input !== null && !Array.isArray(input) && Object.keys(input).length === 0)) return;
  throw new AppError('VALIDATION_FAILED', 'this request takes no body (or an empty JSON object)');
}

/** A path id that is not an id string cannot name anything: 404. */
export function pathId(value: string | string[] | undefined, what: string): string {
  if (typeof value !== 'string' || !isIdString(value)) throw new AppError('NOT_FOUND', `${what} not found`);
  return value;
}

/**
 * A route's input (path ids and body), read by `read` before anything else acts on the request
 * (an idempotency claim included), so that bad input is refused having written nothing. The
 * handler takes the parsed input back with `.of(req)`.
 */
export function routeInput<T>(read: (req: Request) => T): RequestHandler & { of(req: Request): T } {
  const inputs = new WeakMap<Request, T>();
  const readInput: RequestHandler = (req, _res, next) => {
    inputs.set(req, read(req));
    next();
  };
  return Object.assign(readInput, { of: (req: Request) => inputs.get(req) as T });
}
