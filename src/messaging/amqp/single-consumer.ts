import type { ConsumeMessage } from 'amqplib';
import { errorMessage } from '../../observability/logger';
import { type ConsumerSpec, UnprocessableMessageError } from './consumer-specs';
import { deadLetter, type FailedMessageDeps } from './dead-lettering';
import { ack, DELIVERIES_HEADER, type Delivery, type LiveChannel, nack, originalExchange, readDelivery, sagaIdOf } from './deliveries';

/** One message of a one-at-a-time consumer: handled and acked, or sent to its retry tier or its DLQ. */
export async function handleMessage(deps: FailedMessageDeps, live: LiveChannel, spec: ConsumerSpec, msg: ConsumeMessage): Promise<void> {
  const delivery = readDelivery(msg, spec.queue.name);
  if (!delivery) {
    await deadLetter(deps, live, spec.queue, msg, 'unreadable', 'message body is not JSON');
    return;
  }
  try {
    await spec.handler(delivery);
    ack(live, msg);
  } catch (err) {
    const unprocessable = err instanceof UnprocessableMessageError;
    if (unprocessable || delivery.deliveryCount >= spec.maxDeliveries) {
      await deadLetter(deps, live, spec.queue, msg, unprocessable ? 'unprocessable' : 'retries-exhausted', errorMessage(err));
    } else {
      await retryLater(deps, live, spec, msg, delivery, errorMessage(err));
    }
  }
}

/**
 * Moves a failed message into the retry tier for its delivery count, with the count, its
 * original exchange and routing key and the error in its headers; acks it once the broker has
 * confirmed the copy (a crash in between delivers it twice: handlers are idempotent). Should
 * the copy fail, the message is rejected instead and dead-letters into the first tier.
 */
async function retryLater(
  deps: FailedMessageDeps,
  live: LiveChannel,
  spec: ConsumerSpec,
  msg: ConsumeMessage,
  delivery: Delivery,
  error: string,
): Promise<void> {
  const tiers = spec.queue.retryTiers;
  const tier = tiers[Math.min(delivery.deliveryCount, tiers.length) - 1];
  deps.logger.warn('message handling failed, will retry', {
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
    await deps.publisher.publish(deps.deadLetterExchange, tier.queue, msg.content, {
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
