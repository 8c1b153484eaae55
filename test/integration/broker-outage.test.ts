import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { toNumber } from '../../src/db/database';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { checkSeatInvariants, sagasSettled } from '../support/invariants';

const run = promisify(execFile);
/** The broker's control tool; RABBITMQCTL may name another (e.g. "docker compose exec -T rabbitmq rabbitmqctl"). */
const RABBITMQCTL = (process.env.RABBITMQCTL ?? 'rabbitmqctl').split(' ');
const rabbitmqctl = (...args: string[]) => run(RABBITMQCTL[0], [...RABBITMQCTL.slice(1), ...args], { timeout: 60_000 });

describe('RabbitMQ outages', function () {
  this.timeout(120_000);
  const iso = isolate('outage');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso));
  });
  after(async () => {
    await rabbitmqctl('start_app').catch(() => {}); // never leave the broker stopped
    await cleanup(iso, [app]);
  });

  const pendingOutbox = async () => toNumber((await app.db('outbox').whereNull('sent_at').count({ n: '*' }))[0].n);
  /** Unsent compensation messages (the outbox also carries each order's expiry message). */
  const pendingCompensations = async () =>
    toNumber((await app.db('outbox').whereNull('sent_at').where({ exchange: app.topology.exchanges.compensation }).count({ n: '*' }))[0].n);

  it('When RabbitMQ stops and starts again, then the service reconnects, the outbox drains and every failed saga is compensated', async () => {
    await rabbitmqctl('stop_app');
    try {
      await waitFor('the service to notice', async () => !app.broker.isConnected, 15_000);
      const health = await api.get('/health');
      expect(health.status).to.equal(503);
      expect(health.body).to.deep.include({ rabbitmq: 'down', mysql: 'up', redis: 'up' });

      // Orders still work (the order saga needs no broker), and failures are queued in the outbox.
      expect((await api.post('/api/orders', { showId: show.id, seatIds: freshSeats(1) }, buyer.auth)).status).to.equal(201);
      await api.setFailpoint('order.order_add.after', { action: 'throw', count: 5 });
      const failed = await Promise.all(Array.from({ length: 5 }, () => api.post('/api/orders', { showId: show.id, seatIds: freshSeats(2) }, buyer.auth)));
      expect(failed.map((r) => r.status)).to.deep.equal([500, 500, 500, 500, 500]);
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(await pendingCompensations()).to.equal(5);
      for (const reply of failed) expect((await api.saga(reply.body.error.details.sagaId)).body.status).to.equal('COMPENSATING');
    } finally {
      await rabbitmqctl('start_app');
    }

    await waitFor('the service to reconnect', async () => app.broker.isConnected, 30_000, 200);
    await waitFor('the outbox to drain', async () => (await pendingOutbox()) === 0, 15_000);
    await waitFor('every saga settled', () => sagasSettled(app), 15_000);
    expect((await api.get('/health')).status).to.equal(200);
    await checkSeatInvariants(app, show.id);
  });

  it('When every connection is closed while a listener is mid-delivery, then it reconnects, never acks on the dead channel, and the redelivery changes nothing', async () => {
    await waitFor('connected', async () => app.broker.isConnected, 30_000);
    const outcomes = async () =>
      Object.fromEntries(
        (await app.metrics.compensations.get()).values.filter((v) => v.labels.listener === 'seat-release').map((v) => [v.labels.outcome, v.value]),
      );
    const doneBefore = (await outcomes()).done ?? 0;
    // Long enough for rabbitmqctl (slow to start on a busy machine) to close the connections while
    // the delivery is still in progress: a shorter delay let the delivery ack first, now and then.
    await api.setFailpoint('listener.seat-release.before', { action: 'delay', ms: 5_000, count: 1 });
    await api.setFailpoint('order.seats_hold.after', { action: 'throw', count: 1 });
    const seatIds = freshSeats(2);
    const failed = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    const { sagaId } = failed.body.error.details;
    await waitFor('the delivery to be in progress', async () => !('listener.seat-release.before' in app.failpoints.list()), 5_000, 20);

    await rabbitmqctl('close_all_connections', 'seat-saga test: connections closed on purpose');
    await waitFor('compensated', async () => (await api.saga(sagaId)).body.status === 'COMPENSATED', 20_000, 100);
    await waitFor('reconnected', async () => app.broker.isConnected, 30_000);
    // The in-flight delivery committed but could not ack; its redelivery is recognised as done,
    // by Redis or (when it came before the key said so) by the database.
    await waitFor(
      'the redelivery',
      async () => {
        const counts = await outcomes();
        return (counts['duplicate-redis'] ?? 0) + (counts['duplicate-db'] ?? 0) >= 1;
      },
      20_000,
      100,
    );
    expect((await outcomes()).done - doneBefore).to.equal(1);
    expect(await app.db('saga_compensations').where({ saga_id: sagaId, listener: 'seat-release' }).count({ n: '*' })).to.deep.equal([{ n: '1' }]);
    const channelErrors = app.logs.lines.filter((l) => /channel error/.test(l.message) && /delivery tag|PRECONDITION/.test(String(l.error)));
    expect(channelErrors).to.deep.equal([]);

    // After all that, new failures are still compensated.
    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
    const later = await api.post('/api/orders', { showId: show.id, seatIds: freshSeats(1) }, buyer.auth);
    await waitFor('compensated after reconnecting', async () => (await api.saga(later.body.error.details.sagaId)).body.status === 'COMPENSATED', 10_000);
    await checkSeatInvariants(app, show.id);
  });
});
