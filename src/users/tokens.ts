import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Db } from '../db/database';

const VERIFIED_CACHE_SIZE = 100_000;

/**
 * Bearer tokens are `v1.<userId>.<HMAC-SHA256(secret, "v1.<userId>")>`: verified with the secret
 * alone, no database round trip. The secret is AUTH_SECRET, or one generated once and kept in the
 * database so that every process sharing the database accepts the same tokens.
 */
export class TokenSigner {
  /** Tokens already verified (token -> user id): a flash sale's buyers send theirs again and again. */
  private readonly verified = new Map<string, string>();

  constructor(private readonly secret: Buffer) {}

  issue(userId: string): string {
    return `v1.${userId}.${this.sign(userId)}`;
  }

  /** The user id the token was issued for, or null if it is not one of ours. */
  verify(token: string): string | null {
    const known = this.verified.get(token);
    if (known !== undefined) return known;
    const userId = this.check(token);
    if (userId !== null) {
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.delete(this.verified.keys().next().value as string);
      this.verified.set(token, userId);
    }
    return userId;
  }

  private check(token: string): string | null {
    const match = /^v1\.([1-9]\d{0,19})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!match) return null;
    const expected = Buffer.from(this.sign(match[1]));
    const given = Buffer.from(match[2]);
    return expected.length === given.length && timingSafeEqual(expected, given) ? match[1] : null;
  }

  private sign(userId: string): string {
    return createHmac('sha256', this.secret).update(`v1.${userId}`).digest('base64url');
  }
}

/** AUTH_SECRET if set, else the database's (created by the first process that needs it). */
export async function loadAuthSecret(db: Db, configured: string | undefined): Promise<Buffer> {
  if (configured) return Buffer.from(configured);
  await db('settings')
    .insert({ name: 'auth_secret', value: randomBytes(32).toString('base64') })
    .onConflict('name')
    .ignore();
  const row = await db('settings').where({ name: 'auth_secret' }).first('value');
  return Buffer.from(row.value, 'base64');
}
