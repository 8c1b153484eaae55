import type { ConsumeMessage } from 'amqplib';
import { errorMessage } from '../../observability/logger';
import { AckCoalescer } from './ack-coalescer';
import { Batcher } from './batcher';
import type { BatchConsumerSpec, BatchOutcome } from './consumer-specs';
import { deadLetter, type FailedMessageDeps } from './dead-lettering';
import { type Delivery, type LiveChannel, nack, readDelivery } from './deliveries';

/** What a batch consumer is told by the consumers it runs under. */
export interface BatchRunner {
  /** False once the consumers are stopping: no new batch starts. */
  consuming(): boolean;
  /** Keeps a batch's work, so that stopping waits for it. */
  track(work: Promise<void>): Promise<void>;
}

/** Collects a channel's messages into batches; those left when the channel dies are simply not acked. */
export function batchAcceptor(deps: FailedMessageDeps, live: LiveChannel, spec: BatchConsumerSpec, consumer: BatchRunner): (msg: ConsumeMessage) => void {
  const acks = new AckCoalescer(live);
  const batcher = new Batcher<ConsumeMessage>(
    { maxBatch: spec.maxBatch, lingerMs: spec.lingerMs, inFlight: spec.batchesInFlight, accepting: () => live.open && consumer.consuming() },
    (batch) => consumer.track(handleBatch(deps, live, spec, batch, acks)),
  );
  return (msg) => {
    acks.track(msg);
    batcher.add(msg);
  };
}

async function handleBatch(deps: FailedMessageDeps, live: LiveChannel, spec: BatchConsumerSpec, messages: ConsumeMessage[], acks: AckCoalescer): Promise<void> {
  try {
    await handleBatchMessages(deps, live, spec, messages, acks);
  } finally {
    // Every message of the batch is settled now: acked, retried or dead-lettered one by one.
    acks.flush();
  }
}

async function handleBatchMessages(
  deps: FailedMessageDeps,
  live: LiveChannel,
  spec: BatchConsumerSpec,
  messages: ConsumeMessage[],
  acks: AckCoalescer,
): Promise<void> {
  const deliveries: Array<{ msg: ConsumeMessage; delivery: Delivery }> = [];
  for (const msg of messages) {
    const delivery = readDelivery(msg, spec.queue.name);
    if (delivery) deliveries.push({ msg, delivery });
    else {
      await deadLetter(deps, live, spec.queue, msg, 'unreadable', 'message body is not JSON');
      acks.settled(msg, false);
    }
  }
  if (deliveries.length === 0) return;
  let outcome: BatchOutcome | void;
  try {
    outcome = await spec.batchHandler(deliveries.map((d) => d.delivery));
  } catch (err) {
    deps.logger.warn('batch handling failed, its messages will be retried', { queue: spec.queue.name, messages: deliveries.length, error: errorMessage(err) });
    for (const { msg, delivery } of deliveries) {
      if (delivery.deliveryCount >= spec.maxDeliveries) await deadLetter(deps, live, spec.queue, msg, 'retries-exhausted', errorMessage(err));
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
      await deadLetter(deps, live, spec.queue, msg, 'unprocessable', error);
      acks.settled(msg, false);
    }
  }
}
