import { randomUUID } from 'node:crypto';

/** Every JSON body the API reads, at most (express.json, the payment callback, the sold-out fast path). */
export const BODY_LIMIT_BYTES = 64 * 1024;

/** The client's X-Request-Id when it is a sane one, else a new id. */
export function requestIdOf(header: string | string[] | undefined): string {
  return typeof header === 'string' && /^[\w.:-]{1,128}$/.test(header) ? header : randomUUID();
}
