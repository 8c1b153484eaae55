import type { Db } from '../db/database';
import type { ListenerName, Topology, WorkQueue } from '../messaging/topology';

/**
 * The work queues whose DLQs operators see: each with the name of its consumer and how to tell
 * which of its dead letters have since been settled some other way (so the resolver takes them
 * out and a redrive drops them).
 */

/** The consumer of a work queue, as operators name it: a compensation listener, or the expiry and order writers. */
export const CONSUMER_NAMES = ['seat-release', 'order-delete', 'balance-restore', 'expiry', 'order-writer'] as const satisfies ReadonlyArray<
  ListenerName | 'expiry' | 'order-writer'
>;
export type ConsumerName = (typeof CONSUMER_NAMES)[number];

/** Which of these dead-lettered bodies have since been settled some other way (by index). */
export type SettledCheck = (db: Db, bodies: unknown[]) => Promise<Set<number>>;

export interface Watched {
  consumer: ConsumerName;
  queue: WorkQueue;
  settled: SettledCheck;
}

/** A snowflake id, as the message bodies carry them. */
export const DECIMAL_ID = /^\d{1,20}$/;
const idsOf = (bodies: unknown[], pick: (body: Record<string, unknown>) => unknown[]): Array<[number, string]> =>
  bodies.flatMap((body, i) =>
    (body && typeof body === 'object' ? pick(body as Record<string, unknown>) : [])
      .filter((id): id is string => typeof id === 'string' && DECIMAL_ID.test(id))
      .map((id) => [i, id] as [number, string]),
  );

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
  const unpaid = new Set<string>(
    orderIds.length
      ? await db('orders')
          .whereIn(
            'id',
            orderIds.map(([, id]) => id),
          )
          .andWhere({ status: 'PENDING_PAYMENT' })
          .pluck('id')
      : [],
  );
  const withOrders = new Set(orderIds.map(([i]) => i));
  return new Set([...withOrders].filter((i) => !orderIds.some(([j, id]) => j === i && unpaid.has(id))));
};

/** An async order message is settled once its reservation has an outcome (the reconciler's). */
const reservationSettled: SettledCheck = async (db, bodies) => {
  const orderIds = idsOf(bodies, (body) => [body.orderId]);
  const resolved = new Set<string>(
    orderIds.length
      ? await db('reservations')
          .whereIn(
            'order_id',
            orderIds.map(([, id]) => id),
          )
          .pluck('order_id')
      : [],
  );
  return new Set(orderIds.filter(([, id]) => resolved.has(id)).map(([i]) => i));
};

/** Every work queue with a DLQ, with its consumer's name and how to tell its dead letters settled. */
export function watchedQueues(topology: Topology): Watched[] {
  return [
    ...Object.entries(topology.listenerQueues).map(([listener, queue]) => ({
      consumer: listener as ListenerName,
      queue: queue,
      settled: compensationSettled(listener as ListenerName),
    })),
    { consumer: 'expiry' as const, queue: topology.expiry.dueQueue, settled: expirySettled },
    { consumer: 'order-writer' as const, queue: topology.asyncOrders.queue, settled: reservationSettled },
  ];
}
