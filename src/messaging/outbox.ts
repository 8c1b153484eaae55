import { randomUUID } from 'node:crypto';
import type { Db, Tx } from '../db/database';
import type { Logger } from '../observability/logger';
import { systemClock, type Clock } from '../support/time';
import { errorMessage } from '../observability/logger';
import type { Broker } from './broker';

export interface OutboxMessage {
  exchange: string;
  routingKey: string;
  messageId: string;
  payload: unknown;
  /** The saga the message is about, for the operator's timeline. */
  sagaId?: string;
}

/** Who writes to the outbox: in the caller's transaction, published once it commits. */
export interface OutboxWriter {
  enqueue(trx: Tx, messages: OutboxMessage[]): Promise<void>;
}

export interface OutboxRelayOptions {
  pollMs: number;
  batchSize?: number;
  leaseMs?: number;
  /** Sent rows older than this are deleted. */
  retentionMs?: number;
  onPublished?: (count: number) => void;
  clock?: Clock;
}

/**
 * The one way into `outbox`: `enqueue` writes messages in the caller's transaction (they reach
 * the broker if and only if it commits) and wakes the relay once it has committed.
 *
 * The relay publishes outbox rows with publisher confirms and marks them sent; runs in every process. A
 * batch is claimed under a lease, so relays side by side do not publish the same rows, and rows
 * of a relay that died are published by another once the lease ends. A message may still reach the
 * broker twice (confirm lost in a crash); every consumer is idempotent.
 */
export class OutboxRelay implements OutboxWriter {
  private stopped = true;
  private wake: (() => void) | null = null;
  private kicked = false;
  private loop: Promise<void> | null = null;
  private lastPurge = 0;
  private readonly relayId = randomUUID();
  /**
   * Claims of this relay whose pass failed halfway (the database went away between the claim and
   * marking the rows sent): taken again at once, rather than when their lease runs out.
   */
  private readonly unfinishedClaims = new Set<string>();

  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
    private readonly logger: Logger,
    private readonly options: OutboxRelayOptions,
  ) {}

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.loop = this.run();
  }

  async enqueue(trx: Tx, messages: OutboxMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await trx('outbox').insert(
      messages.map((message) => ({
        exchange: message.exchange,
        routing_key: message.routingKey,
        message_id: message.messageId,
        payload: JSON.stringify(message.payload),
        saga_id: message.sagaId ?? null,
      })),
    );
    // Published now rather than at the next poll; a transaction that rolls back publishes nothing.
    trx.executionPromise.then(
      () => this.kick(),
      () => {},
    );
  }

  /** Something was just committed to the outbox: publish it now rather than at the next poll. */
  kick(): void {
    if (this.wake) this.wake();
    else this.kicked = true;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.loop;
  }

  private async run(): Promise<void> {
    const batchSize = this.options.batchSize ?? 200;
    while (!this.stopped) {
      let published = 0;
      try {
        if (this.broker.isConnected) published = await this.drainOnce(batchSize);
        await this.purgeSent();
      } catch (err) {
        this.logger.warn('outbox relay pass failed', { error: errorMessage(err) });
      }
      if (published < batchSize) await this.idle();
    }
  }

  private idle(): Promise<void> {
    if (this.kicked) {
      this.kicked = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const finish = () => {
        clearTimeout(timer);
        this.wake = null;
        resolve();
      };
      const timer = setTimeout(finish, this.options.pollMs);
      this.wake = finish;
    });
  }

  /** Claims up to `batchSize` unsent rows, publishes them, marks the confirmed ones sent. */
  async drainOnce(batchSize = 200): Promise<number> {
    const claim = randomUUID();
    const leaseMs = this.options.leaseMs ?? 30_000;
    const ownEarlier = [...this.unfinishedClaims];
    this.unfinishedClaims.add(claim);
    // A claim that failed with the database away may or may not have committed; during a long
    // outage only the most recent ones are worth asking for (older ones wait out their lease).
    if (this.unfinishedClaims.size > 50) this.unfinishedClaims.delete(ownEarlier[0]);
    const claimed = await this.db.raw(
      `UPDATE outbox SET claimed_by = ?, claimed_until = NOW(3) + INTERVAL ? MICROSECOND, attempts = attempts + 1
        WHERE sent_at IS NULL AND (claimed_until IS NULL OR claimed_until < NOW(3)${ownEarlier.length ? ` OR claimed_by IN (${ownEarlier.map(() => '?').join(',')})` : ''})
        ORDER BY id LIMIT ?`,
      [claim, leaseMs * 1000, ...ownEarlier, batchSize],
    );
    // Rows of the earlier claims that this one did not take (past the batch size) are still theirs.
    if (claimed[0].affectedRows < batchSize) for (const earlier of ownEarlier) this.unfinishedClaims.delete(earlier);
    if (claimed[0].affectedRows === 0) {
      this.unfinishedClaims.delete(claim);
      return 0;
    }
    const rows: Array<{ id: string; exchange: string; routing_key: string; message_id: string; payload: string }> = await this.db('outbox')
      .select('id', 'exchange', 'routing_key', 'message_id', 'payload')
      .where({ claimed_by: claim })
      .whereNull('sent_at');

    const results = await Promise.allSettled(
      rows.map((row) =>
        this.broker.publish(row.exchange, row.routing_key, JSON.parse(row.payload), {
          messageId: row.message_id,
          headers: { 'x-outbox-id': row.id, 'x-relay': this.relayId },
        }),
      ),
    );
    const sent = rows.filter((_, i) => results[i].status === 'fulfilled').map((row) => row.id);
    const failed = rows.filter((_, i) => results[i].status === 'rejected');
    if (sent.length > 0)
      await this.db('outbox')
        .whereIn('id', sent)
        .update({ sent_at: this.db.fn.now(3), claimed_until: null });
    if (failed.length > 0) {
      const reason = (results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason;
      this.logger.warn('outbox messages not confirmed, will retry', { count: failed.length, error: errorMessage(reason) });
      await this.db('outbox')
        .whereIn(
          'id',
          failed.map((row) => row.id),
        )
        .update({ claimed_by: null, claimed_until: null, last_error: errorMessage(reason).slice(0, 1000) });
    }
    this.unfinishedClaims.delete(claim);
    if (sent.length > 0) this.options.onPublished?.(sent.length);
    return sent.length;
  }

  private async purgeSent(): Promise<void> {
    const retentionMs = this.options.retentionMs ?? 24 * 3600 * 1000;
    const now = (this.options.clock ?? systemClock).now();
    if (now - this.lastPurge < 60_000) return;
    this.lastPurge = now;
    await this.db.raw('DELETE FROM outbox WHERE sent_at < NOW(3) - INTERVAL ? MICROSECOND LIMIT 10000', [retentionMs * 1000]);
  }
}
