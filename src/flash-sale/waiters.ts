import type { RedisClient } from '../db/redis';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { ReservationReleaseReason, Resolutions } from './reservations';

export type Resolution = { outcome: 'persisted' } | { outcome: 'released'; reason: ReservationReleaseReason };

/**
 * Requests waiting for their async order (`?waitMs=`), in this API process. Every worker
 * announces the orders it resolved on a Redis channel, so the worker that persists an order and
 * the API process that waits for it may be different processes.
 */
export class AsyncOrderWaiters {
  private readonly waiting = new Map<string, Set<(resolution: Resolution | null) => void>>();
  private subscriber: RedisClient | null = null;

  constructor(
    private readonly redis: RedisClient,
    private readonly channel: string,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const subscriber = this.redis.duplicate();
    this.subscriber = subscriber;
    subscriber.on('error', () => {}); // the main client reports Redis outages
    subscriber.on('message', (_channel: string, text: string) => {
      if (this.waiting.size === 0) return;
      try {
        const resolutions = JSON.parse(text) as Resolutions;
        for (const orderId of resolutions.persisted) this.settle(orderId, { outcome: 'persisted' });
        for (const { orderId, reason } of resolutions.released) this.settle(orderId, { outcome: 'released', reason });
      } catch (err) {
        this.logger.warn('unreadable async order announcement', { error: errorMessage(err) });
      }
    });
    await subscriber.connect().catch(() => {});
    await subscriber.subscribe(this.channel);
  }

  /** Resolves with the order's outcome, or null after `ms`. */
  wait(orderId: string, ms: number): { resolution: Promise<Resolution | null>; cancel(): void } {
    let settle!: (resolution: Resolution | null) => void;
    const resolution = new Promise<Resolution | null>((resolve) => {
      const timer = setTimeout(() => settle(null), ms);
      settle = (value) => {
        clearTimeout(timer);
        const set = this.waiting.get(orderId);
        set?.delete(settle);
        if (set?.size === 0) this.waiting.delete(orderId);
        resolve(value);
      };
    });
    const set = this.waiting.get(orderId) ?? new Set();
    set.add(settle);
    this.waiting.set(orderId, set);
    return { resolution, cancel: () => settle(null) };
  }

  private settle(orderId: string, resolution: Resolution): void {
    for (const settle of [...(this.waiting.get(orderId) ?? [])]) settle(resolution);
  }

  async stop(): Promise<void> {
    for (const orderId of [...this.waiting.keys()]) for (const settle of [...(this.waiting.get(orderId) ?? [])]) settle(null);
    this.subscriber?.disconnect();
    this.subscriber = null;
  }
}
