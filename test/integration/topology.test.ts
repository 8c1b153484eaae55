import { expect } from 'chai';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { management } from '../support/management';

describe('RabbitMQ topology, as the management UI shows it', () => {
  const iso = isolate('topology');
  let app: TestApp;
  const vhost = '%2F';

  before(async () => {
    app = await startTestApp(iso);
  });
  after(() => cleanup(iso, [app]));

  it('When the service has started, then the compensation exchange is a durable topic exchange', async () => {
    const exchange = await management(`/exchanges/${vhost}/${encodeURIComponent(`${iso.namespace}.compensation`)}`);
    expect(exchange).to.include({ type: 'topic', durable: true, auto_delete: false });
  });

  it("When the bindings page is read, then each listener's queue is bound by exactly the tags it undoes", async () => {
    const bindings: Array<{ destination: string; routing_key: string }> = await management(
      `/exchanges/${vhost}/${encodeURIComponent(`${iso.namespace}.compensation`)}/bindings/source`,
    );
    const byQueue: Record<string, string[]> = {};
    for (const b of bindings) (byQueue[b.destination] ??= []).push(b.routing_key);
    for (const tags of Object.values(byQueue)) tags.sort();
    const q = (listener: string) => `${iso.namespace}.compensation.${listener}`;
    expect(byQueue).to.deep.equal({
      [q('seat-release')]: ['order_add_cancel', 'order_add_seats_cancel', 'order_calc_money_cancel', 'order_cancel'],
      [q('order-delete')]: ['order_add_cancel'],
      [q('balance-restore')]: ['pay_cancel', 'pay_money_cancel'],
    });
  });

  it('When the queues page is read, then every work queue is durable, dead-letters to its retry queue, and has a .dlq twin', async () => {
    expect(Object.keys(app.topology.listenerQueues).sort()).to.deep.equal(['balance-restore', 'order-delete', 'seat-release']);
    for (const workQueue of [...Object.values(app.topology.listenerQueues).map((q) => q), app.topology.expiry.dueQueue, app.topology.asyncOrders.queue]) {
      const queue = await management(`/queues/${vhost}/${encodeURIComponent(workQueue.name)}`);
      expect(queue.durable).to.equal(true);
      expect(queue.arguments).to.deep.equal({
        'x-dead-letter-exchange': `${iso.namespace}.dead-letter`,
        'x-dead-letter-routing-key': workQueue.retryQueue,
      });
      const retry = await management(`/queues/${vhost}/${encodeURIComponent(workQueue.retryQueue)}`);
      expect(retry.arguments).to.deep.equal({ 'x-message-ttl': 100, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': workQueue.name });
      const dlq = await management(`/queues/${vhost}/${encodeURIComponent(workQueue.deadLetterQueue)}`);
      expect(dlq.durable).to.equal(true);
      const dlqBindings: Array<{ source: string; routing_key: string }> = await management(
        `/queues/${vhost}/${encodeURIComponent(workQueue.deadLetterQueue)}/bindings`,
      );
      expect(dlqBindings.filter((b) => b.source !== '').map((b) => [b.source, b.routing_key])).to.deep.equal([
        [`${iso.namespace}.dead-letter`, workQueue.deadLetterQueue],
      ]);
    }
  });

  it('When the expiry exchange is read, then unpaid orders wait in a TTL queue named after the payment window, which dead-letters into the due queue', async () => {
    const bindings: Array<{ destination: string; routing_key: string }> = await management(
      `/exchanges/${vhost}/${encodeURIComponent(`${iso.namespace}.expiry`)}/bindings/source`,
    );
    const wait = `${iso.namespace}.expiry.wait-900000ms`;
    expect(bindings.map((b) => [b.destination, b.routing_key]).sort()).to.deep.equal([
      [`${iso.namespace}.expiry.due`, 'due'],
      [wait, 'wait-900000ms'],
    ]);
    const waitQueue = await management(`/queues/${vhost}/${encodeURIComponent(wait)}`);
    expect(waitQueue.durable).to.equal(true);
    expect(waitQueue.arguments).to.deep.equal({
      'x-message-ttl': 900_000,
      'x-dead-letter-exchange': `${iso.namespace}.expiry`,
      'x-dead-letter-routing-key': 'due',
    });
  });

  it('When the orders exchange is read, then accepted async orders go to the persist work queue', async () => {
    const exchange = await management(`/exchanges/${vhost}/${encodeURIComponent(`${iso.namespace}.orders`)}`);
    expect(exchange).to.include({ type: 'direct', durable: true });
    const bindings: Array<{ destination: string; routing_key: string }> = await management(
      `/exchanges/${vhost}/${encodeURIComponent(`${iso.namespace}.orders`)}/bindings/source`,
    );
    expect(bindings.map((b) => [b.destination, b.routing_key])).to.deep.equal([[`${iso.namespace}.orders.persist`, 'accepted']]);
  });

  it('When the connections page is read, then the service publishes and consumes on two connections, named after its namespace, role and side', async () => {
    const named = await waitFor(
      'the named connections',
      async () => {
        const connections: Array<{ client_properties: { connection_name?: string } }> = await management('/connections');
        const ours = connections.map((c) => c.client_properties.connection_name ?? '').filter((name) => name.startsWith(`${iso.namespace} all `));
        return ours.length === 2 && ours.sort();
      },
      15_000,
      500,
    );
    expect(named[0]).to.match(new RegExp(`^${iso.namespace} all .+:\\d+ consume$`));
    expect(named[1]).to.match(new RegExp(`^${iso.namespace} all .+:\\d+ publish$`));
  });

  it('When the consumers are listed, then each work queue has one with the configured prefetch', async () => {
    for (const workQueue of [...Object.values(app.topology.listenerQueues), app.topology.expiry.dueQueue]) {
      const queue = await waitFor(
        `a consumer on ${workQueue.name}`,
        async () => {
          const q = await management(`/queues/${vhost}/${encodeURIComponent(workQueue.name)}`);
          return q.consumer_details?.length >= 1 && q;
        },
        15_000,
        500,
      );
      expect(queue.consumer_details.map((c: { prefetch_count: number }) => c.prefetch_count)).to.deep.equal([32]);
      // The consumer tag says who consumes, and the consumer sits on the consuming connection.
      const [consumer] = queue.consumer_details as Array<{ consumer_tag: string; channel_details: { connection_name: string } }>;
      const who = workQueue === app.topology.expiry.dueQueue ? 'expiry' : workQueue.name.split('.').at(-1)!;
      expect(consumer.consumer_tag.startsWith(`${who} ${iso.namespace} all `)).to.equal(true);
      const connections: Array<{ name: string; client_properties: { connection_name?: string } }> = await management('/connections');
      const connection = connections.find((c) => c.name === consumer.channel_details.connection_name);
      expect(connection?.client_properties.connection_name).to.match(/ consume$/);
    }
    // The order consumer takes hundreds at a time: it persists them in batches.
    const persist = await waitFor(
      'a consumer on the persist queue',
      async () => {
        const q = await management(`/queues/${vhost}/${encodeURIComponent(app.topology.asyncOrders.queue.name)}`);
        return q.consumer_details?.length >= 1 && q;
      },
      15_000,
      500,
    );
    expect(persist.consumer_details.map((c: { prefetch_count: number }) => c.prefetch_count)).to.deep.equal([app.config.ASYNC_ORDER_PREFETCH]);
  });
});
