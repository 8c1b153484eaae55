import { randomUUID } from 'node:crypto';
import express, { type RequestHandler } from 'express';
import { AppError } from '../errors';

/** Every JSON body the API reads, at most (express.json, the payment callback, the sold-out fast path). */
export const BODY_LIMIT_BYTES = 64 * 1024;

/**
 * JSON nested deeper than this is refused (400) before anything else reads it: 64 KiB hold 32,768
 * levels of `[`, and JSON.stringify (the idempotency hash) and zod recurse.
 */
export const JSON_MAX_DEPTH = 32;

/** The client's X-Request-Id when it is a sane one, else a new id. */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && /^[\w.:-]{1,128}$/.test(header) ? header : randomUUID();
}

/** True when objects and arrays in `value` nest more than `maxDepth` levels (walked without recursion). */
export function nestedDeeperThan(value: unknown, maxDepth: number): boolean {
  const pending: Array<[unknown, number]> = [[value, 1]];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const [item, depth] = next;
    if (typeof item !== 'object' || item === null) continue;
    if (depth > maxDepth) return true;
    for (const child of Object.values(item)) if (typeof child === 'object' && child !== null) pending.push([child, depth + 1]);
  }
  return false;
}

export const jsonTooDeep = () => new AppError('MALFORMED_JSON', `the body is nested deeper than ${JSON_MAX_DEPTH} levels`, { maxDepth: JSON_MAX_DEPTH });

/** The JSON body parser of every JSON route: at most 64 KiB, an object or array, at most 32 levels deep. */
export function jsonBody(): RequestHandler[] {
  const refuseDeepJson: RequestHandler = (req, _res, next) => next(nestedDeeperThan(req.body, JSON_MAX_DEPTH) ? jsonTooDeep() : undefined);
  return [express.json({ limit: BODY_LIMIT_BYTES, strict: true }), refuseDeepJson];
}
