import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Db } from '../db/database';
import type { RedisClient } from '../db/redis';
import { AppError, notFound } from '../errors';
import { payPasswordMatches } from './users';

/**
 * rate-limiter-flexible's counting script, with two changes. An attempt refused because none is
 * left is not counted (the count stays at the limit: a burst refused with 429 must not keep a user
 * locked out once their right passwords have given their attempts back). Giving an attempt back
 * (a negative count) to a key whose window has ended creates nothing: the next window starts with
 * all its attempts, not one extra. ARGV: points, window seconds, the limit.
 */
const COUNT_ATTEMPTS_LUA = `
local points = tonumber(ARGV[1])
if points < 0 and redis.call('exists', KEYS[1]) == 0 then return {0, 0} end
redis.call('set', KEYS[1], 0, 'EX', ARGV[2], 'NX')
local consumed = redis.call('incrby', KEYS[1], points)
local ttl = redis.call('pttl', KEYS[1])
if ttl == -1 then
  redis.call('expire', KEYS[1], ARGV[2])
  ttl = 1000 * ARGV[2]
end
if points > 0 and consumed > tonumber(ARGV[3]) then redis.call('decrby', KEYS[1], points) end
return {consumed, ttl}`;

/** What one pay-password check came to: a hash computed (right or wrong), or refused without one. */
export type PayPasswordOutcome = 'right' | 'wrong' | 'locked';

/**
 * Checks pay passwords and limits guesses per user: at most `maxAttempts` hashes are computed per
 * user within `windowMs`, however many requests race. Each check first reserves an attempt in
 * Redis (rate-limiter-flexible: one atomic script, shared by every API process); only then is the
 * hash computed. A right password gives its attempt back, so only wrong ones count, and it does
 * not reset the others: the window is the only way out of a lock-out. Reading the counter first
 * and counting the failure after the hash would let every request of a burst be checked.
 */
export class PayPasswordGuard {
  private readonly limiter: RateLimiterRedis;

  constructor(
    private readonly db: Db,
    redis: RedisClient,
    namespace: string,
    private readonly options: { maxAttempts: number; windowMs: number; onCheck?: (outcome: PayPasswordOutcome) => void },
  ) {
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${namespace}:pay-password-failures`,
      points: options.maxAttempts,
      duration: Math.max(1, Math.ceil(options.windowMs / 1000)),
      customIncrTtlLuaScript: COUNT_ATTEMPTS_LUA,
    });
  }

  /** Refuses at once when the user has no attempt left (no hash computed, nothing reserved). */
  async assertNotLocked(userId: string): Promise<void> {
    const state = await this.limiter.get(userId);
    if (state && state.consumedPoints >= this.options.maxAttempts) throw this.refuse(state.msBeforeNext);
  }

  /** Resolves when `password` is the user's pay password; 403 (counted) or 429 otherwise. */
  async verify(userId: string, password: string): Promise<void> {
    const attempt = await this.reserveAttempt(userId);
    let right: boolean;
    try {
      const user = await this.db('users').where({ id: userId }).first('pay_password_hash');
      if (!user) throw notFound('user');
      right = await payPasswordMatches(user.pay_password_hash, password);
      this.options.onCheck?.(right ? 'right' : 'wrong');
    } catch (err) {
      // No hash was compared (the user is gone, the database is down): not a guess.
      await this.giveBack(userId);
      throw err;
    }
    if (right) {
      await this.giveBack(userId);
      return;
    }
    throw new AppError('WRONG_PAY_PASSWORD', 'wrong pay password', { attemptsLeft: attempt.remainingPoints });
  }

  private async reserveAttempt(userId: string): Promise<RateLimiterRes> {
    try {
      return await this.limiter.consume(userId);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw this.refuse(err.msBeforeNext);
      throw err;
    }
  }

  /** Hands a reserved attempt back (nothing, if its window has ended meanwhile). */
  private async giveBack(userId: string): Promise<void> {
    await this.limiter.reward(userId, 1);
  }

  private refuse(msBeforeNext: number): AppError {
    this.options.onCheck?.('locked');
    const retryAfterSeconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
    return new AppError('TOO_MANY_ATTEMPTS', `too many wrong pay passwords: try again in ${retryAfterSeconds} s`, { retryAfterSeconds });
  }
}
