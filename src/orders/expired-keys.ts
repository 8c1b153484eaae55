import Redis, { Cluster } from 'ioredis';
import { addressOf, onMastersChanged } from '../db/redis';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';

/**
 * Redis `expired` keyspace events, from one Redis or from every master of a Redis Cluster.
 * Keyspace notifications are per node and fire-and-forget: on a cluster each master announces
 * only its own keys, so there is one subscriber per master, and the set of masters is followed
 * (a replica promoted by a failover gets a subscriber, a node that is no longer a master loses
 * its). Notifications are turned on (merged into the node's flags) on every node, replicas too,
 * so a promoted replica announces from the start, and again after every reconnect: Redis forgets
 * CONFIG SET when it restarts. Events lost while no subscriber listens are the sweep's to catch.
 */
export class ExpiredKeyEvents {
  private readonly subscribers = new Map<string, Redis>();
  private readonly flagsSet = new Set<string>();
  private unfollow: () => void = () => {};
  private stopped = false;

  constructor(
    private readonly redis: Redis | Cluster,
    private readonly logger: Logger,
    private readonly onExpired: (key: string) => void,
  ) {}

  async start(): Promise<void> {
    this.stopped = false;
    if (this.redis instanceof Cluster) {
      const cluster = this.redis;
      await this.followCluster(cluster);
      // A failover promotes a replica, a node joins or leaves: the cluster client says so.
      this.unfollow = onMastersChanged(cluster, () => void this.followCluster(cluster));
      return;
    }
    const redis = this.redis;
    await this.enable(redis, 'redis');
    redis.on('ready', () => void this.enable(redis, 'redis'));
    await this.subscribe('redis', redis.duplicate(), redis.options.db ?? 0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.unfollow();
    for (const subscriber of this.subscribers.values()) subscriber.disconnect();
    this.subscribers.clear();
  }

  /** The masters of the moment each have a subscriber, and every node has the events turned on. */
  private async followCluster(cluster: Cluster): Promise<void> {
    const masters = new Map(cluster.nodes('master').map((node) => [addressOf(node), node]));
    for (const node of cluster.nodes('all')) {
      const address = addressOf(node);
      if (!this.flagsSet.has(address)) await this.enable(node, address);
    }
    for (const [address, subscriber] of this.subscribers) {
      if (masters.has(address)) continue;
      subscriber.disconnect();
      this.subscribers.delete(address);
      this.flagsSet.delete(address); // it may come back after a restart, without its flags
    }
    for (const [address, node] of masters) {
      if (this.subscribers.has(address) || this.stopped) continue;
      const subscriber = new Redis({
        host: node.options.host,
        port: node.options.port,
        lazyConnect: true,
        maxRetriesPerRequest: 1,
        retryStrategy: (n) => Math.min(2_000, 100 * n),
      });
      // A restarted node forgets CONFIG SET: turn the events on again when it is back.
      subscriber.on('ready', () => void this.enable(node, address));
      await this.subscribe(address, subscriber, 0).catch((err) => {
        subscriber.disconnect();
        this.subscribers.delete(address);
        this.logger.warn('could not subscribe to expiry events of a redis master; the sweep covers it', { node: address, error: errorMessage(err) });
      });
    }
  }

  private async subscribe(address: string, subscriber: Redis, db: number): Promise<void> {
    this.subscribers.set(address, subscriber);
    subscriber.on('error', () => {}); // the main client logs Redis outages
    subscriber.on('message', (_channel: string, key: string) => this.onExpired(key));
    await subscriber.connect().catch(() => {});
    await subscriber.subscribe(`__keyevent@${db}__:expired`);
  }

  private async enable(node: Redis, address: string): Promise<void> {
    try {
      const [, current = ''] = await node.config('GET', 'notify-keyspace-events');
      const hasExpired = current.includes('x') || current.includes('A');
      if (!current.includes('E') || !hasExpired) {
        const flags = `${current}${current.includes('E') ? '' : 'E'}${hasExpired ? '' : 'x'}`;
        await node.config('SET', 'notify-keyspace-events', flags);
        this.logger.info('redis keyspace notifications for expired keys turned on', { node: address, 'notify-keyspace-events': flags });
      }
      this.flagsSet.add(address);
    } catch (err) {
      // A managed Redis may forbid CONFIG: the delay queue and the sweep still expire orders.
      this.logger.warn('could not turn on redis keyspace notifications; expiry relies on the delay queue and the sweep', {
        node: address,
        error: errorMessage(err),
      });
    }
  }
}
