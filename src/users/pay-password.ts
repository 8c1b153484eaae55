import { RateLimiterRedis, RateLimiterRes } from 'rate-limiter-flexible';
import type { Db } from '../db/database';
import type { RedisClient } from '../db/redis';
import { AppError, notFound } from '../errors';
import { payPasswordMatches } from './users';

/**
 * Checks pay passwords and limits wrong guesses per user: after `maxAttempts` wrong ones within
 * `windowMs`, every attempt answers 429 TOO_MANY_ATTEMPTS until the window passes. The counter
 * lives in Redis (rate-limiter-flexible, one atomic script per wrong attempt), so every API
 * process shares it. A correct password does not reset it: the window is the only way out.
 */
export class PayPasswordGuard {
  private readonly limiter: RateLimiterRedis;

  constructor(
    private readonly db: Db,
    redis: RedisClient,
    namespace: string,
    private readonly options: { maxAttempts: number; windowMs: number },
  ) {
    this.limiter = new RateLimiterRedis({
      storeClient: redis,
      keyPrefix: `${namespace}:pay-password-failures`,
      points: options.maxAttempts,
      duration: Math.max(1, Math.ceil(options.windowMs / 1000)),
    });
  }

  /** Refuses at once when the user has used up their wrong attempts (no hash computed). */
  async assertNotLocked(userId: string): Promise<void> {
    const state = await this.limiter.get(userId);
    if (state && state.consumedPoints >= this.options.maxAttempts) throw this.locked(state.msBeforeNext);
  }

  /** Resolves when `password` is the user's pay password; 403 (counted) or 429 otherwise. */
  async verify(userId: string, password: string): Promise<void> {
    await this.assertNotLocked(userId);
    const user = await this.db('users').where({ id: userId }).first('pay_password_hash');
    if (!user) throw notFound('user');
    if (await payPasswordMatches(user.pay_password_hash, password)) return;
    try {
      const state = await this.limiter.consume(userId);
      throw new AppError('WRONG_PAY_PASSWORD', 'wrong pay password', { attemptsLeft: state.remainingPoints });
    } catch (err) {
      if (err instanceof RateLimiterRes) throw this.locked(err.msBeforeNext);
      throw err;
    }
  }

  private locked(msBeforeNext: number): AppError {
    const retryAfterSeconds = Math.max(1, Math.ceil(msBeforeNext / 1000));
    return new AppError(
      'TOO_MANY_ATTEMPTS',
      `too many wrong pay passwords: try again in ${retryAfterSeconds} s`,
      { retryAfterSeconds },
    );
  }
}
