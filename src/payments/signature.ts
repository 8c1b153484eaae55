import { createHmac, timingSafeEqual } from 'node:crypto';
import { AppError } from '../errors';

/** `X-Payment-Signature: sha256=<lowercase hex HMAC-SHA256(PAYMENT_NOTIFY_SECRET, raw body)>`. */
export const SIGNATURE_HEADER = 'X-Payment-Signature';
/** paidAt (inside the signed body) further than this from now is refused: replays die out. */
export const FRESHNESS_MS = 5 * 60 * 1000;

/** Checks the provider's signature over the raw bytes (constant-time); INVALID_SIGNATURE otherwise. */
export function verifySignature(rawBody: Buffer, header: string | undefined, secret: string): void {
  const given = /^sha256=([0-9a-f]{64})$/.exec(header?.trim() ?? '');
  const expected = createHmac('sha256', secret).update(rawBody).digest();
  if (!given || !timingSafeEqual(Buffer.from(given[1], 'hex'), expected)) {
    throw new AppError('INVALID_SIGNATURE', `missing or wrong ${SIGNATURE_HEADER} header: expected sha256=<hex HMAC-SHA256 of the raw body>`);
  }
}

/** A new notification's paidAt must be within FRESHNESS_MS of now; STALE_NOTIFICATION otherwise. */
export function checkFreshness(paidAt: string, nowMs: number): void {
  const ageMs = nowMs - Date.parse(paidAt);
  if (Math.abs(ageMs) > FRESHNESS_MS) {
    throw new AppError('STALE_NOTIFICATION', `paidAt ${paidAt} is more than ${FRESHNESS_MS / 60_000} minutes from now`, { paidAt });
  }
}
