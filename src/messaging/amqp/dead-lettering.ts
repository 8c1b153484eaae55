import { randomUUID } from 'node:crypto';
import type { ConsumeMessage } from 'amqplib';
import type { Logger } from '../../observability/logger';
import { errorMessage } from '../../observability/logger';
import type { WorkQueue } from '../topology';
import type { DeadLetteredMessage } from './consumer-specs';
import { ack, deliveriesSoFar, type LiveChannel, nack, originalExchange, originalRoutingKey, readDelivery, sagaIdOf } from './deliveries';
import type { ConfirmPublisher } from './publisher';

/** What moving a failed message on, into its retry tier or its DLQ, takes. */
export interface FailedMessageDeps {
  /** Retry and DLQ copies go out through the publishing connection, confirmed before the ack. */
  publisher: ConfirmPublisher;
  deadLetterExchange: string;
  logger: Logger;
  /**
   * Called once a message's DLQ copy is confirmed, before the original is acked (to record it:
   * the DLQ cannot be browsed without consuming it). A failure is logged; the message is acked
   * all the same, since its DLQ copy exists.
   */
  onDeadLettered?: (message: DeadLetteredMessage) => Promise<void> | void;
}

/** Publishes the message to the queue's DLQ with the reason in its headers, records it, then acks it. */
export async function deadLetter(
  deps: FailedMessageDeps,
  live: LiveChannel,
  queue: WorkQueue,
  msg: ConsumeMessage,
  reason: string,
  error: string,
): Promise<void> {
  const { logger } = deps;
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
    await deps.publisher.publish(deps.deadLetterExchange, queue.deadLetterQueue, msg.content, {
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
    await deps.onDeadLettered?.({
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
