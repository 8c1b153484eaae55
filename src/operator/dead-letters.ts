import { sleep } from '../support/time';
import type { GetMessage } from 'amqplib';
import type { Db } from '../db/database';
import type { Broker } from '../messaging/broker';
import type { Topology, WorkQueue } from '../messaging/topology';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { DeadLetterLog } from './dead-letter-log';
import { type ConsumerName, type Watched, watchedQueues } from './dead-letter-queues';
import { fromDeadLetter, idOf, parseBody } from './dlq-messages';

// The record (table dead_letters) and the watched queues live beside this file; their names
// stay importable from here.
export { DeadLetterLog, type DeadLetterView } from './dead-letter-log';
export { CONSUMER_NAMES, type ConsumerName } from './dead-letter-queues';

export interface RedriveResult {
  redriven: number;
  dropped: number;
}

export interface DeadLettersDeps {
  db: Db;
  broker: Broker;
  topology: Topology;
  log: DeadLetterLog;
  logger: Logger;
  onResolved?: (queue: string, count: number) => void;
  /** Messages taken from one DLQ per pass, at most. */
  batchSize?: number;
}

/**
 * What the workers and operators do with the DLQs themselves:
 * - `resolveOnce` (workers, every DEAD_LETTER_RESOLVE_MS) takes out what was settled since (a
 *   compensation the sweeper redid, an order the sweep expired, a reservation the reconciler
 *   released), and records any DLQ message the log lacks (it was away when it was dead-lettered);
 * - `redrive` sends matching messages back to their work queue with fresh retries, or drops them
 *   when their saga is settled already.
 * A DLQ cannot be read without taking its messages, so every pass gets them unacknowledged on
 * one channel and acks or puts back each one: another pass or redrive at the same time sees the
 * others, never the same message twice.
 */
export class DeadLetters {
  private readonly watched: Watched[];

  constructor(private readonly deps: DeadLettersDeps) {
    this.watched = watchedQueues(deps.topology);
  }

  /** One pass over every DLQ; returns how many messages it took out of each. */
  async resolveOnce(): Promise<Record<string, number>> {
    const resolved: Record<string, number> = {};
    for (const watched of this.watched) {
      const count = await this.passOver(watched, async (held, bodies) => {
        await this.recordMissing(watched, held);
        return { leave: await watched.settled(this.deps.db, bodies), resolution: 'settled' };
      });
      if (count > 0) resolved[watched.queue.deadLetterQueue] = count;
    }
    return resolved;
  }

  /**
   * Sends the matching dead letters (every consumer's, or `listener`'s; every saga's, or those of
   * `sagaIds`; every one, or those of `ids`, as the dead-letter list gives them) back to their work queue with their delivery count reset; one whose saga is
   * settled already (COMPENSATED, or this listener's part done) is dropped instead. Either way it
   * leaves the DLQ. A redriven compensation takes effect once, whatever else delivers it.
   */
  async redrive(filter: { listener?: ConsumerName; sagaIds?: string[]; ids?: string[] }): Promise<RedriveResult> {
    const result: RedriveResult = { redriven: 0, dropped: 0 };
    const sagaIds = filter.sagaIds ? new Set(filter.sagaIds) : null;
    const ids = filter.ids ? new Set(filter.ids) : null;
    const found = new Set<string>();
    // A resolver pass holds a DLQ's messages for a moment: dead letters asked for by id that were
    // not seen are looked for again, a few times, once it has put them back.
    for (let attempt = 0; attempt === 0 || (ids && attempt < 10 && [...ids].some((id) => !found.has(id))); attempt++) {
      if (attempt > 0) await sleep(100);
      await this.redrivePass(filter.listener, sagaIds, ids, found, result);
    }
    if (result.redriven + result.dropped > 0)
      this.deps.logger.info('dead letters redriven', { ...result, listener: filter.listener, sagaIds: filter.sagaIds?.slice(0, 20) });
    return result;
  }

  private async redrivePass(
    listener: ConsumerName | undefined,
    sagaIds: Set<string> | null,
    ids: Set<string> | null,
    found: Set<string>,
    result: RedriveResult,
  ): Promise<void> {
    for (const watched of this.watched) {
      if (listener && listener !== watched.consumer) continue;
      await this.passOver(watched, async (held, bodies) => {
        await this.recordMissing(watched, held);
        const matching = new Set(
          bodies
            .map((body, i) => [body, i] as const)
            .filter(([body, i]) => (!sagaIds || sagaIds.has(String((body as { sagaId?: unknown } | null)?.sagaId))) && (!ids || ids.has(idOf(held[i]))))
            .map(([, i]) => i),
        );
        for (const i of matching) found.add(idOf(held[i]));
        const settled = await watched.settled(this.deps.db, bodies);
        const dropped = [...matching].filter((i) => settled.has(i));
        const redriven: number[] = [];
        for (const i of matching) {
          if (settled.has(i)) continue;
          try {
            await this.sendBack(watched.queue, held[i]);
            redriven.push(i);
          } catch (err) {
            this.deps.logger.warn('dead letter not redriven: the broker refused the copy', { queue: watched.queue.deadLetterQueue, error: errorMessage(err) });
          }
        }
        await this.deps.log.resolve(
          dropped.map((i) => idOf(held[i])),
          'dropped',
        );
        await this.deps.log.resolve(
          redriven.map((i) => idOf(held[i])),
          'redriven',
        );
        result.dropped += dropped.length;
        result.redriven += redriven.length;
        return { leave: new Set([...dropped, ...redriven]), resolution: null };
      });
    }
  }

  /**
   * Takes up to a batch of a DLQ's messages unacknowledged, lets `decide` pick those that leave,
   * acks them and puts every other one back in order.
   */
  private passOver(
    watched: Watched,
    decide: (held: GetMessage[], bodies: unknown[]) => Promise<{ leave: Set<number>; resolution: 'settled' | null }>,
  ): Promise<number> {
    const { broker } = this.deps;
    const dlq = watched.queue.deadLetterQueue;
    return broker.withChannel(async (channel) => {
      const { messageCount } = await channel.checkQueue(dlq);
      const held: GetMessage[] = [];
      for (let i = 0; i < Math.min(messageCount, this.deps.batchSize ?? 1000); i++) {
        const msg = await channel.get(dlq, { noAck: false });
        if (!msg) break;
        held.push(msg);
      }
      if (held.length === 0) return 0;
      let leave = new Set<number>();
      let settled: boolean;
      try {
        const decision = await decide(held, held.map(parseBody));
        leave = decision.leave;
        settled = decision.resolution === 'settled';
        if (decision.resolution)
          await this.deps.log.resolve(
            [...leave].map((i) => idOf(held[i])),
            decision.resolution,
          );
      } finally {
        held.forEach((msg, i) => (leave.has(i) ? channel.ack(msg) : channel.nack(msg, false, true)));
      }
      if (settled && leave.size > 0) this.deps.onResolved?.(dlq, leave.size);
      return leave.size;
    });
  }

  /** Publishes a dead letter back to its work queue (default exchange), as a first delivery. */
  private async sendBack(queue: WorkQueue, msg: GetMessage): Promise<void> {
    const headers: Record<string, unknown> = { ...msg.properties.headers, 'x-redriven-at': new Date().toISOString() };
    for (const name of ['x-death', 'x-deliveries', 'x-dlq-reason', 'x-dlq-error', 'x-dlq-queue', 'x-dlq-at', 'x-dlq-id', 'x-last-error']) delete headers[name];
    await this.deps.broker.publishBuffer('', queue.name, msg.content, {
      messageId: msg.properties.messageId,
      contentType: msg.properties.contentType,
      headers,
    });
  }

  /** DLQ messages the log lacks (the database was away when they were dead-lettered): recorded now. */
  private async recordMissing(watched: Watched, held: GetMessage[]): Promise<void> {
    await this.deps.log.recordAll(held.map((msg) => fromDeadLetter(watched.queue, msg)));
  }
}
