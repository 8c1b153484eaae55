import { expect } from 'chai';
import type { GetMessage } from 'amqplib';
import { DELIVERIES_HEADER } from '../../src/messaging/broker';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';

describe('Dead-lettering', () => {
  const iso = isolate('dlq');
  let app: TestApp;
  let api: Api;

  before(async () => {
    app = await startTestApp(iso, { MAX_DELIVERIES: '3', RETRY_DELAY_MS: '150' });
    api = new Api(app.url!);
  });
  after(() => cleanup(iso, [app]));

  const getFromQueue = (queue: string) => app.broker.withChannel((ch) => ch.get(queue, { noAck: true }));

  async function drainQueue(queue: string): Promise<GetMessage[]> {
    const messages: GetMessage[] = [];
    for (;;) {
      const msg = await getFromQueue(queue);
      if (!msg) return messages;
      messages.push(msg);
    }
  }

  it('When a compensation keeps failing, then it reaches the DLQ after its bounded retries with the reason in its headers, and messages behind it still flow', async () => {
    const queue = app.topology.listenerQueues['seat-release']!;
    // A poison message: well-formed, but for a saga that does not exist, so every attempt fails.
    const poison = {
      sagaId: '999999999999',
      sagaType: 'order',
      tag: 'order_add_seats_cancel',
      failedStep: 'seats_hold',
      input: { orderId: '1', showId: '1', seatIds: ['1'] },
    };
    await app.broker.publish(app.topology.exchanges.compensation, poison.tag, poison, { messageId: 'poison-1' });

    // A real failure published right behind it is compensated while the poison is retried.
    const buyer = await api.createUser('ann');
    const show = await api.createShow(1, 4);
    await api.setFailpoint('order.seats_hold.after', { action: 'throw', count: 1 });
    const failed = await api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[0]] }, buyer.auth);
    expect(failed.status).to.equal(500);
    await waitFor('the real compensation to finish', async () => (await api.saga(failed.body.error.details.sagaId)).body.status === 'COMPENSATED', 5_000);

    const dead = await waitFor(
      'the poison message in the DLQ',
      async () => {
        const msg = await getFromQueue(queue.deadLetterQueue);
        return msg ?? undefined;
      },
      10_000,
    );
    expect(JSON.parse(dead.content.toString())).to.deep.equal(poison);
    const headers = dead.properties.headers!;
    expect(headers['x-dlq-reason']).to.equal('retries-exhausted');
    expect(headers['x-dlq-error']).to.match(/saga 999999999999 does not exist/);
    expect(headers['x-dlq-queue']).to.equal(queue.name);
    expect(headers['x-original-routing-key']).to.equal('order_add_seats_cancel');
    expect(headers['x-original-exchange']).to.equal(app.topology.exchanges.compensation);
    // 3 deliveries = 2 moves into the retry tier, each waiting out its TTL there.
    expect(headers[DELIVERIES_HEADER]).to.equal(2);
    const waits = (headers['x-death'] as Array<{ queue: string; reason: string; count: number }>).find(
      (d) => d.queue === queue.retryQueue && d.reason === 'expired',
    );
    expect(waits?.count).to.equal(2);
    // Counted once the broker confirmed the DLQ copy, which a reader of the DLQ can see a moment before.
    const deadLetteredFromQueue = async () =>
      (await app.metrics.deadLettered.get()).values.filter((v) => v.labels.queue === queue.name).reduce((sum, v) => sum + v.value, 0);
    await waitFor('the dead-letter counted', async () => (await deadLetteredFromQueue()) >= 1, 5_000);
    expect(await deadLetteredFromQueue()).to.equal(1);

    // Nothing is left stuck in the work queue or its retry queue.
    expect(await drainQueue(queue.name)).to.have.length(0);
    expect(await drainQueue(queue.retryQueue)).to.have.length(0);
  });

  it('When a message is not JSON at all, then it goes to the DLQ at once as unreadable', async () => {
    const queue = app.topology.listenerQueues['order-delete']!;
    await app.broker.withChannel(async (ch) => {
      ch.publish(app.topology.exchanges.compensation, 'order_add_cancel', Buffer.from('{not json'), { persistent: true });
    });
    const dead = await waitFor('the unreadable message in the DLQ', async () => (await getFromQueue(queue.deadLetterQueue)) ?? undefined, 5_000);
    expect(dead.content.toString()).to.equal('{not json');
    expect(dead.properties.headers!['x-dlq-reason']).to.equal('unreadable');
    expect(dead.properties.headers!['x-death']).to.equal(undefined); // never retried
  });
});
