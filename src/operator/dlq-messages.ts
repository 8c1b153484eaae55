import { createHash } from 'node:crypto';
import type { GetMessage } from 'amqplib';
import type { DeadLetteredMessage } from '../messaging/broker';
import type { WorkQueue } from '../messaging/topology';

/** Reading a message taken from a DLQ: its id, its body, the record the broker layer would have made of it. */

/** The record of a message found in a DLQ, from the headers the broker layer gave it. */
export function fromDeadLetter(queue: WorkQueue, msg: GetMessage): DeadLetteredMessage {
  const headers = msg.properties.headers ?? {};
  const at = Date.parse(String(headers['x-dlq-at'] ?? ''));
  return {
    id: idOf(msg),
    queue: queue.name,
    reason: String(headers['x-dlq-reason'] ?? 'unknown'),
    error: String(headers['x-dlq-error'] ?? ''),
    deliveries: Number(headers['x-deliveries'] ?? 0) + 1,
    messageId: msg.properties.messageId ?? null,
    body: parseBody(msg),
    at: Number.isFinite(at) ? at : Date.now(),
  };
}

const dlqIdOf = (msg: GetMessage): string | null => {
  const id = msg.properties.headers?.['x-dlq-id'];
  return typeof id === 'string' && id.length <= 64 ? id : null;
};

/** The DLQ id the broker layer gave it; for messages dead-lettered before DLQ ids existed, a stable one from what they carry. */
export const idOf = (msg: GetMessage): string =>
  dlqIdOf(msg) ??
  createHash('sha256')
    .update(String(msg.properties.messageId))
    .update('\0')
    .update(String(msg.properties.headers?.['x-dlq-at']))
    .update(msg.content)
    .digest('hex')
    .slice(0, 64);

export function parseBody(msg: GetMessage): unknown {
  try {
    return JSON.parse(msg.content.toString('utf8'));
  } catch {
    return null;
  }
}
