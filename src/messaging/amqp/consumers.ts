import { randomUUID } from 'node:crypto';
import type { ChannelModel, ConsumeMessage } from 'amqplib';
import { batchAcceptor } from './batch-consumer';
import type { AnyConsumerSpec } from './consumer-specs';
import type { ManagedConnection } from './connection';
import type { FailedMessageDeps } from './dead-lettering';
import type { LiveChannel } from './deliveries';
import { handleMessage } from './single-consumer';

// The specs, the one-at-a-time and the batch consumers, and dead-lettering live beside this file;
// the names its users import stay exported from here.
export {
  UnprocessableMessageError,
  type AnyConsumerSpec,
  type BatchConsumerSpec,
  type BatchHandler,
  type BatchOutcome,
  type ConsumerSpec,
  type DeadLetteredMessage,
  type MessageHandler,
} from './consumer-specs';

export interface ConsumersDeps extends FailedMessageDeps {
  connection: ManagedConnection;
  declare(model: ChannelModel): Promise<void>;
  /** The rest of the consumer tag, after the consumer's name (the process's connection name). */
  tagSuffix: string;
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
    const accept =
      'batchHandler' in spec
        ? batchAcceptor(this.deps, live, spec, { consuming: () => this.consuming, track: (work) => this.track(work) })
        : (msg: ConsumeMessage) => void this.track(handleMessage(this.deps, live, spec, msg));
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
}
