import type { Db } from '../db/database';
import type { DeadLetteredMessage } from '../messaging/broker';
import type { Topology } from '../messaging/topology';
import { type ConsumerName, DECIMAL_ID, watchedQueues } from './dead-letter-queues';

export interface DeadLetterView {
  id: string;
  listener: ConsumerName;
  queue: string;
  messageId: string | null;
  sagaId: string | null;
  tag: string | null;
  reason: string;
  error: string | null;
  deliveries: number;
  deadLetteredAt: string;
  sagaStatus: string | null;
}

/** A dead letter as a saga's timeline shows it, resolved or not. */
export interface SagaDeadLetter {
  id: string;
  listener: string;
  reason: string;
  error: string | null;
  deliveries: number;
  deadLetteredAt: Date;
  resolvedAt: Date | null;
  resolution: string | null;
}

/**
 * The record of dead letters: a row per message moved to a DLQ (the broker layer hands each one
 * over before its ack), so operators list them without consuming the queues; a row is resolved
 * when its message leaves the DLQ (redriven, dropped, settled).
 */
export class DeadLetterLog {
  private readonly consumerOf: Map<string, ConsumerName>;
  readonly consumers: ConsumerName[];

  constructor(
    private readonly db: Db,
    topology: Topology,
  ) {
    const watched = watchedQueues(topology);
    this.consumerOf = new Map(watched.map((w) => [w.queue.name, w.consumer]));
    this.consumers = watched.map((w) => w.consumer);
  }

  async record(message: DeadLetteredMessage): Promise<void> {
    await this.recordAll([message]);
  }

  /** Records messages found in a DLQ; those recorded already are left as they are. */
  async recordAll(messages: DeadLetteredMessage[]): Promise<void> {
    if (messages.length === 0) return;
    await this.db('dead_letters')
      .insert(messages.map((message) => rowOf(message, this.consumerOf.get(message.queue) ?? 'order-writer')))
      .onConflict('id')
      .ignore();
  }

  async resolve(ids: string[], resolution: 'redriven' | 'dropped' | 'settled'): Promise<void> {
    if (ids.length === 0) return;
    await this.db('dead_letters')
      .whereIn('id', ids)
      .whereNull('resolved_at')
      .update({ resolved_at: this.db.fn.now(3), resolution });
  }

  /** Open dead letters (not redriven, dropped or settled), newest first. */
  async list(filter: { listener?: ConsumerName; limit?: number } = {}): Promise<DeadLetterView[]> {
    const query = this.db('dead_letters as d')
      .leftJoin('sagas as s', 's.id', 'd.saga_id')
      .whereNull('d.resolved_at')
      .orderBy('d.dead_lettered_at', 'desc')
      .limit(filter.limit ?? 500)
      .select('d.*', 's.status as saga_status');
    if (filter.listener) query.andWhere('d.listener', filter.listener);
    const rows = await query;
    return rows.map((row: any) => ({
      id: row.id,
      listener: row.listener,
      queue: row.queue,
      messageId: row.message_id,
      sagaId: row.saga_id,
      tag: row.tag,
      reason: row.reason,
      error: row.error,
      deliveries: row.deliveries,
      deadLetteredAt: row.dead_lettered_at.toISOString(),
      sagaStatus: row.saga_status ?? null,
    }));
  }

  /** Open dead letters per consumer (the console's counters, a gauge). */
  async depth(): Promise<Record<string, number>> {
    const rows = await this.db('dead_letters').whereNull('resolved_at').groupBy('listener').select('listener').count({ n: '*' });
    const depth: Record<string, number> = Object.fromEntries(this.consumers.map((c) => [c, 0]));
    for (const row of rows as Array<{ listener: string; n: number | string }>) depth[row.listener] = Number(row.n);
    return depth;
  }

  /** Dead letters of one saga, for its timeline. */
  async ofSaga(sagaId: string): Promise<SagaDeadLetter[]> {
    const rows = await this.db('dead_letters').where({ saga_id: sagaId }).orderBy('dead_lettered_at');
    return rows.map((row: any) => ({
      id: row.id,
      listener: row.listener,
      reason: row.reason,
      error: row.error,
      deliveries: row.deliveries,
      deadLetteredAt: row.dead_lettered_at,
      resolvedAt: row.resolved_at,
      resolution: row.resolution,
    }));
  }
}

function rowOf(message: DeadLetteredMessage, listener: ConsumerName) {
  const body = (message.body && typeof message.body === 'object' ? message.body : {}) as { sagaId?: unknown; tag?: unknown };
  return {
    id: message.id,
    queue: message.queue,
    listener,
    message_id: message.messageId?.slice(0, 255) ?? null,
    saga_id: typeof body.sagaId === 'string' && DECIMAL_ID.test(body.sagaId) ? body.sagaId : null,
    tag: typeof body.tag === 'string' ? body.tag.slice(0, 64) : null,
    reason: message.reason.slice(0, 32),
    error: message.error.slice(0, 4000),
    deliveries: message.deliveries,
    dead_lettered_at: new Date(message.at),
  };
}
