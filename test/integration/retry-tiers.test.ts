import { expect } from 'chai';
import { cleanup, isolate, startSale, type Sale } from '../support/fixture';
import { waitFor } from '../support/http';
import { management } from '../support/management';

describe('Retries that wait longer each time', function () {
  this.timeout(60_000);
  const iso = isolate('tiers');
  let sale: Sale;

  before(async () => {
    sale = await startSale(iso, {
      env: { RETRY_DELAYS_MS: '300,900,1800', MAX_DELIVERIES: '5', COMPENSATION_STALE_MS: '6000', DEAD_LETTER_RESOLVE_MS: '300' },
    });
  });
  after(() => cleanup(iso, [sale?.app]));

  it('When a compensation fails three times, then it waits 300, 900 and 1800 ms in the tier for its delivery count, and the fourth delivery applies it (nothing in the DLQ)', async () => {
    const { app, api, buyer, show } = sale;
    const queue = app.topology.listenerQueues['seat-release']!;
    const vhost = encodeURIComponent('/');
    for (const tier of queue.retryTiers) {
      const declared = await management(`/queues/${vhost}/${encodeURIComponent(tier.queue)}`);
      expect(declared.arguments).to.deep.equal({ 'x-message-ttl': tier.delayMs, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': queue.name });
    }

    await api.setFailpoint('listener.seat-release.before', { action: 'throw', count: 3 });
    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
    const failed = await api.post('/api/orders', { showId: show.id, seatIds: sale.freshSeats(2) }, buyer.auth);
    expect(failed.status).to.equal(500);
    const { sagaId } = failed.body.error.details;
    const failedAt = Date.now();
    await waitFor('the saga compensated', async () => (await api.saga(sagaId)).body.status === 'COMPENSATED', 20_000, 50);
    const tookMs = Date.now() - failedAt;
    expect(tookMs, 'the three waits add up to 3000 ms').to.be.within(2_900, 10_000);

    const retries = app.logs.lines.filter(
      (line) => line.message === 'message handling failed, will retry' && line.sagaId === sagaId && line.queue === queue.name,
    );
    expect(retries.map((line) => [line.deliveryCount, line.retryInMs, line.routingKey])).to.deep.equal([
      [1, 300, 'order_add_cancel'],
      [2, 900, 'order_add_cancel'],
      [3, 1800, 'order_add_cancel'],
    ]);
    expect(app.logs.lines.filter((line) => line.message === 'message moved to DLQ' && line.sagaId === sagaId)).to.deep.equal([]);
  });

  it('When a message fails on every delivery, then the last tier repeats until MAX_DELIVERIES, then it goes to the DLQ', async () => {
    const { app, api, buyer, show } = sale;
    const queue = app.topology.listenerQueues['order-delete']!;
    await api.setFailpoint('listener.order-delete.before', { action: 'throw', count: 5 });
    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
    const failed = await api.post('/api/orders', { showId: show.id, seatIds: sale.freshSeats(1) }, buyer.auth);
    const { sagaId } = failed.body.error.details;
    await waitFor('the poison in the DLQ', async () => app.logs.lines.some((l) => l.message === 'message moved to DLQ' && l.sagaId === sagaId), 20_000, 50);
    const retries = app.logs.lines.filter(
      (line) => line.message === 'message handling failed, will retry' && line.sagaId === sagaId && line.queue === queue.name,
    );
    expect(retries.map((line) => line.retryInMs)).to.deep.equal([300, 900, 1800, 1800]);
    await api.setFailpoint('listener.order-delete.before', { action: 'off' });
  });

  it('When a dead-lettered compensation is done since (the sweeper published it again), then its DLQ copy is resolved; a dead letter nothing settled stays', async () => {
    const { app, api } = sale;
    const queue = app.topology.listenerQueues['order-delete']!;
    // The saga of the previous test: its compensation is in the DLQ, and the saga COMPENSATING.
    const stuck = await app.db('sagas').where({ status: 'COMPENSATING' }).pluck('id');
    expect(stuck).to.have.length(1);
    // A dead letter of a saga that does not exist: nothing will ever settle it.
    await app.broker.publish(
      app.topology.exchanges.deadLetter,
      queue.deadLetterQueue,
      { sagaId: '999999999999', tag: 'order_add_cancel' },
      { messageId: 'unsettled' },
    );

    await waitFor('the sweeper to compensate it again', async () => (await api.saga(stuck[0])).body.status === 'COMPENSATED', 20_000, 100);
    const resolved = async () =>
      (await app.metrics.deadLettersResolved.get()).values.filter((v) => v.labels.queue === queue.deadLetterQueue).reduce((sum, v) => sum + v.value, 0);
    await waitFor('its DLQ copy resolved', async () => (await resolved()) >= 1, 10_000, 100);
    await new Promise((resolve) => setTimeout(resolve, 1_000)); // a few more passes
    expect(await resolved()).to.equal(1);
    // What is left: a resolver pass holds the DLQ's messages for a moment, so read it for a while.
    const left: unknown[] = [];
    for (const until = Date.now() + 1_500; Date.now() < until;) {
      const msg = await app.broker.withChannel((ch) => ch.get(queue.deadLetterQueue, { noAck: true }));
      if (msg) left.push(JSON.parse(msg.content.toString()));
      else await new Promise((resolve) => setTimeout(resolve, 50));
    }
    expect(left).to.deep.equal([{ sagaId: '999999999999', tag: 'order_add_cancel' }]);
  });
});
