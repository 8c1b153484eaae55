/**
 * The whole RabbitMQ topology, declared in one place. Names say who consumes and why; every work
 * queue has a dead-letter twin. All names are prefixed with NAMESPACE so two instances (or a test
 * run) never see each other's messages.
 *
 *   <ns>.compensation (topic)  --tag-->  <ns>.compensation.<listener>          (work queue)
 *   <ns>.dead-letter  (direct) --<q>.retry-->  <q>.retry   (wait RETRY_DELAY_MS, then back to <q>)
 *   <ns>.dead-letter  (direct) --<q>.dlq-->    <q>.dlq     (exhausted or unreadable messages)
 *
 * A work queue dead-letters rejected messages into its `.retry` queue, whose message TTL sends
 * them back to the work queue through the default exchange. The broker counts each round trip in
 * the message's `x-death` header, which is how consumers know how many deliveries a message had.
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

/** A queue that a consumer reads, with the names of its retry and dead-letter twins. */
export interface WorkQueue {
  name: string;
  retryQueue: string;
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
  retryDelayMs: number;
  /** PAYMENT_WINDOW_MS: the delay of the expiry wait queue. */
  paymentWindowMs: number;
  /** QUEUE_TYPE: classic (default) or quorum (replicated, for a RabbitMQ cluster). */
  queueType?: 'classic' | 'quorum';
}

export function buildTopology({ namespace: ns, retryDelayMs, paymentWindowMs, queueType = 'classic' }: TopologyOptions, routes: readonly CompensationRoute[]): Topology {
  const compensation = `${ns}.compensation`;
  const deadLetter = `${ns}.dead-letter`;
  const declaredQueues: QueueSpec[] = [];

  const workQueue = (name: string, bindings: QueueSpec['bindings']): WorkQueue => {
    const queue = { name, retryQueue: `${name}.retry`, deadLetterQueue: `${name}.dlq` };
    declaredQueues.push(
      {
        name,
        arguments: { 'x-dead-letter-exchange': deadLetter, 'x-dead-letter-routing-key': queue.retryQueue },
        bindings,
      },
      {
        name: queue.retryQueue,
        arguments: {
          'x-message-ttl': retryDelayMs,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': name,
        },
        bindings: [{ exchange: deadLetter, routingKey: queue.retryQueue }],
      },
      { name: queue.deadLetterQueue, arguments: {}, bindings: [{ exchange: deadLetter, routingKey: queue.deadLetterQueue }] },
    );
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
  const persistQueue = workQueue(`${ordersExchange}.persist`, [{ exchange: ordersExchange, routingKey: 'accepted' }]);

  // Quorum queues (RabbitMQ 3.10+) keep the same arguments: dead-lettering and message TTL work there too.
  if (queueType === 'quorum') for (const queue of declaredQueues) queue.arguments['x-queue-type'] = 'quorum';

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

/** Every exchange and queue name of a namespace, for tests and operators that clean up. */
export function topologyNames(topology: Topology): { exchanges: string[]; queues: string[] } {
  return {
    exchanges: topology.declaredExchanges.map((e) => e.name),
    queues: topology.declaredQueues.map((q) => q.name),
  };
}
