import amqp, {
  type Channel,
  type ChannelModel,
  type ConfirmChannel,
  type ConsumeMessage,
  type Options,
  type RecoveringChannelModel,
} from 'amqplib';
import { randomUUID } from 'node:crypto';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { ExchangeSpec, QueueSpec, WorkQueue } from './topology';

/**
 * One RabbitMQ connection per process, with amqplib's opt-in recovery: after every (re)connect
 * the topology is declared again, the publishing confirm channel is recreated and every
 * registered consumer starts again. Channels of a dead connection are never used: a message whose
 * channel died is not acked (the broker redelivers it; listeners are idempotent).
 */

export class BrokerUnavailableError extends Error {
  constructor(message = 'RabbitMQ is not connected') {
    super(message);
    this.name = 'BrokerUnavailableError';
  }
}

/** Thrown by a handler for a message that no retry can fix: it goes to the DLQ at once. */
export class UnprocessableMessageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnprocessableMessageError';
  }
}

export interface PublishOptions {
  messageId: string;
  headers?: Record<string, unknown>;
}

export interface Delivery<T = unknown> {
  body: T;
  routingKey: string;
  /** 1 for the first delivery; counted from the broker's x-death header. */
  deliveryCount: number;
  redelivered: boolean;
  messageId?: string;
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

type AnyConsumerSpec = ConsumerSpec | BatchConsumerSpec;

export interface BrokerOptions {
  url: string;
  connectionName: string;
  deadLetterExchange: string;
  exchanges: ExchangeSpec[];
  queues: QueueSpec[];
  logger: Logger;
  /**
   * Called once a message's DLQ copy is confirmed, before the original is acked (to record it:
   * the DLQ cannot be browsed without consuming it). A failure is logged; the message is acked
   * all the same, since its DLQ copy exists.
   */
  onDeadLettered?: (message: DeadLetteredMessage) => Promise<void> | void;
}

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

interface LiveChannel<C extends Channel = Channel> {
  channel: C;
  open: boolean;
}

export class Broker {
  private connection: RecoveringChannelModel | null = null;
  /** The connection of the moment, set by each (re)connect's setup. */
  private model: ChannelModel | null = null;
  private publisher: LiveChannel<ConfirmChannel> | null = null;
  private readonly consumers: AnyConsumerSpec[] = [];
  private readonly consumerChannels = new Map<AnyConsumerSpec, LiveChannel & { tag?: string }>();
  private readonly inFlight = new Set<Promise<void>>();
  private consuming = true;
  private connected = false;
  private closing = false;

  constructor(private readonly options: BrokerOptions) {}

  get isConnected(): boolean {
    return this.connected;
  }

  /** Consumers registered before or after start run on every connection from then on. */
  async consume(spec: AnyConsumerSpec): Promise<void> {
    this.consumers.push(spec);
    if (this.connected && this.model && this.consuming) await this.startConsumer(this.model, spec);
  }

  /**
   * Connects, retrying with backoff for as long as it takes (each failure is logged with the
   * broker's name), and resolves once the topology is declared.
   */
  async start(): Promise<void> {
    const { logger } = this.options;
    this.connection = await amqp.connect(this.options.url, {
      // Nagle's algorithm would hold a publish (or an ack) back until the previous segment is
      // acknowledged: milliseconds of latency on every confirmed publish. amqplib leaves it on.
      noDelay: true,
      clientProperties: { connection_name: this.options.connectionName },
      recovery: {
        initialDelay: 250,
        maxDelay: 5_000,
        maxRetries: Infinity,
        waitForConnect: false,
        setup: (model: ChannelModel) => this.setup(model),
      },
    });
    this.connection.on('connect', () => {
      this.connected = true;
      logger.info('rabbitmq connected', { dependency: 'rabbitmq', connection: this.options.connectionName });
    });
    this.connection.on('disconnect', (err: Error) => {
      this.connected = false;
      this.publisher = null;
      this.model = null;
      logger.warn('rabbitmq disconnected, reconnecting', { dependency: 'rabbitmq', error: errorMessage(err) });
    });
    this.connection.on('connect-failed', (err: Error) =>
      logger.warn('rabbitmq unreachable, retrying', { dependency: 'rabbitmq', error: errorMessage(err) }),
    );
    this.connection.on('error', (err: Error) => logger.warn('rabbitmq connection error', { dependency: 'rabbitmq', error: errorMessage(err) }));
    this.connection.on('handler-error', (err: Error, event: string) =>
      logger.error('rabbitmq event handler threw', { event, error: errorMessage(err) }),
    );
    this.connection.on('blocked', (reason: string) => logger.warn('rabbitmq blocked the connection', { reason }));
    await this.connection.waitForConnect();
  }

  /** Runs after every (re)connect, before the connection is handed out. */
  private async setup(model: ChannelModel): Promise<void> {
    await this.declareTopology(model);
    await this.openPublisher(model);
    this.model = model;
    this.consumerChannels.clear();
    if (this.consuming) {
      for (const spec of this.consumers) await this.startConsumer(model, spec);
    }
  }

  private async declareTopology(model: ChannelModel): Promise<void> {
    const declare = await model.createChannel();
    declare.on('error', () => {});
    try {
      for (const exchange of this.options.exchanges) {
        await declare.assertExchange(exchange.name, exchange.type, { durable: true });
      }
      for (const queue of this.options.queues) {
        await declare.assertQueue(queue.name, { durable: true, arguments: queue.arguments }).catch((err) => {
          throw new Error(
            `cannot declare queue ${queue.name} (${errorMessage(err)}); if its arguments changed (e.g. RETRY_DELAY_MS), delete the queue or restore the setting`,
          );
        });
        for (const binding of queue.bindings) {
          await declare.bindQueue(queue.name, binding.exchange, binding.routingKey);
        }
      }
    } finally {
      await declare.close().catch(() => {});
    }
  }

  private async openPublisher(model: ChannelModel): Promise<void> {
    const publisher: LiveChannel<ConfirmChannel> = { channel: await model.createConfirmChannel(), open: true };
    this.watch(publisher, 'publisher', model, async () => {
      if (this.publisher === publisher) this.publisher = null;
      await this.declareTopology(model);
      await this.openPublisher(model);
    });
    this.publisher = publisher;
  }

  private async startConsumer(model: ChannelModel, spec: AnyConsumerSpec): Promise<void> {
    const channel = await model.createChannel();
    const live: LiveChannel & { tag?: string } = { channel, open: true };
    const restart = async () => {
      if (!this.consuming) return;
      await this.declareTopology(model);
      await this.startConsumer(model, spec);
    };
    this.watch(live, `consumer ${spec.queue.name}`, model, restart);
    await channel.prefetch(spec.prefetch);
    const track = (work: Promise<void>) => {
      this.inFlight.add(work);
      void work.finally(() => this.inFlight.delete(work));
    };
    const accept = 'batchHandler' in spec ? this.batcher(live, spec, track) : (msg: ConsumeMessage) => track(this.handle(live, spec, msg));
    const { consumerTag } = await channel.consume(spec.queue.name, (msg) => {
      if (!msg) {
        // The broker cancelled the consumer (its queue was deleted): declare it again, consume again.
        this.options.logger.warn('rabbitmq cancelled a consumer, restarting it', { queue: spec.queue.name });
        live.open = false;
        void channel.close().catch(() => {});
        return;
      }
      accept(msg);
    });
    live.tag = consumerTag;
    this.consumerChannels.set(spec, live);
  }

  /**
   * Marks the channel dead when it closes. A channel can close while its connection lives (a
   * publish to an exchange that was deleted, a queue deleted under its consumer): amqplib's
   * recovery only reacts to the connection, so `reopen` brings the channel back, after a short
   * pause, as long as the connection it belonged to is still the current one.
   */
  private watch(live: LiveChannel, role: string, model: ChannelModel, reopen: () => Promise<void>): void {
    live.channel.on('close', () => {
      live.open = false;
      const attempt = () => {
        if (this.model !== model || this.closing) return; // the connection went: setup() reopens everything
        this.options.logger.warn('rabbitmq channel closed, reopening it', { channel: role });
        reopen().catch((err) => {
          this.options.logger.error('could not reopen a rabbitmq channel, retrying', { channel: role, error: errorMessage(err) });
          setTimeout(attempt, 2_000).unref();
        });
      };
      setTimeout(attempt, 500).unref();
    });
    live.channel.on('error', (err: Error) => this.options.logger.warn('rabbitmq channel error', { channel: role, error: errorMessage(err) }));
    live.channel.on('handler-error', (err: Error, event: string) =>
      this.options.logger.error('rabbitmq channel handler threw', { channel: role, event, error: errorMessage(err) }),
    );
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
    this.options.logger.warn('message handling failed, will retry', {
      queue: spec.queue.name,
      routingKey: delivery.routingKey,
      sagaId: sagaIdOf(delivery),
      deliveryCount: delivery.deliveryCount,
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
      await this.publishRaw(this.options.deadLetterExchange, tier.queue, msg.content, {
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

  /**
   * Collects a channel's messages into batches. Messages left in the buffer when the channel dies
   * or the process stops are simply not acked: the broker delivers them again.
   */
  private batcher(live: LiveChannel, spec: BatchConsumerSpec, track: (work: Promise<void>) => void): (msg: ConsumeMessage) => void {
    const buffer: ConsumeMessage[] = [];
    const acks = new AckCoalescer(live);
    let timer: NodeJS.Timeout | null = null;
    let running = 0;
    const flush = () => {
      if (timer) clearTimeout(timer);
      timer = null;
      while (running < spec.batchesInFlight && buffer.length > 0 && live.open && this.consuming) {
        running++;
        const batch = buffer.splice(0, spec.maxBatch);
        track(
          this.handleBatch(live, spec, batch, acks).finally(() => {
            running--;
            // What arrived meanwhile has waited long enough: go on at once.
            flush();
          }),
        );
      }
    };
    return (msg) => {
      acks.track(msg);
      buffer.push(msg);
      if (buffer.length >= spec.maxBatch) flush();
      // With every slot busy, the batch that ends next picks the buffer up.
      else if (!timer && running < spec.batchesInFlight) timer = setTimeout(flush, spec.lingerMs);
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
      this.options.logger.warn('batch handling failed, its messages will be retried', {
        queue: spec.queue.name,
        messages: deliveries.length,
        error: errorMessage(err),
      });
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

  /** Publishes the message to the queue's DLQ with the reason in its headers, then acks it. */
  private async deadLetter(live: LiveChannel, queue: WorkQueue, msg: ConsumeMessage, reason: string, error: string): Promise<void> {
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
      await this.publishRaw(this.options.deadLetterExchange, queue.deadLetterQueue, msg.content, {
        persistent: true,
        messageId: msg.properties.messageId,
        contentType: msg.properties.contentType,
        headers,
      });
    } catch (err) {
      // Not acked: the broker redelivers it and the next attempt dead-letters it again.
      this.options.logger.error('could not move message to its DLQ', { queue: queue.name, error: errorMessage(err) });
      nack(live, msg, true);
      return;
    }
    this.options.logger.error('message moved to DLQ', {
      queue: queue.name,
      dlq: queue.deadLetterQueue,
      reason,
      error,
      routingKey: originalRoutingKey(msg),
      sagaId: sagaIdOf(readDelivery(msg, queue.name)),
      messageId: msg.properties.messageId,
    });
    const delivery = readDelivery(msg, queue.name);
    try {
      await this.options.onDeadLettered?.({
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
      this.options.logger.warn('dead letter not recorded; the resolver records it from the DLQ later', { queue: queue.name, error: errorMessage(err) });
    }
    ack(live, msg);
  }

  /** Publishes a persistent JSON message and resolves when the broker confirms it. */
  publish(exchange: string, routingKey: string, payload: unknown, options: PublishOptions): Promise<void> {
    return this.publishRaw(exchange, routingKey, Buffer.from(JSON.stringify(payload)), {
      persistent: true,
      contentType: 'application/json',
      messageId: options.messageId,
      headers: options.headers,
      timestamp: Math.floor(Date.now() / 1000),
    });
  }

  /** Publishes bytes as they are (a dead letter sent back), persistent, and resolves on the confirm. */
  publishBuffer(exchange: string, routingKey: string, content: Buffer, options: { messageId?: string; contentType?: string; headers?: Record<string, unknown> }): Promise<void> {
    return this.publishRaw(exchange, routingKey, content, { persistent: true, ...options });
  }

  private publishRaw(exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<void> {
    const publisher = this.publisher;
    if (!publisher || !publisher.open) return Promise.reject(new BrokerUnavailableError());
    return new Promise<void>((resolve, reject) => {
      try {
        // The callback fires on the broker's ack or nack; many publishes are in flight at once.
        publisher.channel.publish(exchange, routingKey, content, options, (err) =>
          err ? reject(new BrokerUnavailableError(`publish not confirmed: ${errorMessage(err)}`)) : resolve(),
        );
      } catch (err) {
        reject(new BrokerUnavailableError(errorMessage(err)));
      }
    });
  }

  /** Stops new deliveries and waits for the messages being handled to be acked. */
  async stopConsuming(): Promise<void> {
    this.consuming = false;
    for (const live of this.consumerChannels.values()) {
      if (live.open && live.tag) await live.channel.cancel(live.tag).catch(() => {});
    }
    await Promise.allSettled([...this.inFlight]);
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.stopConsuming();
    this.connected = false;
    await this.connection?.close().catch(() => {});
    this.connection = null;
  }

  /** A short-lived channel for operators' and tests' one-off calls (purge, delete, inspect). */
  async withChannel<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    if (!this.connection) throw new BrokerUnavailableError();
    const channel = await this.connection.createChannel();
    channel.on('error', () => {});
    try {
      return await work(channel);
    } finally {
      await channel.close().catch(() => {});
    }
  }
}

/**
 * Acks a batch consumer's messages with as few frames as it can: one `multiple` ack for the
 * longest run of settled deliveries from the oldest one unsettled, rather than one frame per
 * message (the worker persists thousands a second). A delivery still being handled, or still
 * waiting for its batch, stops the run: a multiple ack never covers it. Messages retried or
 * dead-lettered were settled one by one already and are only passed over.
 */
class AckCoalescer {
  /** Delivery tags in the order the broker sent them (increasing on one channel). */
  private readonly order: number[] = [];
  private head = 0;
  /** Settled tags -> whether they still need the ack. */
  private readonly done = new Map<number, boolean>();
  private readonly byTag = new Map<number, ConsumeMessage>();

  constructor(private readonly live: LiveChannel) {}

  track(msg: ConsumeMessage): void {
    this.order.push(msg.fields.deliveryTag);
    this.byTag.set(msg.fields.deliveryTag, msg);
  }

  settled(msg: ConsumeMessage, needsAck: boolean): void {
    this.done.set(msg.fields.deliveryTag, needsAck);
  }

  /** Acks the settled run from the oldest delivery, in one frame. */
  flush(): void {
    let last: ConsumeMessage | null = null;
    while (this.head < this.order.length) {
      const tag = this.order[this.head];
      const needsAck = this.done.get(tag);
      if (needsAck === undefined) break;
      if (needsAck) last = this.byTag.get(tag)!;
      this.done.delete(tag);
      this.byTag.delete(tag);
      this.head++;
    }
    if (this.head > 1024) {
      this.order.splice(0, this.head);
      this.head = 0;
    }
    if (!last || !this.live.open) return;
    try {
      this.live.channel.ack(last, true);
    } catch {
      // The channel closed: the broker redelivers; the handler's idempotency absorbs it.
    }
  }
}

/** The message as handlers see it, or null when its body is not JSON. */
function readDelivery(msg: ConsumeMessage, queueName: string): Delivery | null {
  let body: unknown;
  try {
    body = JSON.parse(msg.content.toString('utf8'));
  } catch {
    return null;
  }
  return {
    body,
    routingKey: originalRoutingKey(msg),
    deliveryCount: deliveriesSoFar(msg, queueName) + 1,
    redelivered: msg.fields.redelivered,
    messageId: msg.properties.messageId,
  };
}

function ack(live: LiveChannel, msg: ConsumeMessage): void {
  // An ack on a channel that closed would be for a delivery tag the broker has forgotten; the
  // broker redelivers the message instead, and the handler's idempotency absorbs it.
  if (!live.open) return;
  try {
    live.channel.ack(msg);
  } catch {
    // The channel closed between the check and the ack: same as above.
  }
}

function nack(live: LiveChannel, msg: ConsumeMessage, requeue: boolean): void {
  if (!live.open) return;
  try {
    live.channel.nack(msg, false, requeue);
  } catch {
    // The channel closed: the broker redelivers the message.
  }
}

type Death = { queue?: string; reason?: string; count?: number; exchange?: string; 'routing-keys'?: string[] };

/** The broker's record of the message's first dead-lettering (x-death lists the newest first). */
function firstDeath(msg: ConsumeMessage): Death | undefined {
  const deaths = msg.properties.headers?.['x-death'];
  return Array.isArray(deaths) && deaths.length > 0 ? (deaths.at(-1) as Death) : undefined;
}

/** Where the message was first published to, before any retry or dead-lettering. */
function originalExchange(msg: ConsumeMessage): string {
  const header = msg.properties.headers?.['x-original-exchange'];
  return typeof header === 'string' ? header : (firstDeath(msg)?.exchange ?? msg.fields.exchange);
}

/** The routing key it was first published with (a compensation's tag), not a retry queue's name. */
function originalRoutingKey(msg: ConsumeMessage): string {
  const header = msg.properties.headers?.['x-original-routing-key'];
  return typeof header === 'string' ? header : (firstDeath(msg)?.['routing-keys']?.[0] ?? msg.fields.routingKey);
}

const sagaIdOf = (delivery: Delivery | null): string | undefined => {
  const sagaId = (delivery?.body as { sagaId?: unknown } | null)?.sagaId;
  return typeof sagaId === 'string' ? sagaId : undefined;
};

/** Deliveries a message has had, as a consumer moving it into a retry tier counted them. */
export const DELIVERIES_HEADER = 'x-deliveries';

/**
 * Deliveries that ended in a failure so far: the count a consumer wrote when it moved the
 * message into a retry tier, or the broker's count of rejections from this queue (x-death),
 * whichever is higher (a copy that could not be made falls back to a rejection: never fewer
 * retries than configured, at most one more).
 */
export function deliveriesSoFar(msg: Pick<ConsumeMessage, 'properties'>, queue: string): number {
  const counted = Number(msg.properties.headers?.[DELIVERIES_HEADER] ?? 0);
  const deaths = msg.properties.headers?.['x-death'];
  const rejected = Array.isArray(deaths)
    ? deaths.filter((death: Death) => death.queue === queue && death.reason === 'rejected').reduce((sum: number, death: Death) => sum + Number(death.count ?? 0), 0)
    : 0;
  return Math.max(Number.isFinite(counted) ? counted : 0, rejected);
}
