import { randomUUID } from 'node:crypto';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import type { Logger } from '../../observability/logger';
import { errorMessage } from '../../observability/logger';
import type { WorkQueue } from '../topology';
import { AckCoalescer } from './ack-coalescer';
import { Batcher } from './batcher';
import type { ManagedConnection } from './connection';
import { ack, DELIVERIES_HEADER, deliveriesSoFar, type Delivery, type LiveChannel, nack, originalExchange, originalRoutingKey, readDelivery, sagaIdOf } from './deliveries';
import type { ConfirmPublisher } from './publisher';

/** Thrown by a handler for a message that no retry can fix: it goes to the DLQ at once. */
export class UnprocessableMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnprocessableMessageError';
  }
}

export type MessageHandler = (delivery: Delivery) => Promise<void>;

/**
 * Handles a batch at once. Resolving acks every message of the batch, except those it names
 * as unprocessable (they go to the DLQ); throwing sends each message to its retry (or, past
 * maxDeliveries, to the DLQ).
 */
export type BatchHandler = (deliveries: Delivery[]) => Promise<BatchOutcome | void>;

export interface BatchOutcome {
  unprocessable?: Array<{ delivery: Delivery; error: string }>;
}

interface ConsumerBase {
  /** Who consumes (a listener's name): the consumer tag in the management UI starts with it. */
  name: string;
  queue: WorkQueue;
  prefetch: number;
  maxDeliveries: number;
}

/** One message at a time (up to `prefetch` of them concurrently). */
export interface ConsumerSpec extends ConsumerBase {
  handler: MessageHandler;
}

/**
 * Messages in batches of up to `maxBatch`: a batch starts when it is full, or `lingerMs` after
 * its first message. Up to `batchesInFlight` batches run at once per consumer (a batch mostly
 * waits for the database); the next fills up meanwhile.
 */
export interface BatchConsumerSpec extends ConsumerBase {
  batchHandler: BatchHandler;
  maxBatch: number;
  lingerMs: number;
  batchesInFlight: number;
}

export type AnyConsumerSpec = ConsumerSpec | BatchConsumerSpec;

/** A message just moved to a DLQ, as the broker layer tells of it. */
export interface DeadLetteredMessage {
  /** The `x-dlq-id` header of its DLQ copy. */
  id: string;
  /** The work queue it was dead-lettered from. */
  queue: string;
  reason: string;
  error: string;
  deliveries: number;
  messageId: string | null;
  body: unknown;
  /** Epoch ms. */
  at: number;
}

export interface ConsumersDeps {
  connection: ManagedConnection;
  /** Retry and DLQ copies go out through the publishing connection, confirmed before the ack. */
  publisher: ConfirmPublisher;
  deadLetterExchange: string;
  declare(model: ChannelModel): Promise<void>;
  logger: Logger;
  /** The rest of the consumer tag, after the consumer's name (the process's connection name). */
  tagSuffix: string;
  /**
   * Called once a message's DLQ copy is confirmed, before the original is acked (to record it:
   * the DLQ cannot be browsed without consuming it). A failure is logged; the message is acked
   * all the same, since its DLQ copy exists.
   */
  onDeadLettered?: (message: DeadLetteredMessage) => Promise<void> | void;
}

/**
 * The consuming side, on a connection of its own (a publisher the broker blocks must not hold
 * acks back): every registered consumer runs on every connection from then on, each on its own
 * channel with its prefetch; a delivery is acked after its handler's effect is committed, moved
 * into its retry tier when it fails, and into its DLQ (with the reason in its headers) when it
 * has had its deliveries. A message whose channel died is never acked: the broker redelivers it.
 */
export class Consumers {
  private readonly specs: AnyConsumerSpec[] = [];
  private readonly channels = new Map<AnyConsumerSpec, LiveChannel & { tag?: string }>();
  private readonly inFlight = new Set<Promise<void>>();
  private consuming = true;

  constructor(private readonly deps: ConsumersDeps) {}

  get count(): number {
    return this.specs.length;
  }

  async register(spec: AnyConsumerSpec): Promise<void> {
    this.specs.push(spec);
    const model = this.deps.connection.model;
    if (model && this.consuming) await this.start(model, spec);
  }

  /** Part of the connection's setup: every consumer again, on fresh channels. */
  async startAll(model: ChannelModel): Promise<void> {
    this.channels.clear();
    if (!this.consuming) return;
    for (const spec of this.specs) await this.start(model, spec);
  }

  /** Stops new deliveries and waits for the messages being handled to be settled. */
  async stop(): Promise<void> {
    this.consuming = false;
    for (const live of this.channels.values()) {
      if (live.open && live.tag) await live.channel.cancel(live.tag).catch(() => {});
    }
    await Promise.allSettled([...this.inFlight]);
  }

  private track(work: Promise<void>): Promise<void> {
    this.inFlight.add(work);
    void work.finally(() => this.inFlight.delete(work));
    return work;
  }

  private async start(model: ChannelModel, spec: AnyConsumerSpec): Promise<void> {
    const channel = await model.createChannel();
    const live: LiveChannel & { tag?: string } = { channel, open: true };
    this.deps.connection.watch(live, `consumer ${spec.queue.name}`, model, async () => {
      if (!this.consuming) return;
      await this.deps.declare(model);
      await this.start(model, spec);
    });
    await channel.prefetch(spec.prefetch);
    const accept = 'batchHandler' in spec ? this.batchAcceptor(live, spec) : (msg: ConsumeMessage) => void this.track(this.handle(live, spec, msg));
    const { consumerTag } = await channel.consume(
      spec.queue.name,
      (msg) => {
        if (!msg) {
          // The broker cancelled the consumer (its queue was deleted): declare it again, consume again.
          this.deps.logger.warn('rabbitmq cancelled a consumer, restarting it', { queue: spec.queue.name });
          live.open = false;
          void channel.close().catch(() => {});
          return;
        }
        accept(msg);
      },
      { consumerTag: `${spec.name} ${this.deps.tagSuffix} ${randomUUID().slice(0, 8)}` },
    );
    live.tag = consumerTag;
    this.channels.set(spec, live);
  }

  private async handle(live: LiveChannel, spec: ConsumerSpec, msg: ConsumeMessage): Promise<void> {
    const delivery = readDelivery(msg, spec.queue.name);
    if (!delivery) {
      await this.deadLetter(live, spec.queue, msg, 'unreadable', 'message body is not JSON');
      return;
    }
    try {
      await spec.handler(delivery);
      ack(live, msg);
    } catch (err) {
      const unprocessable = err instanceof UnprocessableMessageError;
      if (unprocessable || delivery.deliveryCount >= spec.maxDeliveries) {
        await this.deadLetter(live, spec.queue, msg, unprocessable ? 'unprocessable' : 'retries-exhausted', errorMessage(err));
      } else {
        await this.retryLater(live, spec, msg, delivery, errorMessage(err));
      }
    }
  }

  /**
   * Moves a failed message into the retry tier for its delivery count, with the count, its
   * original exchange and routing key and the error in its headers; acks it once the broker has
   * confirmed the copy (a crash in between delivers it twice: handlers are idempotent). Should
   * the copy fail, the message is rejected instead and dead-letters into the first tier.
   */
  private async retryLater(live: LiveChannel, spec: ConsumerSpec, msg: ConsumeMessage, delivery: Delivery, error: string): Promise<void> {
    const tiers = spec.queue.retryTiers;
    const tier = tiers[Math.min(delivery.deliveryCount, tiers.length) - 1];
    this.deps.logger.warn('message handling failed, will retry', {
      queue: spec.queue.name,
      listener: spec.name,
      routingKey: delivery.routingKey,
      sagaId: sagaIdOf(delivery),
      deliveryCount: delivery.deliveryCount,
      attempt: delivery.deliveryCount,
      maxDeliveries: spec.maxDeliveries,
      retryInMs: tier.delayMs,
      error,
    });
    const headers = {
      ...msg.properties.headers,
      [DELIVERIES_HEADER]: delivery.deliveryCount,
      'x-original-exchange': originalExchange(msg),
      'x-original-routing-key': delivery.routingKey,
      'x-last-error': error.slice(0, 1000),
    };
    try {
      await this.deps.publisher.publish(this.deps.deadLetterExchange, tier.queue, msg.content, {
        persistent: true,
        messageId: msg.properties.messageId,
        contentType: msg.properties.contentType,
        timestamp: msg.properties.timestamp,
        headers,
      });
    } catch {
      nack(live, msg, false);
      return;
    }
    ack(live, msg);
  }

  /** Collects a channel's messages into batches; those left when the channel dies are simply not acked. */
  private batchAcceptor(live: LiveChannel, spec: BatchConsumerSpec): (msg: ConsumeMessage) => void {
    const acks = new AckCoalescer(live);
    const batcher = new Batcher<ConsumeMessage>(
      { maxBatch: spec.maxBatch, lingerMs: spec.lingerMs, inFlight: spec.batchesInFlight, accepting: () => live.open && this.consuming },
      (batch) => this.track(this.handleBatch(live, spec, batch, acks)),
    );
    return (msg) => {
      acks.track(msg);
      batcher.add(msg);
    };
  }

  private async handleBatch(live: LiveChannel, spec: BatchConsumerSpec, messages: ConsumeMessage[], acks: AckCoalescer): Promise<void> {
    try {
      await this.handleBatchMessages(live, spec, messages, acks);
    } finally {
      // Every message of the batch is settled now: acked, retried or dead-lettered one by one.
      acks.flush();
    }
  }

  private async handleBatchMessages(live: LiveChannel, spec: BatchConsumerSpec, messages: ConsumeMessage[], acks: AckCoalescer): Promise<void> {
    const deliveries: Array<{ msg: ConsumeMessage; delivery: Delivery }> = [];
    for (const msg of messages) {
      const delivery = readDelivery(msg, spec.queue.name);
      if (delivery) deliveries.push({ msg, delivery });
      else {
        await this.deadLetter(live, spec.queue, msg, 'unreadable', 'message body is not JSON');
        acks.settled(msg, false);
      }
    }
    if (deliveries.length === 0) return;
    let outcome: BatchOutcome | void;
    try {
      outcome = await spec.batchHandler(deliveries.map((d) => d.delivery));
    } catch (err) {
      this.deps.logger.warn('batch handling failed, its messages will be retried', { queue: spec.queue.name, messages: deliveries.length, error: errorMessage(err) });
      for (const { msg, delivery } of deliveries) {
        if (delivery.deliveryCount >= spec.maxDeliveries) await this.deadLetter(live, spec.queue, msg, 'retries-exhausted', errorMessage(err));
        else nack(live, msg, false);
        acks.settled(msg, false);
      }
      return;
    }
    const unprocessable = new Map((outcome?.unprocessable ?? []).map((u) => [u.delivery, u.error]));
    for (const { msg, delivery } of deliveries) {
      const error = unprocessable.get(delivery);
      if (error === undefined) acks.settled(msg, true);
      else {
        await this.deadLetter(live, spec.queue, msg, 'unprocessable', error);
        acks.settled(msg, false);
      }
    }
  }

  /** Publishes the message to the queue's DLQ with the reason in its headers, records it, then acks it. */
  private async deadLetter(live: LiveChannel, queue: WorkQueue, msg: ConsumeMessage, reason: string, error: string): Promise<void> {
    const { logger } = this.deps;
    const at = Date.now();
    const id = randomUUID();
    const headers = {
      ...msg.properties.headers,
      'x-dlq-id': id,
      'x-dlq-reason': reason,
      'x-dlq-error': error.slice(0, 1000),
      'x-dlq-queue': queue.name,
      'x-dlq-at': new Date(at).toISOString(),
      'x-original-exchange': originalExchange(msg),
      'x-original-routing-key': originalRoutingKey(msg),
    };
    try {
      await this.deps.publisher.publish(this.deps.deadLetterExchange, queue.deadLetterQueue, msg.content, {
        persistent: true,
        messageId: msg.properties.messageId,
        contentType: msg.properties.contentType,
        headers,
      });
    } catch (err) {
      // Not acked: the broker redelivers it and the next attempt dead-letters it again.
      logger.error('could not move message to its DLQ', { queue: queue.name, error: errorMessage(err) });
      nack(live, msg, true);
      return;
    }
    const delivery = readDelivery(msg, queue.name);
    logger.error('message moved to DLQ', {
      queue: queue.name,
      dlq: queue.deadLetterQueue,
      reason,
      error,
      routingKey: originalRoutingKey(msg),
      sagaId: sagaIdOf(delivery),
      messageId: msg.properties.messageId,
    });
    try {
      await this.deps.onDeadLettered?.({
        id,
        queue: queue.name,
        reason,
        error,
        deliveries: delivery?.deliveryCount ?? deliveriesSoFar(msg, queue.name) + 1,
        messageId: msg.properties.messageId ?? null,
        body: delivery?.body ?? null,
        at,
      });
    } catch (err) {
      logger.warn('dead letter not recorded; the resolver records it from the DLQ later', { queue: queue.name, error: errorMessage(err) });
    }
    ack(live, msg);
  }
}
