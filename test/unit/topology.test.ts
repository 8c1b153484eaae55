import { expect } from 'chai';
import { buildTopology } from '../../src/messaging/topology';

describe('Topology', () => {
  const routes = [
    { tag: 'order_seats_cancel', undoneBy: [] },
    { tag: 'order_add_seats_cancel', undoneBy: ['seat-release'] },
    { tag: 'order_add_cancel', undoneBy: ['seat-release', 'order-delete'] },
  ] as const;

  it('When saga steps name the listeners that undo them, then each listener queue is bound by exactly those tags', () => {
    const topology = buildTopology({ namespace: 'ns', retryDelayMs: 1000 }, routes);
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
    const topology = buildTopology({ namespace: 'ns', retryDelayMs: 250 }, routes);
    const byName = new Map(topology.declaredQueues.map((q) => [q.name, q]));
    const work = topology.listenerQueues['seat-release']!;
    expect(byName.get(work.name)!.arguments).to.deep.equal({ 'x-dead-letter-exchange': 'ns.dead-letter', 'x-dead-letter-routing-key': 'ns.compensation.seat-release.retry' });
    expect(byName.get(work.retryQueue)!.arguments).to.deep.equal({ 'x-message-ttl': 250, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': work.name });
    expect(byName.get(work.deadLetterQueue)!.bindings).to.deep.equal([{ exchange: 'ns.dead-letter', routingKey: 'ns.compensation.seat-release.dlq' }]);
    expect(topology.listenerQueues['balance-restore']).to.equal(undefined);
  });

  it('When one tag is declared with two different listener lists, then building the topology fails', () => {
    expect(() =>
      buildTopology({ namespace: 'ns', retryDelayMs: 1 }, [
        { tag: 't', undoneBy: ['seat-release'] },
        { tag: 't', undoneBy: ['order-delete'] },
      ]),
    ).to.throw(/declared twice/);
  });
});
