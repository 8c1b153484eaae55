import type { ConsumeMessage } from 'amqplib';

/** What the coalescer needs of a channel: one ack that covers every delivery up to a tag. */
export interface AckTarget {
  open: boolean;
  channel: { ack(message: ConsumeMessage, allUpTo?: boolean): void };
}

/**
 * Acks a batch consumer's messages with as few frames as it can: one `multiple` ack for the
 * longest run of settled deliveries from the oldest one unsettled, rather than one frame per
 * message (the worker persists thousands a second). A delivery still being handled, or still
 * waiting for its batch, stops the run: a multiple ack never covers it. Messages retried or
 * dead-lettered were settled one by one already and are only passed over.
 */
export class AckCoalescer {
  /** Delivery tags in the order the broker sent them (increasing on one channel). */
  private readonly order: number[] = [];
  private head = 0;
  /** Settled tags -> whether they still need the ack. */
  private readonly done = new Map<number, boolean>();
  private readonly byTag = new Map<number, ConsumeMessage>();

  constructor(private readonly live: AckTarget) {}

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
