import type { ChannelModel, Channel } from 'amqplib';
import type { Logger } from '../observability/logger';
import { BrokerUnavailableError, ManagedConnection } from './amqp/connection';
import { Consumers, type AnyConsumerSpec, type DeadLetteredMessage } from './amqp/consumers';
import { ConfirmPublisher } from './amqp/publisher';
import { declareTopology, type ExchangeSpec, type QueueSpec } from './topology';

export { BrokerUnavailableError } from './amqp/connection';
export {
  UnprocessableMessageError,
  type AnyConsumerSpec,
  type BatchConsumerSpec,
  type BatchHandler,
  type BatchOutcome,
  type ConsumerSpec,
  type DeadLetteredMessage,
  type MessageHandler,
} from './amqp/consumers';
export { DELIVERIES_HEADER, deliveriesSoFar, type Delivery } from './amqp/deliveries';

export interface PublishOptions {
  messageId: string;
  headers?: Record<string, unknown>;
}

export interface BrokerOptions {
  url: string;
  connectionName: string;
  deadLetterExchange: string;
  exchanges: ExchangeSpec[];
  queues: QueueSpec[];
  logger: Logger;
  /** See ConsumersDeps.onDeadLettered: records a dead letter before its ack. */
  onDeadLettered?: (message: DeadLetteredMessage) => Promise<void> | void;
}

/**
 * The service's RabbitMQ, as RabbitMQ recommends: publishing and consuming on separate
 * connections (`<name> publish`, `<name> consume` in the management UI), so a publisher the
 * broker blocks under a memory alarm never holds back the consumers' acks. Each connection
 * recovers by itself and declares the topology again after every reconnect; the consuming one is
 * opened only by a process that consumes. The parts: amqp/connection (recovery, channels that
 * die under a live connection), amqp/publisher (confirms), amqp/consumers (acks, retry tiers,
 * DLQ), amqp/batcher and amqp/ack-coalescer (the batch consumer), amqp/deliveries (delivery
 * counting from headers).
 */
export class Broker {
  private readonly publishing: ManagedConnection;
  private readonly consuming: ManagedConnection;
  private readonly publisher: ConfirmPublisher;
  private readonly consumers: Consumers;
  private consumingStarted: Promise<void> | null = null;

  constructor(options: BrokerOptions) {
    const { url, connectionName, logger } = options;
    const declare = (model: ChannelModel) => declareTopology(model, options.exchanges, options.queues);
    this.publishing = new ManagedConnection({
      url,
      name: `${connectionName} publish`,
      logger,
      setup: async (model) => {
        await declare(model);
        await this.publisher.open(model);
      },
      onDisconnect: () => this.publisher.reset(),
    });
    this.publisher = new ConfirmPublisher(this.publishing, declare);
    this.consuming = new ManagedConnection({
      url,
      name: `${connectionName} consume`,
      logger,
      setup: async (model) => {
        await declare(model);
        await this.consumers.startAll(model);
      },
    });
    this.consumers = new Consumers({
      connection: this.consuming,
      publisher: this.publisher,
      deadLetterExchange: options.deadLetterExchange,
      declare,
      logger,
      tagSuffix: connectionName,
      onDeadLettered: options.onDeadLettered,
    });
  }

  /** Connected for publishing, and for consuming when this process consumes. */
  get isConnected(): boolean {
    return this.publishing.isConnected && (this.consumers.count === 0 || this.consuming.isConnected);
  }

  /** Connects the publishing side, retrying with backoff for as long as it takes; resolves once the topology is declared. */
  async start(): Promise<void> {
    await this.publishing.start();
  }

  /** Registers a consumer; it runs on every consuming connection from then on (the first opens it). */
  async consume(spec: AnyConsumerSpec): Promise<void> {
    await this.consumers.register(spec);
    this.consumingStarted ??= this.consuming.start();
    await this.consumingStarted;
  }

  /** Publishes a persistent JSON message and resolves when the broker confirms it. */
  publish(exchange: string, routingKey: string, payload: unknown, options: PublishOptions): Promise<void> {
    return this.publisher.publish(exchange, routingKey, Buffer.from(JSON.stringify(payload)), {
      persistent: true,
      contentType: 'application/json',
      messageId: options.messageId,
      headers: options.headers,
      timestamp: Math.floor(Date.now() / 1000),
    });
  }

  /** Publishes bytes as they are (a dead letter sent back), persistent, and resolves on the confirm. */
  publishBuffer(
    exchange: string,
    routingKey: string,
    content: Buffer,
    options: { messageId?: string; contentType?: string; headers?: Record<string, unknown> },
  ): Promise<void> {
    return this.publisher.publish(exchange, routingKey, content, { persistent: true, ...options });
  }

  /** Stops new deliveries and waits for the messages being handled to be settled. */
  stopConsuming(): Promise<void> {
    return this.consumers.stop();
  }

  async close(): Promise<void> {
    await this.consumers.stop();
    await this.consuming.close();
    await this.publishing.close();
  }

  /** A short-lived channel for operators' and tests' one-off calls (purge, delete, inspect, read a DLQ). */
  withChannel<T>(work: (channel: Channel) => Promise<T>): Promise<T> {
    if (!this.publishing.isConnected && !this.publishing.model) return Promise.reject(new BrokerUnavailableError());
    return this.publishing.withChannel(work);
  }
}
