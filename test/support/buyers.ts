import type { App } from '../../src/app';
import { hashPayPassword } from '../../src/users/users';
import { loadAuthSecret, TokenSigner } from '../../src/users/tokens';

/**
 * Many buyers at once, for flash-sale tests: rows inserted straight into the users table (one
 * argon2 hash shared by all: hashing is what makes POST /api/users slow) and tokens signed with
 * the database's secret, exactly as the service signs them. Pay password: "pay-secret".
 */
export async function bulkBuyers(app: App, n: number, prefix = 'fan'): Promise<Array<{ id: string; auth: Record<string, string> }>> {
  const hash = await hashPayPassword('pay-secret');
  const signer = new TokenSigner(await loadAuthSecret(app.db, app.config.AUTH_SECRET));
  const ids: string[] = [];
  for (let i = 0; i < n; i += 1_000) {
    const rows = Array.from({ length: Math.min(1_000, n - i) }, (_, j) => ({ name: `${prefix}-${i + j}`, pay_password_hash: hash }));
    await app.db('users').insert(rows);
    const inserted: string[] = await app
      .db('users')
      .whereIn(
        'name',
        rows.map((r) => r.name),
      )
      .orderBy('id')
      .pluck('id');
    ids.push(...inserted.map(String));
  }
  return ids.map((id) => ({ id, auth: { Authorization: `Bearer ${signer.issue(id)}` } }));
}
