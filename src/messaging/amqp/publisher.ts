import type { ChannelModel, ConfirmChannel, Options } from 'amqplib';
import { errorMessage } from '../../observability/logger';
import { BrokerUnavailableError, type ManagedConnection } from './connection';
import type { LiveChannel } from './deliveries';

/**
 * Publishes with publisher confirms on the publishing connection's one confirm channel: many
 * publishes in flight at once, each resolved by the broker's ack (rejected on its nack, or at
 * once while there is no channel). The channel is opened by the connection's setup and reopened
 * (with the topology declared again) when the broker closes it, e.g. after a publish to an
 * exchange that was deleted.
 */
export class ConfirmPublisher {
  private live: LiveChannel<ConfirmChannel> | null = null;

  constructor(
    private readonly connection: ManagedConnection,
    private readonly declare: (model: ChannelModel) => Promise<void>,
  ) {}

  async open(model: ChannelModel): Promise<void> {
    const live: LiveChannel<ConfirmChannel> = { channel: await model.createConfirmChannel(), open: true };
    this.connection.watch(live, 'publisher', model, async () => {
      if (this.live === live) this.live = null;
      await this.declare(model);
      await this.open(model);
    });
    this.live = live;
  }

  /** The connection dropped: nothing can be published until it is back. */
  reset(): void {
    this.live = null;
  }

  publish(exchange: string, routingKey: string, content: Buffer, options: Options.Publish): Promise<void> {
    const live = this.live;
    if (!live || !live.open) return Promise.reject(new BrokerUnavailableError());
    return new Promise<void>((resolve, reject) => {
      try {
        live.channel.publish(exchange, routingKey, content, options, (err) =>
          err ? reject(new BrokerUnavailableError(`publish not confirmed: ${errorMessage(err)}`)) : resolve(),
        );
      } catch (err) {
        reject(new BrokerUnavailableError(errorMessage(err)));
      }
    });
  }
}
