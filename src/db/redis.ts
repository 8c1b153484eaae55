import Redis, { Cluster, type ClusterNode } from 'ioredis';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';

/** What `duplicate()` gives on either kind: another client of the same kind and options. */
interface Duplicable {
  duplicate(): RedisClient;
}

/**
 * One Redis (REDIS_URL) or a Redis Cluster (REDIS_CLUSTER_NODES): every command and script runs
 * on both. (Each side carries a plain `duplicate()` signature: ioredis' two generic ones cannot be
 * called on a union.) `isCluster` tells them apart where a node matters (SCAN, keyspace events).
 */
export type RedisClient = (Redis & Duplicable) | (Cluster & Duplicable);

/** Commands issued in the same tick share one write: under load, one syscall for many requests.
 * Not the scripts that load a whole show (100,000 seats are too many arguments to re-spread). */
const AUTO_PIPELINING = { enableAutoPipelining: true, autoPipeliningIgnoredCommands: ['seatLoadShow', 'seatMarkHeld'] };
const backoff = (attempt: number) => Math.min(2_000, 50 * 2 ** attempt);

/**
 * A Redis client that reconnects by itself (backoff capped at 2 s) but does not queue commands
 * while disconnected: a request fails at once and answers 503, instead of hanging.
 */
export function createRedis(url: string, logger: Logger, connectionName: string): Redis {
  let lastError = '';
  let down = false;
  const redis = new Redis(url, {
    connectionName,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    ...AUTO_PIPELINING,
    retryStrategy: backoff,
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

/**
 * A Redis Cluster client with the single client's semantics: nothing is queued while the cluster
 * is unreachable (a command fails at once), reconnects with the same backoff, reads and writes go
 * to masters (a replica may lag: seat state is never read from one). A command whose master just
 * died is retried every 500 ms (each retry refreshes the slot map) until its replica is promoted,
 * for up to 20 s: a failover takes cluster-node-timeout plus about a second (6-9 s measured with
 * tools/cluster's 5 s). Past that, or when no node answers, the command fails like a single
 * Redis' would.
 */
export function createRedisCluster(nodes: ClusterNode[], logger: Logger, connectionName: string): Cluster {
  let lastError = '';
  let down = false;
  const cluster = new Cluster(nodes, {
    enableOfflineQueue: false,
    scaleReads: 'master',
    ...AUTO_PIPELINING,
    clusterRetryStrategy: backoff,
    retryDelayOnFailover: 500,
    retryDelayOnClusterDown: 500,
    retryDelayOnTryAgain: 200,
    maxRedirections: 40,
    slotsRefreshInterval: 2_000,
    lazyConnect: true,
    redisOptions: { connectionName, maxRetriesPerRequest: 1 },
  });
  cluster.on('error', (err: Error) => {
    lastError = errorMessage(err);
  });
  cluster.on('node error', (err: Error, node: string) => {
    lastError = errorMessage(err);
    logger.warn('redis cluster node error', { dependency: 'redis', node, error: lastError });
  });
  cluster.on('reconnecting', () => {
    if (!down) logger.warn('redis cluster unreachable, retrying', { dependency: 'redis', error: lastError });
    down = true;
  });
  cluster.on('ready', () => {
    if (down) logger.info('redis cluster connected', { dependency: 'redis' });
    down = false;
  });
  cluster.on('+node', (node: Redis) => logger.debug('redis cluster node added', { dependency: 'redis', node: addressOf(node) }));
  cluster.on('-node', (node: Redis) => logger.debug('redis cluster node removed', { dependency: 'redis', node: addressOf(node) }));
  return cluster;
}

/** The Redis of the configuration: a cluster client when REDIS_CLUSTER_NODES is set, else REDIS_URL's. */
export function createRedisClient(
  config: { REDIS_URL: string; REDIS_CLUSTER_NODES?: ReadonlyArray<{ host: string; port: number }> },
  logger: Logger,
  connectionName: string,
): RedisClient {
  const nodes = config.REDIS_CLUSTER_NODES;
  if (nodes && nodes.length > 0) return createRedisCluster([...nodes], logger, connectionName);
  return createRedis(config.REDIS_URL, logger, connectionName);
}

export const isCluster = (redis: RedisClient): redis is Cluster & Duplicable => redis instanceof Cluster;

/** Connects, waiting (with the client's own backoff) until Redis answers. */
export async function connectRedis(redis: RedisClient): Promise<void> {
  // A failed first attempt is retried by the client's retry strategy ('reconnecting' logs it).
  await redis.connect().catch(() => {});
  if (redis.status === 'ready') return;
  await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
}

export const addressOf = (node: Redis): string => `${node.options.host}:${node.options.port}`;

/** The masters of the moment: the client itself for one Redis, every master of a cluster (as its slot map says). */
export function masters(redis: RedisClient): Redis[] {
  return isCluster(redis) ? redis.nodes('master') : [redis];
}

/** Runs `work` on every master (one Redis: on it), in parallel. Per-node work: keyspace notifications, SCAN, CONFIG SET. */
export async function forEachMaster<T>(redis: RedisClient, work: (node: Redis, address: string) => Promise<T>): Promise<T[]> {
  return Promise.all(masters(redis).map((node) => work(node, addressOf(node))));
}

/**
 * Calls `listener` with the masters whenever the set of master addresses changes (a failover
 * promoted a replica, a node joined or left), as the cluster client learns it: its slot map is
 * refreshed every 2 s and after every failed command. For one Redis: never. Returns the unsubscribe.
 */
export function onMastersChanged(redis: RedisClient, listener: (masters: Redis[]) => void): () => void {
  if (!isCluster(redis)) return () => {};
  let known = '';
  const check = () => {
    const now = masters(redis);
    const key = now.map(addressOf).sort().join(',');
    if (key === known) return;
    known = key;
    listener(now);
  };
  if (redis.status === 'ready') known = masters(redis).map(addressOf).sort().join(',');
  const events = ['refresh', '+node', '-node', 'ready'] as const;
  for (const event of events) redis.on(event, check);
  return () => {
    for (const event of events) redis.off(event, check);
  };
}

/** Deletes every key under a prefix (tests and operators; SCAN, never KEYS), on every master of a cluster. */
export async function deleteKeysWithPrefix(redis: RedisClient, prefix: string): Promise<number> {
  const counts = await forEachMaster(redis, async (node) => {
    let deleted = 0;
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length === 0) continue;
      if (!isCluster(redis)) {
        deleted += await node.unlink(...keys);
        continue;
      }
      // A cluster refuses multi-key commands across slots, even on one node: one UNLINK a key.
      const pipeline = node.pipeline();
      for (const key of keys) pipeline.unlink(key);
      for (const [err, n] of (await pipeline.exec()) ?? []) if (!err) deleted += Number(n);
    } while (cursor !== '0');
    return deleted;
  });
  return counts.reduce((sum, n) => sum + n, 0);
}
