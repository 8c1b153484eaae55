/**
 * The whole RabbitMQ topology, declared in one place. Names say who consumes and why; every work
 * queue has a dead-letter twin. All names are prefixed with NAMESPACE so two instances (or a test
 * run) never see each other's messages.
 *
 *   <ns>.compensation (topic)  --tag-->  <ns>.compensation.<listener>          (work queue)
 *   <ns>.dead-letter  (direct) --<q>.retry-->          <q>.retry           (1st retry tier, e.g. 1 s)
 *   <ns>.dead-letter  (direct) --<q>.retry-<ms>ms-->   <q>.retry-<ms>ms    (later tiers: 10 s, 1 min, 5 min)
 *   <ns>.dead-letter  (direct) --<q>.dlq-->            <q>.dlq             (exhausted or unreadable messages)
 *
 * Retries wait longer and longer (RETRY_DELAYS_MS), so an outage of several minutes parks nothing
 * in a DLQ. RabbitMQ 3.10 has no delayed-message plugin and expires messages only at the head of
 * a queue, so each delay is a queue of its own whose message TTL sends its messages back to the
 * work queue through the default exchange. A consumer moves a failed message into the tier for
 * its delivery count (a confirmed publish, then the ack) and counts deliveries in a header of
 * its own. A message rejected outright still dead-letters into the first tier (`.retry`).
 *
 * Unpaid-order expiry, the durable trigger (RabbitMQ 3.10 has no delayed-message plugin):
 *
 *   <ns>.expiry (direct) --wait-<ms>ms-->  <ns>.expiry.wait-<ms>ms   (no consumer; message TTL <ms>)
 *                        <--due-- (dead-lettered when the TTL runs out)
 *   <ns>.expiry (direct) --due-->          <ns>.expiry.due           (work queue: expire the order)
 *
 * RabbitMQ expires messages only at the head of a queue, so one wait queue per delay value: all
 * of its messages share one TTL and leave in order. A new PAYMENT_WINDOW_MS gets its own queue;
 * the old one drains into the same exchange.
 *
 * Async (flash-sale) orders, accepted over HTTP once their seats are reserved in Redis:
 *
 *   <ns>.orders (direct) --accepted-->  <ns>.orders.persist   (work queue: workers persist in batches)
 */

export type ListenerName = 'seat-release' | 'order-delete' | 'balance-restore';

/** What the topology needs to know of a saga: its steps' tags and who undoes each. */
export interface CompensationRoute {
  tag: string;
  undoneBy: readonly ListenerName[];
}

export interface ExchangeSpec {
  name: string;
  type: 'topic' | 'direct' | 'fanout';
}

export interface QueueSpec {
  name: string;
  arguments: Record<string, unknown>;
  bindings: Array<{ exchange: string; routingKey: string }>;
}

/** A queue that a consumer reads, with the names of its retry tiers and dead-letter twin. */
export interface WorkQueue {
  name: string;
  /** The first retry tier, where rejected messages dead-letter to. */
  retryQueue: string;
  /** Every retry tier, shortest first: the n-th failed delivery waits in tier min(n, last). */
  retryTiers: Array<{ queue: string; delayMs: number }>;
  deadLetterQueue: string;
}

export interface Topology {
  exchanges: {
    compensation: string;
    deadLetter: string;
    expiry: string;
    orders: string;
  };
  /** Where accepted async orders go, and the queue the workers persist them from. */
  asyncOrders: { exchange: string; routingKey: string; queue: WorkQueue };
  /** Where an order's expiry message goes (exchange + routing key) and the queue that acts on it. */
  expiry: { exchange: string; waitRoutingKey: string; waitQueue: string; dueQueue: WorkQueue };
  /** The work queue of each compensation listener some saga step routes to. */
  listenerQueues: Partial<Record<ListenerName, WorkQueue>>;
  /** Tag -> listeners it routes to, as bound. */
  listenersByTag: Map<string, ListenerName[]>;
  declaredExchanges: ExchangeSpec[];
  declaredQueues: QueueSpec[];
}

export interface TopologyOptions {
  namespace: string;
  /** RETRY_DELAYS_MS: the wait before each retry, shortest first (the last one repeats). */
  retryDelaysMs: readonly number[];
  /** PAYMENT_WINDOW_MS: the delay of the expiry wait queue. */
  paymentWindowMs: number;
  /** QUEUE_TYPE: classic (default) or quorum (replicated, for a RabbitMQ cluster). */
  queueType?: 'classic' | 'quorum';
  /** MAX_DELIVERIES: on quorum queues, also the broker's delivery limit of a work queue. */
  maxDeliveries?: number;
}

/** MAX_DELIVERIES' default, for a topology built without it. */
const DEFAULT_DELIVERY_LIMIT = 8;

export function buildTopology(
  { namespace: ns, retryDelaysMs, paymentWindowMs, queueType = 'classic', maxDeliveries = DEFAULT_DELIVERY_LIMIT }: TopologyOptions,
  routes: readonly CompensationRoute[],
): Topology {
  const compensation = `${ns}.compensation`;
  const deadLetter = `${ns}.dead-letter`;
  const declaredQueues: QueueSpec[] = [];
  const consumed = new Set<string>();
  if (retryDelaysMs.length === 0) throw new Error('at least one retry delay is needed');

  /** A work queue with its retry tiers (`delays`, or only the first) and its DLQ. */
  const workQueue = (name: string, bindings: QueueSpec['bindings'], delays: readonly number[] = retryDelaysMs): WorkQueue => {
    // The first tier keeps the plain `.retry` name: it is where the work queue dead-letters to.
    const retryTiers = [...new Set(delays)].map((delayMs, i) => ({ queue: i === 0 ? `${name}.retry` : `${name}.retry-${delayMs}ms`, delayMs }));
    const queue = { name, retryQueue: retryTiers[0].queue, retryTiers, deadLetterQueue: `${name}.dlq` };
    consumed.add(name);
    declaredQueues.push({
      name,
      arguments: { 'x-dead-letter-exchange': deadLetter, 'x-dead-letter-routing-key': queue.retryQueue },
      bindings,
    });
    for (const tier of retryTiers) {
      declaredQueues.push({
        name: tier.queue,
        arguments: { 'x-message-ttl': tier.delayMs, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': name },
        bindings: [{ exchange: deadLetter, routingKey: tier.queue }],
      });
    }
    declaredQueues.push({ name: queue.deadLetterQueue, arguments: {}, bindings: [{ exchange: deadLetter, routingKey: queue.deadLetterQueue }] });
    return queue;
  };

  const listenersByTag = new Map<string, ListenerName[]>();
  for (const route of routes) {
    const known = listenersByTag.get(route.tag);
    if (known && known.join() !== route.undoneBy.join()) {
      throw new Error(`tag ${route.tag} is declared twice with different listeners`);
    }
    listenersByTag.set(route.tag, [...route.undoneBy]);
  }

  // A listener gets a queue once some saga step names it: no queue without a binding.
  const listeners = [...new Set(routes.flatMap((route) => route.undoneBy))];
  const listenerQueues: Partial<Record<ListenerName, WorkQueue>> = {};
  for (const listener of listeners) {
    const tags = [...listenersByTag].filter(([, listeners]) => listeners.includes(listener)).map(([tag]) => tag);
    listenerQueues[listener] = workQueue(
      `${compensation}.${listener}`,
      tags.map((tag) => ({ exchange: compensation, routingKey: tag })),
    );
  }

  const expiryExchange = `${ns}.expiry`;
  const waitRoutingKey = `wait-${paymentWindowMs}ms`;
  const waitQueue = `${expiryExchange}.${waitRoutingKey}`;
  declaredQueues.push({
    name: waitQueue,
    arguments: { 'x-message-ttl': paymentWindowMs, 'x-dead-letter-exchange': expiryExchange, 'x-dead-letter-routing-key': 'due' },
    bindings: [{ exchange: expiryExchange, routingKey: waitRoutingKey }],
  });
  const dueQueue = workQueue(`${expiryExchange}.due`, [{ exchange: expiryExchange, routingKey: 'due' }]);

  const ordersExchange = `${ns}.orders`;
  // An order message is stale after ORDER_MAX_QUEUE_DELAY_MS (seconds): longer waits serve nothing.
  const persistQueue = workQueue(`${ordersExchange}.persist`, [{ exchange: ordersExchange, routingKey: 'accepted' }], retryDelaysMs.slice(0, 1));

  if (queueType === 'quorum')
    for (const queue of declaredQueues) Object.assign(queue.arguments, quorumArguments(queue, consumed.has(queue.name), maxDeliveries));

  return {
    exchanges: { compensation, deadLetter, expiry: expiryExchange, orders: ordersExchange },
    expiry: { exchange: expiryExchange, waitRoutingKey, waitQueue, dueQueue },
    asyncOrders: { exchange: ordersExchange, routingKey: 'accepted', queue: persistQueue },
    listenerQueues,
    listenersByTag,
    declaredExchanges: [
      { name: compensation, type: 'topic' },
      { name: deadLetter, type: 'direct' },
      { name: expiryExchange, type: 'direct' },
      { name: ordersExchange, type: 'direct' },
    ],
    declaredQueues,
  };
}

/**
 * QUEUE_TYPE=quorum: every queue of the namespace, tiers and DLQs included, is a quorum queue,
 * replicated over the cluster's nodes, so nothing waiting anywhere (a retry, an order's expiry, a
 * dead letter) is lost or out of reach with one node. Added to the usual arguments:
 *  - message TTL stays as it is: quorum queues honour `x-message-ttl` since RabbitMQ 3.10 (at the
 *    head of the queue, like classic ones), so the retry tiers and the expiry wait queue keep
 *    their design, and are replicated too (a classic tier would live on one node only);
 *  - every queue that dead-letters (work queues, tiers, the wait queue) does it at-least-once
 *    (`x-dead-letter-strategy`): the broker keeps the message until the target queue confirmed
 *    it, instead of a fire-and-forget hop that a node failure can lose. The strategy requires
 *    `x-overflow: reject-publish` (without it RabbitMQ silently falls back to at-most-once);
 *    no queue has a length limit, so nothing is ever refused for it;
 *  - work queues get an explicit `x-delivery-limit` of MAX_DELIVERIES: a message that comes back
 *    that often without a verdict (its consumer dies with it, again and again) is dead-lettered
 *    into the first retry tier instead of looping hot. Failures with a verdict are counted by
 *    the consumers themselves (the `x-deliveries` header) and end in the DLQ as before;
 *  - no delivery limit on the DLQs: the dead-letter resolver puts their messages back on every
 *    pass, and a DLQ has nowhere to dead-letter to, so a limit would drop dead letters. Tiers and
 *    the wait queue have no consumer at all.
 */
function quorumArguments(queue: QueueSpec, consumed: boolean, maxDeliveries: number): Record<string, unknown> {
  const args: Record<string, unknown> = { 'x-queue-type': 'quorum' };
  if (queue.arguments['x-dead-letter-exchange'] !== undefined) {
    args['x-dead-letter-strategy'] = 'at-least-once';
    args['x-overflow'] = 'reject-publish';
  }
  if (consumed) args['x-delivery-limit'] = maxDeliveries;
  return args;
}

/** Every exchange and queue name of a namespace, for tests and operators that clean up. */
export function topologyNames(topology: Topology): { exchanges: string[]; queues: string[] } {
  return {
    exchanges: topology.declaredExchanges.map((e) => e.name),
    queues: topology.declaredQueues.map((q) => q.name),
  };
}

/** What declaring needs of a connection (amqplib's ChannelModel). */
interface ChannelOpener {
  createChannel(): Promise<{
    on(event: 'error', listener: (err: Error) => void): unknown;
    assertExchange(name: string, type: string, options: { durable: boolean }): Promise<unknown>;
    assertQueue(name: string, options: { durable: boolean; arguments: Record<string, unknown> }): Promise<unknown>;
    bindQueue(queue: string, exchange: string, routingKey: string): Promise<unknown>;
    close(): Promise<void>;
  }>;
}

/** Declares (again: every declaration is idempotent) every exchange, queue and binding, on a channel of its own. */
export async function declareTopology(model: ChannelOpener, exchanges: readonly ExchangeSpec[], queues: readonly QueueSpec[]): Promise<void> {
  const declare = await model.createChannel();
  declare.on('error', () => {});
  try {
    for (const exchange of exchanges) await declare.assertExchange(exchange.name, exchange.type, { durable: true });
    for (const queue of queues) {
      await declare.assertQueue(queue.name, { durable: true, arguments: queue.arguments }).catch((err: unknown) => {
        throw new Error(
          `cannot declare queue ${queue.name} (${err instanceof Error ? err.message : String(err)}); if its arguments changed (e.g. the first of RETRY_DELAYS_MS), delete the queue or restore the setting`,
        );
      });
      for (const binding of queue.bindings) await declare.bindQueue(queue.name, binding.exchange, binding.routingKey);
    }
  } finally {
    await declare.close().catch(() => {});
  }
}
