import type { Delivery } from './deliveries';
import type { WorkQueue } from '../topology';

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
