import { expect } from 'chai';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { checkSeatInvariants } from '../support/invariants';

describe('Channels that die while the connection lives', () => {
  const iso = isolate('channels');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso));
  });
  after(() => cleanup(iso, [app]));

  async function failedSagaIsCompensated() {
    const seatIds = freshSeats(1);
    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
    const reply = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    expect(reply.status).to.equal(500);
    await waitFor('compensated', async () => (await api.saga(reply.body.error.details.sagaId)).body.status === 'COMPENSATED', 15_000);
    expect(await app.db('seat_holds').whereIn('seat_id', seatIds).first()).to.equal(undefined);
  }

  it('When a listener queue is deleted under its consumer, then the queue is declared again and its consumer restarts', async () => {
    const queue = app.topology.listenerQueues['seat-release']!;
    await app.broker.withChannel((ch) => ch.deleteQueue(queue.name));
    await waitFor(
      'the queue back with a consumer',
      async () => {
        const info = await app.broker.withChannel((ch) => ch.checkQueue(queue.name)).catch(() => null);
        return info && info.consumerCount === 1;
      },
      10_000,
      100,
    );
    await failedSagaIsCompensated();
    expect(app.logs.lines.some((l) => l.message === 'rabbitmq cancelled a consumer, restarting it')).to.equal(true);
  });

  it('When the compensation exchange is deleted, then the failed publish is retried once the publisher has declared it again', async () => {
    await app.broker.withChannel((ch) => ch.deleteExchange(app.topology.exchanges.compensation));
    // The next compensation is published to a missing exchange: the broker closes the publishing
    // channel (404); the relay keeps the outbox row, the channel is reopened with the topology.
    await failedSagaIsCompensated();
    expect(app.logs.lines.some((l) => l.message === 'rabbitmq channel closed, reopening it' && l.channel === 'publisher')).to.equal(true);
    await checkSeatInvariants(app, show.id);
  });
});
