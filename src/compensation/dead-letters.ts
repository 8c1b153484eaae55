import type { GetMessage } from 'amqplib';
import type { Db } from '../db/database';
import type { Broker } from '../messaging/broker';
import type { ListenerName, Topology, WorkQueue } from '../messaging/topology';
import type { Logger } from '../observability/logger';

/** Which of these dead-lettered bodies have since been settled some other way (by index). */
type SettledCheck = (db: Db, bodies: unknown[]) => Promise<Set<number>>;

interface Watched {
  queue: WorkQueue;
  settled: SettledCheck;
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
    return new Set(
      sagaIds.filter(([i, id]) => compensated.has(id) || done.has(`${id}/${(bodies[i] as { tag?: unknown }).tag}`)).map(([i]) => i),
    );
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

export interface DeadLetterResolverDeps {
  db: Db;
  broker: Broker;
  topology: Topology;
  logger: Logger;
  onResolved?: (queue: string, count: number) => void;
  /** Messages looked at per DLQ and pass, at most. */
  batchSize?: number;
}

/**
 * Takes out of the DLQs what no longer needs an operator: a compensation whose saga was
 * compensated since (the recovery sweeper published it again), an expiry whose orders the sweep
 * expired, an async order whose reservation the reconciler resolved. The DLQs cannot be browsed
 * without taking their messages, so a pass gets each one unacknowledged, acks the settled ones
 * and puts the others back (a message that cannot be read stays for an operator).
 */
export class DeadLetterResolver {
  private readonly watched: Watched[];

  constructor(private readonly deps: DeadLetterResolverDeps) {
    const { topology } = deps;
    this.watched = [
      ...Object.entries(topology.listenerQueues).map(([listener, queue]) => ({ queue: queue!, settled: compensationSettled(listener as ListenerName) })),
      { queue: topology.expiry.dueQueue, settled: expirySettled },
      { queue: topology.asyncOrders.queue, settled: reservationSettled },
    ];
  }

  /** One pass over every DLQ; returns how many messages it resolved in each. */
  async resolveOnce(): Promise<Record<string, number>> {
    const resolved: Record<string, number> = {};
    for (const { queue, settled } of this.watched) {
      const count = await this.resolveQueue(queue.deadLetterQueue, settled);
      if (count > 0) resolved[queue.deadLetterQueue] = count;
    }
    return resolved;
  }

  private resolveQueue(dlq: string, settled: SettledCheck): Promise<number> {
    const { broker, db, logger } = this.deps;
    return broker.withChannel(async (channel) => {
      const { messageCount } = await channel.checkQueue(dlq);
      const held: GetMessage[] = [];
      for (let i = 0; i < Math.min(messageCount, this.deps.batchSize ?? 500); i++) {
        const msg = await channel.get(dlq, { noAck: false });
        if (!msg) break;
        held.push(msg);
      }
      if (held.length === 0) return 0;
      let done = new Set<number>();
      try {
        done = await settled(db, held.map(parseBody));
      } finally {
        // Settled ones leave; the rest go back, in order, for an operator (or the next pass).
        held.forEach((msg, i) => (done.has(i) ? channel.ack(msg) : channel.nack(msg, false, true)));
      }
      if (done.size > 0) {
        logger.info('dead letters resolved: settled since they were dead-lettered', {
          queue: dlq,
          count: done.size,
          sagaIds: [...done].map((i) => (parseBody(held[i]) as { sagaId?: string } | null)?.sagaId).filter(Boolean).slice(0, 20),
        });
        this.deps.onResolved?.(dlq, done.size);
      }
      return done.size;
    });
  }
}

function parseBody(msg: GetMessage): unknown {
  try {
    return JSON.parse(msg.content.toString('utf8'));
  } catch {
    return null;
  }
}
