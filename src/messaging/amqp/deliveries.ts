import type { Channel, ConsumeMessage } from 'amqplib';

/** A message as handlers see it. */
export interface Delivery<T = unknown> {
  body: T;
  /** The routing key it was first published with (a compensation's tag), whatever retries it went through. */
  routingKey: string;
  /** 1 for the first delivery; counted across retries (see deliveriesSoFar). */
  deliveryCount: number;
  redelivered: boolean;
  messageId?: string;
}

/** A channel and whether it is still open: a closed channel's delivery tags mean nothing any more. */
export interface LiveChannel<C extends Channel = Channel> {
  channel: C;
  open: boolean;
}

/** Deliveries a message has had, as a consumer moving it into a retry tier counted them. */
export const DELIVERIES_HEADER = 'x-deliveries';

type Death = { queue?: string; reason?: string; count?: number; exchange?: string; 'routing-keys'?: string[] };

/** The message as handlers see it, or null when its body is not JSON. */
export function readDelivery(msg: ConsumeMessage, queueName: string): Delivery | null {
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

/** The broker's record of the message's first dead-lettering (x-death lists the newest first). */
function firstDeath(msg: ConsumeMessage): Death | undefined {
  const deaths = msg.properties.headers?.['x-death'];
  return Array.isArray(deaths) && deaths.length > 0 ? deaths.at(-1) : undefined;
}

/** Where the message was first published to, before any retry or dead-lettering. */
export function originalExchange(msg: ConsumeMessage): string {
  const header = msg.properties.headers?.['x-original-exchange'];
  return typeof header === 'string' ? header : (firstDeath(msg)?.exchange ?? msg.fields.exchange);
}

/** The routing key it was first published with (a compensation's tag), not a retry queue's name. */
export function originalRoutingKey(msg: ConsumeMessage): string {
  const header = msg.properties.headers?.['x-original-routing-key'];
  return typeof header === 'string' ? header : (firstDeath(msg)?.['routing-keys']?.[0] ?? msg.fields.routingKey);
}

/** The saga a delivery is about, when its body names one (for log lines). */
export const sagaIdOf = (delivery: Delivery | null): string | undefined => {
  const sagaId = (delivery?.body as { sagaId?: unknown } | null)?.sagaId;
  return typeof sagaId === 'string' ? sagaId : undefined;
};

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
    ? deaths
        .filter((death: Death) => death.queue === queue && death.reason === 'rejected')
        .reduce((sum: number, death: Death) => sum + Number(death.count ?? 0), 0)
    : 0;
  return Math.max(Number.isFinite(counted) ? counted : 0, rejected);
}

export function ack(live: LiveChannel, msg: ConsumeMessage): void {
  // An ack on a channel that closed would be for a delivery tag the broker has forgotten; the
  // broker redelivers the message instead, and the handler's idempotency absorbs it.
  if (!live.open) return;
  try {
    live.channel.ack(msg);
  } catch {
    // The channel closed between the check and the ack: same as above.
  }
}

export function nack(live: LiveChannel, msg: ConsumeMessage, requeue: boolean): void {
  if (!live.open) return;
  try {
    live.channel.nack(msg, false, requeue);
  } catch {
    // The channel closed: the broker redelivers the message.
  }
}
