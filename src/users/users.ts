import argon2 from 'argon2';
import { toNumber, type Db } from '../db/database';
import { notFound } from '../errors';
import type { Wallet } from '../payments/wallet';
import type { TokenSigner } from './tokens';

export interface UserView {
  id: string;
  name: string;
  balanceCents: number;
}

/** argon2id at OWASP's recommended minimum (19 MiB, 2 passes): ~40 ms, off the event loop. */
const HASH_OPTIONS = { type: argon2.argon2id, memoryCost: 19_456, timeCost: 2, parallelism: 1 } as const;

export function hashPayPassword(password: string): Promise<string> {
  return argon2.hash(password, HASH_OPTIONS);
}

/** Constant-time comparison inside argon2.verify. */
export function payPasswordMatches(hash: string, password: string): Promise<boolean> {
  return argon2.verify(hash, password);
}

export class Users {
  constructor(
    private readonly db: Db,
    private readonly tokens: TokenSigner,
    private readonly wallet: Wallet,
  ) {}

  async create(input: { name: string; payPassword: string }): Promise<UserView & { token: string }> {
    const hash = await hashPayPassword(input.payPassword);
    const [id] = await this.db('users').insert({ name: input.name, pay_password_hash: hash, balance_cents: 0 });
    const userId = String(id);
    return { id: userId, name: input.name, balanceCents: 0, token: this.tokens.issue(userId) };
  }

  async get(userId: string): Promise<UserView> {
    const row = await this.db('users').where({ id: userId }).first('id', 'name', 'balance_cents');
    if (!row) throw notFound('user');
    return { id: row.id, name: row.name, balanceCents: toNumber(row.balance_cents) };
  }

  /** Adds credit (the wallet's top-up: a relative update and its ledger entry). */
  async credit(userId: string, amountCents: number): Promise<{ id: string; balanceCents: number }> {
    return { id: userId, balanceCents: await this.wallet.credit(userId, amountCents) };
  }
}
