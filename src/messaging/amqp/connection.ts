import amqp, { type Channel, type ChannelModel, type Options, type RecoveringChannelModel } from 'amqplib';
import type { Logger } from '../../observability/logger';
import { errorMessage } from '../../observability/logger';
import type { LiveChannel } from './deliveries';

export class BrokerUnavailableError extends Error {
  constructor(message = 'RabbitMQ is not connected') {
    super(message);
    this.name = 'BrokerUnavailableError';
  }
}

/** AMQP_URL: one URL, or the nodes of a cluster, comma-separated. */
export function splitAmqpUrls(value: string): string[] {
  return value
    .split(',')
    .map((url) => url.trim())
    .filter((url) => url !== '');
}

/**
 * What amqplib reads of a URL string, as its connect options (every field set, undefined when
 * absent, so that assigning one endpoint over another leaves nothing of the previous one).
 */
export function endpointOf(url: string): Required<Pick<Options.Connect, 'protocol' | 'hostname' | 'vhost'>> & Options.Connect {
  const parsed = new URL(url);
  const query = parsed.searchParams;
  const number = (name: string) => (query.has(name) ? Number(query.get(name)) : undefined);
  const anonymous = parsed.username === '' && parsed.password === '';
  return {
    protocol: parsed.protocol.replace(/:$/, ''),
    hostname: parsed.hostname.replace(/^\[|\]$/g, ''),
    port: parsed.port === '' ? undefined : Number(parsed.port),
    // amqplib logs in as guest/guest when both are missing, as it does for a URL string.
    username: anonymous ? undefined : decodeURIComponent(parsed.username),
    password: anonymous ? undefined : decodeURIComponent(parsed.password),
    vhost: parsed.pathname.slice(1), // amqplib unescapes it; '' is '/'
    heartbeat: number('heartbeat'),
    frameMax: number('frameMax'),
    channelMax: number('channelMax'),
    maxFrameSize: number('maxFrameSize'),
    locale: query.get('locale') ?? undefined,
  };
}

const nodeOf = (endpoint: Options.Connect) => `${endpoint.hostname}:${endpoint.port ?? (endpoint.protocol === 'amqps' ? 5671 : 5672)}`;

/**
 * One named RabbitMQ connection with amqplib's opt-in recovery: `setup` runs after every
 * (re)connect, before the connection counts as connected (declare the topology, open channels,
 * start consumers). Channels of a dead connection are never used again; a channel that closes
 * while its connection lives (a publish to a deleted exchange, a queue deleted under its
 * consumer) is reopened by `watch`.
 *
 * `url` may list several nodes of a cluster (comma-separated): the connection goes to the first,
 * and each lost connection or failed attempt moves the next attempt to the next node, round the
 * list. amqplib's recovery takes one URL and re-reads it on every attempt, so the connection is
 * opened with a connect-options object whose fields are replaced by the next node's.
 */
export class ManagedConnection {
  private connection: RecoveringChannelModel | null = null;
  /** The connection of the moment, set by each (re)connect's setup. */
  private current: ChannelModel | null = null;
  private up = false;
  private closing = false;

  constructor(
    private readonly options: {
      url: string;
      name: string;
      logger: Logger;
      setup(model: ChannelModel): Promise<void>;
      /** Called when the connection drops (before recovery starts). */
      onDisconnect?(): void;
    },
  ) {}

  get isConnected(): boolean {
    return this.up;
  }

  get model(): ChannelModel | null {
    return this.current;
  }

  isCurrent(model: ChannelModel): boolean {
    return this.current === model && !this.closing;
  }

  /** Connects, retrying with backoff for as long as it takes (each failure logged), and resolves once `setup` ran. */
  async start(): Promise<void> {
    const { logger, name } = this.options;
    const urls = splitAmqpUrls(this.options.url);
    if (urls.length === 0) throw new Error('no RabbitMQ URL');
    let index = 0;
    const endpoint = endpointOf(urls[0]);
    const rotate = (): string => {
      if (urls.length > 1) {
        index = (index + 1) % urls.length;
        Object.assign(endpoint, endpointOf(urls[index]));
      }
      return nodeOf(endpoint);
    };
    this.connection = await amqp.connect(urls.length === 1 ? urls[0] : endpoint, {
      // An attempt at a node that does not answer (not even a refusal) gives up, for the next node.
      timeout: 10_000,
      // Nagle's algorithm would hold a publish (or an ack) back until the previous segment is
      // acknowledged: milliseconds of latency on every confirmed publish. amqplib leaves it on.
      noDelay: true,
      clientProperties: { connection_name: name },
      recovery: {
        initialDelay: 250,
        maxDelay: 5_000,
        maxRetries: Infinity,
        waitForConnect: false,
        setup: async (model: ChannelModel) => {
          await this.options.setup(model);
          this.current = model;
        },
      },
    });
    // 'disconnect' and 'connect-failed' are emitted before the next attempt is scheduled.
    this.connection.on('connect', () => {
      this.up = true;
      logger.info('rabbitmq connected', { dependency: 'rabbitmq', connection: name, node: nodeOf(endpoint) });
    });
    this.connection.on('disconnect', (err: Error) => {
      this.up = false;
      this.current = null;
      this.options.onDisconnect?.();
      const lost = nodeOf(endpoint);
      logger.warn('rabbitmq disconnected, reconnecting', { dependency: 'rabbitmq', connection: name, node: lost, next: rotate(), error: errorMessage(err) });
    });
    this.connection.on('connect-failed', (err: Error) => {
      const failed = nodeOf(endpoint);
      logger.warn('rabbitmq unreachable, retrying', { dependency: 'rabbitmq', connection: name, node: failed, next: rotate(), error: errorMessage(err) });
    });
    this.connection.on('error', (err: Error) =>
      logger.warn('rabbitmq connection error', { dependency: 'rabbitmq', connection: name, error: errorMessage(err) }),
    );
    this.connection.on('handler-error', (err: Error, event: string) =>
      logger.error('rabbitmq event handler threw', { event, connection: name, error: errorMessage(err) }),
    );
    this.connection.on('blocked', (reason: string) => logger.warn('rabbitmq blocked the connection', { connection: name, reason }));
    await this.connection.waitForConnect();
  }

  /**
   * Marks the channel dead when it closes, and, while the connection it belongs to is still the
   * current one, reopens it after a short pause (amqplib's recovery only reacts to the
   * connection). After a reconnect, `setup` reopens everything instead.
   */
  watch(live: LiveChannel, role: string, model: ChannelModel, reopen: () => Promise<void>): void {
    const { logger } = this.options;
    live.channel.on('close', () => {
      live.open = false;
      const attempt = () => {
        if (!this.isCurrent(model)) return;
        logger.warn('rabbitmq channel closed, reopening it', { channel: role });
        reopen().catch((err) => {
          logger.error('could not reopen a rabbitmq channel, retrying', { channel: role, error: errorMessage(err) });
          setTimeout(attempt, 2_000).unref();
        });
      };
      setTimeout(attempt, 500).unref();
    });
    live.channel.on('error', (err: Error) => logger.warn('rabbitmq channel error', { channel: role, error: errorMessage(err) }));
    live.channel.on('handler-error', (err: Error, event: string) =>
      logger.error('rabbitmq channel handler threw', { channel: role, event, error: errorMessage(err) }),
    );
  }

  /** A short-lived channel for one-off work (inspect, purge, read a DLQ), closed after it. */
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

  async close(): Promise<void> {
    this.closing = true;
    this.up = false;
    await this.connection?.close().catch(() => {});
    this.connection = null;
  }
}
