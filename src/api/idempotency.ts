import { createHmac } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { isDuplicateKey, type Db } from '../db/database';
import { AppError } from '../errors';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import { sleep, type Clock } from '../support/time';
import { userIdOf } from './auth';

/** A response is replayed to retries with the same key for this long. */
const KEY_TTL_MS = 24 * 3600 * 1000;
/** A request still IN_PROGRESS after this long died with its process: a retry takes its key over. */
const ABANDONED_AFTER_MS = 60_000;
/** A retry arriving while the first request runs waits this long for its response. */
const WAIT_FOR_FIRST_MS = 10_000;

type Claim = { kind: 'new' } | { kind: 'replay'; status: number; body: unknown } | { kind: 'in-progress' };

/**
 * `Idempotency-Key` for requests that must not happen twice (placing and paying orders): the first
 * response to (user, route, key) is stored and replayed to retries for 24 h; the same key with
 * another body answers 422 IDEMPOTENCY_KEY_REUSED. A retry that arrives while the first request
 * still runs waits for its response. Server failures (5xx), 429s and 400s are not stored: the
 * request did not take effect as a whole, so a retry runs it again. Bodies are compared by an HMAC (the pay body
 * holds a password: only a keyed hash of it is stored).
 */
export class IdempotencyStore {
  constructor(
    private readonly db: Db,
    private readonly hashKey: Buffer,
    private readonly clock: Clock,
  ) {}

  requestHash(scope: string, body: unknown): string {
    return createHmac('sha256', this.hashKey)
      .update(scope)
      .update('\0')
      .update(JSON.stringify(body ?? null))
      .digest('hex');
  }

  /** Claims the key for this request, or says what a retry must answer instead. */
  async claim(userId: string, scope: string, key: string, hash: string): Promise<Claim> {
    const where = { user_id: userId, scope, idem_key: key };
    for (const deadline = this.clock.now() + WAIT_FOR_FIRST_MS; ;) {
      try {
        await this.db('idempotency_keys').insert({
          ...where,
          request_hash: hash,
          status: 'IN_PROGRESS',
          expires_at: this.db.raw('NOW(3) + INTERVAL ? MICROSECOND', [KEY_TTL_MS * 1000]),
        });
        return { kind: 'new' };
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
      }
      const row = await this.db('idempotency_keys')
        .where(where)
        .first(
          'request_hash',
          'status',
          'response_status',
          'response_body',
          this.db.raw('expires_at < NOW(3) AS expired'),
          this.db.raw('created_at < NOW(3) - INTERVAL ? MICROSECOND AS abandoned', [ABANDONED_AFTER_MS * 1000]),
        );
      if (!row) continue; // deleted meanwhile (expired, or the first request failed with a 5xx)
      if (row.expired) {
        await this.db('idempotency_keys').where(where).andWhere('expires_at', '<', this.db.raw('NOW(3)')).delete();
        continue;
      }
      if (row.request_hash !== hash) {
        throw new AppError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request body');
      }
      if (row.status === 'DONE') return { kind: 'replay', status: row.response_status, body: JSON.parse(row.response_body) };
      if (row.abandoned) {
        const taken = await this.db('idempotency_keys')
          .where({ ...where, status: 'IN_PROGRESS' })
          .andWhere('created_at', '<', this.db.raw('NOW(3) - INTERVAL ? MICROSECOND', [ABANDONED_AFTER_MS * 1000]))
          .update({ created_at: this.db.fn.now(3) });
        if (taken === 1) return { kind: 'new' };
        continue;
      }
      if (this.clock.now() > deadline) return { kind: 'in-progress' };
      await sleep(50);
    }
  }

  async complete(userId: string, scope: string, key: string, status: number, body: unknown): Promise<void> {
    const where = { user_id: userId, scope, idem_key: key, status: 'IN_PROGRESS' };
    // Not a result of the request but a state of the service (a failure, a rate limit), or bad
    // input found after the claim (a seat of another show): nothing took effect, and bad input
    // writes nothing, so the key is given back and a retry runs again rather than replays.
    if (status >= 500 || status === 429 || status === 400) {
      await this.db('idempotency_keys').where(where).delete();
      return;
    }
    await this.db('idempotency_keys')
      .where(where)
      .update({ status: 'DONE', response_status: status, response_body: JSON.stringify(body ?? null) });
  }

  /** Forgets keys past their 24 h. */
  async purgeExpired(limit = 1000): Promise<number> {
    return this.db('idempotency_keys').where('expires_at', '<', this.db.raw('NOW(3)')).limit(limit).delete();
  }
}

/**
 * Middleware (after authentication and the route's input is validated: a key is claimed only for
 * a request that will run) for one route; `scope` names the route and its target, e.g.
 * `pay:<orderId>`. Without the header, the request runs as usual.
 */
export function idempotent(store: IdempotencyStore, scopeOf: (req: Request) => string) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const key = req.get('idempotency-key');
    if (key === undefined) return next();
    if (!/^[\x21-\x7e]{1,128}$/.test(key)) {
      throw new AppError('VALIDATION_FAILED', 'Idempotency-Key must be 1-128 visible ASCII characters');
    }
    const userId = userIdOf(req);
    const scope = scopeOf(req);
    const claim = await store.claim(userId, scope, key, store.requestHash(scope, req.body));
    if (claim.kind === 'replay') {
      res.set('Idempotent-Replayed', 'true');
      res.status(claim.status).json(claim.body);
      return;
    }
    if (claim.kind === 'in-progress') {
      throw new AppError('IDEMPOTENCY_KEY_IN_PROGRESS', 'a request with this Idempotency-Key is still running; retry shortly');
    }
    // Store the response before it leaves, so a retry that follows it finds it.
    const send = res.json.bind(res);
    res.json = (body: unknown) => {
      const logger: Logger = res.locals.logger;
      store
        .complete(userId, scope, key, res.statusCode, body)
        .catch((err) => logger.warn('idempotency record not stored; a retry will run the request again', { error: errorMessage(err) }))
        .finally(() => send(body));
      return res;
    };
    next();
  };
}
