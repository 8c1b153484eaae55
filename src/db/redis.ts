import Redis from 'ioredis';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';

export type RedisClient = Redis;

/**
 * A Redis client that reconnects by itself (backoff capped at 2 s) but does not queue commands
 * while disconnected: a request fails at once and answers 503, instead of hanging.
 */
export function createRedis(url: string, logger: Logger, connectionName: string): RedisClient {
  let lastError = '';
  let down = false;
  const redis = new Redis(url, {
    connectionName,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    // Commands issued in the same tick share one write: under load, one syscall for many requests.
    // Not the scripts that load a whole show (100,000 seats are too many arguments to re-spread).
    enableAutoPipelining: true,
    autoPipeliningIgnoredCommands: ['seatLoadShow', 'seatMarkHeld'],
    retryStrategy: (attempt) => Math.min(2_000, 50 * 2 ** attempt),
    lazyConnect: true,
  });
  redis.on('error', (err) => {
    lastError = errorMessage(err);
  });
  redis.on('reconnecting', (delayMs: number) => {
    down = true;
    logger.warn('redis unreachable, retrying', { dependency: 'redis', retryInMs: delayMs, error: lastError });
  });
  redis.on('ready', () => {
    if (down) logger.info('redis connected', { dependency: 'redis' });
    down = false;
  });
  return redis;
}

/** Connects, waiting (with the client's own backoff) until Redis answers. */
export async function connectRedis(redis: RedisClient): Promise<void> {
  // A failed first attempt is retried by the client's retryStrategy ('reconnecting' logs it).
  await redis.connect().catch(() => {});
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
}

/** Deletes every key under a prefix (tests and operators; SCAN, never KEYS). */
export async function deleteKeysWithPrefix(redis: RedisClient, prefix: string): Promise<number> {
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}
