import { createHash } from 'node:crypto';
import type { GetMessage } from 'amqplib';
import type { Db } from '../db/database';
import type { Broker, DeadLetteredMessage } from '../messaging/broker';
import type { ListenerName, Topology, WorkQueue } from '../messaging/topology';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';

/** The consumer of a work queue, as operators name it: a compensation listener, or the expiry and order writers. */
export const CONSUMER_NAMES = ['seat-release', 'order-delete', 'balance-restore', 'expiry', 'order-writer'] as const satisfies ReadonlyArray<ListenerName | 'expiry' | 'order-writer'>;
export type ConsumerName = (typeof CONSUMER_NAMES)[number];

/** Which of these dead-lettered bodies have since been settled some other way (by index). */
type SettledCheck = (db: Db, bodies: unknown[]) => Promise<Set<number>>;

interface Watched {
  consumer: ConsumerName;
  queue: WorkQueue;
  settled: SettledCheck;
}

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

export interface RedriveResult {
  redriven: number;
  dropped: number;
}

const ID = /^\d{1,20}$/;
const idsOf = (bodies: unknown[], pick: (body: Record<string, unknown>) => unknown[]): Array<[number, string]> =>
  bodies.flatMap((body, i) => (body && typeof body === 'object' ? pick(body as Record<string, unknown>) : []).filter((id): id is string => typeof id === 'string' && ID.test(id)).map((id) => [i, id] as [number, string]));

/** A compensation is settled once its saga is COMPENSATED or this listener's part is recorded. */
function compensationSettled(listener: ListenerName): SettledCheck {
  return async (db, bodies) => {
    const sagaIds = idsOf(bodies, (body) => [body.sagaId]);
    if (sagaIds.length === 0) return new Set();
    const ids = sagaIds.map(([, id]) => id);
    const compensated = new Set<string>(await db('sagas').whereIn('id', ids).andWhere({ status: 'COMPENSATED' }).pluck('id'));
    const done = new Set<string>(
      (await db('saga_compensations').whereIn('saga_id', ids).andWhere({ listener }).select('saga_id', 'tag')).map((row) => `${row.saga_id}/${row.tag}`),
    );
    return new Set(sagaIds.filter(([i, id]) => compensated.has(id) || done.has(`${id}/${(bodies[i] as { tag?: unknown }).tag}`)).map(([i]) => i));
  };
}

/** An expiry message is settled once none of its orders is still unpaid (the sweep expired them). */
const expirySettled: SettledCheck = async (db, bodies) => {
  const orderIds = idsOf(bodies, (body) => (Array.isArray(body.orderIds) ? body.orderIds : [body.orderId]));
  const unpaid = new Set<string>(orderIds.length ? await db('orders').whereIn('id', orderIds.map(([, id]) => id)).andWhere({ status: 'PENDING_PAYMENT' }).pluck('id') : []);
  const withOrders = new Set(orderIds.map(([i]) => i));
  return new Set([...withOrders].filter((i) => !orderIds.some(([j, id]) => j === i && unpaid.has(id))));
};

/** An async order message is settled once its reservation has an outcome (the reconciler's). */
const reservationSettled: SettledCheck = async (db, bodies) => {
  const orderIds = idsOf(bodies, (body) => [body.orderId]);
  const resolved = new Set<string>(orderIds.length ? await db('reservations').whereIn('order_id', orderIds.map(([, id]) => id)).pluck('order_id') : []);
  return new Set(orderIds.filter(([, id]) => resolved.has(id)).map(([i]) => i));
};

/** Every work queue with a DLQ, with its consumer's name and how to tell its dead letters settled. */
function watchedQueues(topology: Topology): Watched[] {
  return [
    ...Object.entries(topology.listenerQueues).map(([listener, queue]) => ({
      consumer: listener as ListenerName,
      queue: queue!,
      settled: compensationSettled(listener as ListenerName),
    })),
    { consumer: 'expiry' as const, queue: topology.expiry.dueQueue, settled: expirySettled },
    { consumer: 'order-writer' as const, queue: topology.asyncOrders.queue, settled: reservationSettled },
  ];
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
    await this.db('dead_letters').whereIn('id', ids).whereNull('resolved_at').update({ resolved_at: this.db.fn.now(3), resolution });
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
  async ofSaga(sagaId: string): Promise<Array<{ id: string; listener: string; reason: string; error: string | null; deliveries: number; deadLetteredAt: Date; resolvedAt: Date | null; resolution: string | null }>> {
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

export interface DeadLettersDeps {
  db: Db;
  broker: Broker;
  topology: Topology;
  log: DeadLetterLog;
  logger: Logger;
  onResolved?: (queue: string, count: number) => void;
  /** Messages taken from one DLQ per pass, at most. */
  batchSize?: number;
}

/**
 * What the workers and operators do with the DLQs themselves:
 * - `resolveOnce` (workers, every DEAD_LETTER_RESOLVE_MS) takes out what was settled since (a
 *   compensation the sweeper redid, an order the sweep expired, a reservation the reconciler
 *   released), and records any DLQ message the log lacks (it was away when it was dead-lettered);
 * - `redrive` sends matching messages back to their work queue with fresh retries, or drops them
 *   when their saga is settled already.
 * A DLQ cannot be read without taking its messages, so every pass gets them unacknowledged on
 * one channel and acks or puts back each one: another pass or redrive at the same time sees the
 * others, never the same message twice.
 */
export class DeadLetters {
  private readonly watched: Watched[];

  constructor(private readonly deps: DeadLettersDeps) {
    this.watched = watchedQueues(deps.topology);
  }

  /** One pass over every DLQ; returns how many messages it took out of each. */
  async resolveOnce(): Promise<Record<string, number>> {
    const resolved: Record<string, number> = {};
    for (const watched of this.watched) {
      const count = await this.passOver(watched, async (held, bodies) => {
        await this.recordMissing(watched, held);
        return { leave: await watched.settled(this.deps.db, bodies), resolution: 'settled' };
      });
      if (count > 0) resolved[watched.queue.deadLetterQueue] = count;
    }
    return resolved;
  }

  /**
   * Sends the matching dead letters (every consumer's, or `listener`'s; every saga's, or those of
   * `sagaIds`; every one, or those of `ids`, as the dead-letter list gives them) back to their work queue with their delivery count reset; one whose saga is
   * settled already (COMPENSATED, or this listener's part done) is dropped instead. Either way it
   * leaves the DLQ. A redriven compensation takes effect once, whatever else delivers it.
   */
  async redrive(filter: { listener?: ConsumerName; sagaIds?: string[]; ids?: string[] }): Promise<RedriveResult> {
    const result: RedriveResult = { redriven: 0, dropped: 0 };
    const sagaIds = filter.sagaIds ? new Set(filter.sagaIds) : null;
    const ids = filter.ids ? new Set(filter.ids) : null;
    for (const watched of this.watched) {
      if (filter.listener && filter.listener !== watched.consumer) continue;
      await this.passOver(watched, async (held, bodies) => {
        await this.recordMissing(watched, held);
        const matching = new Set(
          bodies
            .map((body, i) => [body, i] as const)
            .filter(([body, i]) => (!sagaIds || sagaIds.has(String((body as { sagaId?: unknown } | null)?.sagaId))) && (!ids || ids.has(idOf(held[i]))))
            .map(([, i]) => i),
        );
        const settled = await watched.settled(this.deps.db, bodies);
        const dropped = [...matching].filter((i) => settled.has(i));
        const redriven: number[] = [];
        for (const i of matching) {
          if (settled.has(i)) continue;
          try {
            await this.sendBack(watched.queue, held[i]);
            redriven.push(i);
          } catch (err) {
            this.deps.logger.warn('dead letter not redriven: the broker refused the copy', { queue: watched.queue.deadLetterQueue, error: errorMessage(err) });
          }
        }
        await this.deps.log.resolve(dropped.map((i) => idOf(held[i])), 'dropped');
        await this.deps.log.resolve(redriven.map((i) => idOf(held[i])), 'redriven');
        result.dropped += dropped.length;
        result.redriven += redriven.length;
        return { leave: new Set([...dropped, ...redriven]), resolution: null };
      });
    }
    if (result.redriven + result.dropped > 0) this.deps.logger.info('dead letters redriven', { ...result, listener: filter.listener, sagaIds: filter.sagaIds?.slice(0, 20) });
    return result;
  }

  /**
   * Takes up to a batch of a DLQ's messages unacknowledged, lets `decide` pick those that leave,
   * acks them and puts every other one back in order.
   */
  private passOver(
    watched: Watched,
    decide: (held: GetMessage[], bodies: unknown[]) => Promise<{ leave: Set<number>; resolution: 'settled' | null }>,
  ): Promise<number> {
    const { broker } = this.deps;
    const dlq = watched.queue.deadLetterQueue;
    return broker.withChannel(async (channel) => {
      const { messageCount } = await channel.checkQueue(dlq);
      const held: GetMessage[] = [];
      for (let i = 0; i < Math.min(messageCount, this.deps.batchSize ?? 1000); i++) {
        const msg = await channel.get(dlq, { noAck: false });
        if (!msg) break;
        held.push(msg);
      }
      if (held.length === 0) return 0;
      let leave = new Set<number>();
      let settled = false;
      try {
        const decision = await decide(held, held.map(parseBody));
        leave = decision.leave;
        settled = decision.resolution === 'settled';
        if (decision.resolution) await this.deps.log.resolve([...leave].map((i) => idOf(held[i])), decision.resolution);
      } finally {
        held.forEach((msg, i) => (leave.has(i) ? channel.ack(msg) : channel.nack(msg, false, true)));
      }
      if (settled && leave.size > 0) this.deps.onResolved?.(dlq, leave.size);
      return leave.size;
    });
  }

  /** Publishes a dead letter back to its work queue (default exchange), as a first delivery. */
  private async sendBack(queue: WorkQueue, msg: GetMessage): Promise<void> {
    const headers: Record<string, unknown> = { ...msg.properties.headers, 'x-redriven-at': new Date().toISOString() };
    for (const name of ['x-death', 'x-deliveries', 'x-dlq-reason', 'x-dlq-error', 'x-dlq-queue', 'x-dlq-at', 'x-dlq-id', 'x-last-error']) delete headers[name];
    await this.deps.broker.publishBuffer('', queue.name, msg.content, { messageId: msg.properties.messageId, contentType: msg.properties.contentType, headers });
  }

  /** DLQ messages the log lacks (the database was away when they were dead-lettered): recorded now. */
  private async recordMissing(watched: Watched, held: GetMessage[]): Promise<void> {
    await this.deps.log.recordAll(held.map((msg) => fromDeadLetter(watched.queue, msg)));
  }
}

function rowOf(message: DeadLetteredMessage, listener: ConsumerName) {
  const body = (message.body && typeof message.body === 'object' ? message.body : {}) as { sagaId?: unknown; tag?: unknown };
  return {
    id: message.id,
    queue: message.queue,
    listener,
    message_id: message.messageId?.slice(0, 255) ?? null,
    saga_id: typeof body.sagaId === 'string' && ID.test(body.sagaId) ? body.sagaId : null,
    tag: typeof body.tag === 'string' ? body.tag.slice(0, 64) : null,
    reason: message.reason.slice(0, 32),
    error: message.error.slice(0, 4000),
    deliveries: message.deliveries,
    dead_lettered_at: new Date(message.at),
  };
}

/** The record of a message found in a DLQ, from the headers the broker layer gave it. */
function fromDeadLetter(queue: WorkQueue, msg: GetMessage): DeadLetteredMessage {
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
const idOf = (msg: GetMessage): string =>
  dlqIdOf(msg) ??
  createHash('sha256').update(String(msg.properties.messageId)).update('\0').update(String(msg.properties.headers?.['x-dlq-at'])).update(msg.content).digest('hex').slice(0, 64);

function parseBody(msg: GetMessage): unknown {
  try {
    return JSON.parse(msg.content.toString('utf8'));
  } catch {
    return null;
  }
}
