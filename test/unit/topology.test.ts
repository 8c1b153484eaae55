import { expect } from 'chai';
import { buildTopology } from '../../src/messaging/topology';

describe('Topology', () => {
  const routes = [
    { tag: 'order_seats_cancel', undoneBy: [] },
    { tag: 'order_add_seats_cancel', undoneBy: ['seat-release'] },
    { tag: 'order_add_cancel', undoneBy: ['seat-release', 'order-delete'] },
  ] as const;

  it('When saga steps name the listeners that undo them, then each listener queue is bound by exactly those tags', () => {
    const topology = buildTopology({ namespace: 'ns', retryDelaysMs: [1000], paymentWindowMs: 900_000 }, routes);
    const bindings = Object.fromEntries(
      topology.declaredQueues.filter((q) => q.bindings.some((b) => b.exchange === 'ns.compensation')).map((q) => [q.name, q.bindings.map((b) => b.routingKey)]),
    );
    expect(bindings).to.deep.equal({
      'ns.compensation.seat-release': ['order_add_seats_cancel', 'order_add_cancel'],
      'ns.compensation.order-delete': ['order_add_cancel'],
    });
    expect(topology.listenersByTag.get('order_seats_cancel')).to.deep.equal([]);
    expect(topology.listenersByTag.get('order_add_cancel')).to.deep.equal(['seat-release', 'order-delete']);
  });

  it('When a work queue is declared, then it has a retry twin that returns to it and a .dlq twin', () => {
    const topology = buildTopology({ namespace: 'ns', retryDelaysMs: [250], paymentWindowMs: 900_000 }, routes);
    const byName = new Map(topology.declaredQueues.map((q) => [q.name, q]));
    const work = topology.listenerQueues['seat-release']!;
    expect(byName.get(work.name)!.arguments).to.deep.equal({
      'x-dead-letter-exchange': 'ns.dead-letter',
      'x-dead-letter-routing-key': 'ns.compensation.seat-release.retry',
    });
    expect(byName.get(work.retryQueue)!.arguments).to.deep.equal({
      'x-message-ttl': 250,
      'x-dead-letter-exchange': '',
      'x-dead-letter-routing-key': work.name,
    });
    expect(byName.get(work.deadLetterQueue)!.bindings).to.deep.equal([{ exchange: 'ns.dead-letter', routingKey: 'ns.compensation.seat-release.dlq' }]);
    expect(topology.listenerQueues['balance-restore']).to.equal(undefined);
  });

  it('When retries have several delays, then each work queue gets a TTL queue per delay, all returning to it, the first under the plain .retry name; the order queue keeps only the first', () => {
    const topology = buildTopology({ namespace: 'ns', retryDelaysMs: [1000, 10_000, 60_000, 300_000], paymentWindowMs: 900_000 }, routes);
    const byName = new Map(topology.declaredQueues.map((q) => [q.name, q]));
    const work = topology.listenerQueues['seat-release']!;
    expect(work.retryTiers).to.deep.equal([
      { queue: 'ns.compensation.seat-release.retry', delayMs: 1000 },
      { queue: 'ns.compensation.seat-release.retry-10000ms', delayMs: 10_000 },
      { queue: 'ns.compensation.seat-release.retry-60000ms', delayMs: 60_000 },
      { queue: 'ns.compensation.seat-release.retry-300000ms', delayMs: 300_000 },
    ]);
    for (const tier of work.retryTiers) {
      expect(byName.get(tier.queue)).to.deep.equal({
        name: tier.queue,
        arguments: { 'x-message-ttl': tier.delayMs, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': work.name },
        bindings: [{ exchange: 'ns.dead-letter', routingKey: tier.queue }],
      });
    }
    expect(topology.expiry.dueQueue.retryTiers).to.have.length(4);
    expect(topology.asyncOrders.queue.retryTiers).to.deep.equal([{ queue: 'ns.orders.persist.retry', delayMs: 1000 }]);
    expect(() => buildTopology({ namespace: 'ns', retryDelaysMs: [], paymentWindowMs: 900_000 }, routes)).to.throw(/retry delay/);
  });

  it('When the payment window is set, then orders wait in a TTL queue of that delay, named after it, which dead-letters into the due queue', () => {
    const topology = buildTopology({ namespace: 'ns', retryDelaysMs: [250], paymentWindowMs: 120_000 }, routes);
    const byName = new Map(topology.declaredQueues.map((q) => [q.name, q]));
    expect(topology.expiry).to.include({ exchange: 'ns.expiry', waitRoutingKey: 'wait-120000ms', waitQueue: 'ns.expiry.wait-120000ms' });
    expect(byName.get('ns.expiry.wait-120000ms')).to.deep.equal({
      name: 'ns.expiry.wait-120000ms',
      arguments: { 'x-message-ttl': 120_000, 'x-dead-letter-exchange': 'ns.expiry', 'x-dead-letter-routing-key': 'due' },
      bindings: [{ exchange: 'ns.expiry', routingKey: 'wait-120000ms' }],
    });
    expect(byName.get('ns.expiry.due')!.bindings).to.deep.equal([{ exchange: 'ns.expiry', routingKey: 'due' }]);
    expect(topology.expiry.dueQueue.deadLetterQueue).to.equal('ns.expiry.due.dlq');
    const other = buildTopology({ namespace: 'ns', retryDelaysMs: [250], paymentWindowMs: 60_000 }, routes);
    expect(other.expiry.waitQueue).to.equal('ns.expiry.wait-60000ms');
  });

  it('When one tag is declared with two different listener lists, then building the topology fails', () => {
    expect(() =>
      buildTopology({ namespace: 'ns', retryDelaysMs: [1], paymentWindowMs: 900_000 }, [
        { tag: 't', undoneBy: ['seat-release'] },
        { tag: 't', undoneBy: ['order-delete'] },
      ]),
    ).to.throw(/declared twice/);
  });

  it('When QUEUE_TYPE is quorum, then every queue is declared as a quorum queue with its usual arguments; classic by default', () => {
    const quorum = buildTopology({ namespace: 'ns', retryDelaysMs: [250], paymentWindowMs: 60_000, queueType: 'quorum' }, routes);
    expect(quorum.declaredQueues.length).to.be.greaterThan(0);
    for (const queue of quorum.declaredQueues) expect(queue.arguments['x-queue-type'], queue.name).to.equal('quorum');
    expect(quorum.declaredQueues.find((q) => q.name === 'ns.orders.persist')!.arguments).to.deep.equal({
      'x-dead-letter-exchange': 'ns.dead-letter',
      'x-dead-letter-routing-key': 'ns.orders.persist.retry',
      'x-queue-type': 'quorum',
      'x-dead-letter-strategy': 'at-least-once',
      'x-overflow': 'reject-publish',
      'x-delivery-limit': 8,
    });
    const classic = buildTopology({ namespace: 'ns', retryDelaysMs: [250], paymentWindowMs: 60_000 }, routes);
    for (const queue of classic.declaredQueues) {
      for (const name of ['x-queue-type', 'x-delivery-limit', 'x-dead-letter-strategy', 'x-overflow'])
        expect(queue.arguments, queue.name).to.not.have.property(name);
    }
  });

  it('When QUEUE_TYPE is quorum, then work queues have MAX_DELIVERIES as delivery limit, every queue that dead-letters does it at-least-once, TTLs stay, and DLQs have no limit', () => {
    const topology = buildTopology({ namespace: 'ns', retryDelaysMs: [250, 5_000], paymentWindowMs: 60_000, queueType: 'quorum', maxDeliveries: 5 }, routes);
    const byName = new Map(topology.declaredQueues.map((q) => [q.name, q.arguments]));
    const work = [topology.listenerQueues['seat-release']!, topology.listenerQueues['order-delete']!, topology.expiry.dueQueue, topology.asyncOrders.queue];
    for (const queue of work) {
      expect(byName.get(queue.name), queue.name).to.include({
        'x-delivery-limit': 5,
        'x-dead-letter-strategy': 'at-least-once',
        'x-overflow': 'reject-publish',
      });
      for (const tier of queue.retryTiers) {
        expect(byName.get(tier.queue), tier.queue).to.deep.equal({
          'x-message-ttl': tier.delayMs,
          'x-dead-letter-exchange': '',
          'x-dead-letter-routing-key': queue.name,
          'x-queue-type': 'quorum',
          'x-dead-letter-strategy': 'at-least-once',
          'x-overflow': 'reject-publish',
        });
      }
      // The dead-letter resolver puts DLQ messages back every pass: a delivery limit would drop them.
      expect(byName.get(queue.deadLetterQueue), queue.deadLetterQueue).to.deep.equal({ 'x-queue-type': 'quorum' });
    }
    expect(byName.get(topology.expiry.waitQueue)).to.deep.equal({
      'x-message-ttl': 60_000,
      'x-dead-letter-exchange': 'ns.expiry',
      'x-dead-letter-routing-key': 'due',
      'x-queue-type': 'quorum',
      'x-dead-letter-strategy': 'at-least-once',
      'x-overflow': 'reject-publish',
    });
  });
});
