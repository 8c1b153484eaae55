import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { bulkBuyers } from '../support/buyers';
import { cleanup, isolate, kill, spawnService, startTestApp, testEnv, type Isolation, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { allResolved, checkReservationsResolved, checkSeatInvariants, resolvedCount } from '../support/invariants';

const exited = (child: ChildProcess) =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => child.once('exit', () => resolve()));

/** Places `n` async orders of one seat each, from `n` different buyers; returns their ids. */
async function placeOrders(app: TestApp, api: Api, showId: string, n: number, prefix: string): Promise<string[]> {
  const buyers = await bulkBuyers(app, n, prefix);
  const replies = await Promise.all(buyers.map((buyer) => api.post('/api/orders/async', { showId, quantity: 1 }, buyer.auth)));
  expect(replies.map((r) => r.status)).to.deep.equal(replies.map(() => 202));
  return replies.map((r) => r.body.orderId);
}

/** Exactly one order, one saga with its four steps and one hold per seat for each persisted order. */
async function expectNoDuplicates(app: TestApp, orderIds: string[]): Promise<void> {
  const count = async (table: string, column: string) => Number((await app.db(table).whereIn(column, orderIds).count({ n: '*' }))[0].n);
  expect(await count('orders', 'id'), 'orders').to.equal(orderIds.length);
  expect(await count('sagas', 'order_id'), 'sagas').to.equal(orderIds.length);
  expect(await count('seat_holds', 'order_id'), 'seat holds').to.equal(orderIds.length);
  const [{ n }] = await app.db('saga_steps').join('sagas', 'sagas.id', 'saga_steps.saga_id').whereIn('sagas.order_id', orderIds).count({ n: '*' });
  expect(Number(n), 'saga steps').to.equal(4 * orderIds.length);
}

/** Workers start in seconds here (tsx): no message may turn stale meanwhile. */
const SLOW_QUEUE = { ORDER_MAX_QUEUE_DELAY_MS: '60000', RESERVATION_RECONCILE_AFTER_MS: '120000' };

describe('Async orders across processes and crashes', () => {
  let iso: Isolation;
  let api: TestApp;
  let client: Api;
  const children: ChildProcess[] = [];

  /** An API-only process in this test, the workers as OS processes started by each test. */
  beforeEach(async () => {
    iso = isolate('async-recovery');
    api = await startTestApp(iso, SLOW_QUEUE, 'api');
    client = new Api(api.url!);
  });
  afterEach(async () => {
    for (const child of children.splice(0)) await kill(child);
    await cleanup(iso, [api]);
  });

  const worker = async (env: Record<string, string> = {}) => {
    const child = await spawnService(testEnv(iso, { ...SLOW_QUEUE, ...env }), 'worker');
    children.push(child);
    return child;
  };

  it('When the worker is killed in the middle of a batch (inside its transaction), then the orders are redelivered and persisted once, none lost', async function () {
    this.timeout(120_000);
    const show = await client.createShow(2, 50);
    const crashing = await worker({ FAILPOINTS: 'async_order.persist.before=crash' });
    const orderIds = await placeOrders(api, client, show.id, 60, 'mid-batch');
    await exited(crashing);
    expect(await resolvedCount(api, orderIds), 'nothing committed by the killed worker').to.equal(0);

    await worker();
    await allResolved(api, orderIds);
    const { persisted } = await checkReservationsResolved(api, show.id, orderIds);
    expect(persisted).to.have.length(60);
    await expectNoDuplicates(api, orderIds);
    await checkSeatInvariants(api, show.id);
  });

  it('When the worker is killed after its commit and before its ack, then the redelivered messages make no second order', async function () {
    this.timeout(120_000);
    const show = await client.createShow(2, 50);
    const crashing = await worker({ FAILPOINTS: 'async_order.persist.after=crash' });
    const orderIds = await placeOrders(api, client, show.id, 60, 'after-commit');
    await exited(crashing);
    const committed = await resolvedCount(api, orderIds);
    expect(committed, 'the killed worker committed its first batch').to.be.greaterThan(0);

    await worker();
    await allResolved(api, orderIds);
    // The redeliveries of the committed batch also cleared their pending entries in Redis (the
    // killed worker never did), well before the reconciler's 30 s: checked here.
    await waitFor('no reservation pending', async () => (await api.redis.zcard(api.inventory.keys(show.id).pending)) === 0, 10_000, 100);
    await checkReservationsResolved(api, show.id, orderIds);
    await expectNoDuplicates(api, orderIds);
    await checkSeatInvariants(api, show.id);
  });

  it('When a worker in another process persists the order, then ?waitMs answers 201; when it is slower than waitMs, 202 and the timeout is counted', async function () {
    this.timeout(120_000);
    const show = await client.createShow(1, 10);
    await worker({ FAILPOINTS: 'async_order.consume.before=delay:1500' });
    const [buyer, late] = await bulkBuyers(api, 2, 'waiter');

    const waited = await client.post('/api/orders/async?waitMs=8000', { showId: show.id, quantity: 1 }, buyer.auth);
    expect(waited.status, JSON.stringify(waited.body)).to.equal(201);
    expect(waited.body).to.include({ status: 'PENDING_PAYMENT', showId: show.id });

    const timedOut = await client.post('/api/orders/async?waitMs=300', { showId: show.id, quantity: 1 }, late.auth);
    expect(timedOut.status).to.equal(202);
    expect(timedOut.body.status).to.equal('QUEUED');
    expect((await client.get(`/api/orders/${timedOut.body.orderId}`, late.auth)).status, 'not persisted yet').to.equal(404);
    await waitFor('the late order persisted', async () => (await client.get(`/api/orders/${timedOut.body.orderId}`, late.auth)).status === 200, 20_000, 100);
    expect((await client.get('/metrics')).body).to.match(/^seat_saga_async_order_wait_timeouts_total 1$/m);
  });

  it('When the API process dies between the reservation and the publish, then the reconciler releases the reservation whose message never came', async function () {
    this.timeout(120_000);
    const show = await client.createShow(1, 4);
    const reconciler = await startTestApp(iso, { ORDER_MAX_QUEUE_DELAY_MS: '500', RESERVATION_RECONCILE_AFTER_MS: '1000' }, 'worker');
    try {
      const dying = await spawnService(testEnv(iso, { FAILPOINTS: 'async_order.publish.before=crash' }), 'api');
      children.push(dying);
      const url = /listening on (http:\/\/[\d.:]+)/.exec(dying.output.join(''))![1];
      const [buyer] = await bulkBuyers(api, 1, 'orphan');
      const attempt = await fetch(`${url}/api/orders/async`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', ...buyer.auth },
        body: JSON.stringify({ showId: show.id, seatIds: [show.seatIds[0]] }),
      }).then(
        (res) => `answered ${res.status}`,
        () => 'connection lost',
      );
      expect(attempt).to.equal('connection lost');
      await exited(dying);
      const { pending: pendingKey } = api.inventory.keys(show.id);
      const [orphan] = await api.redis.zrange(pendingKey, '0', '-1');
      expect(orphan, 'the reservation was made before the crash').to.be.a('string');
      expect(await api.redis.hget(api.inventory.keys(show.id).holds, show.seatIds[0])).to.equal(orphan);

      const outcome = await waitFor(
        'the reconciler released it',
        () => api.db('reservations').where({ order_id: orphan }).first('outcome', 'reason'),
        20_000,
        100,
      );
      expect(outcome).to.deep.equal({ outcome: 'RELEASED', reason: 'reconciler' });
      // The database decides first, then the view follows: the pending entry goes right after.
      await waitFor('the pending entry gone from the view', async () => (await api.redis.zcard(pendingKey)) === 0, 5_000, 50);
      await checkSeatInvariants(api, show.id);
      expect(
        (await client.post('/api/orders/async', { showId: show.id, seatIds: [show.seatIds[0]] }, buyer.auth)).status,
        'the seat and the repeat slot are free',
      ).to.equal(202);
      expect(await reconciler.metrics.registry.getSingleMetricAsString('seat_saga_reservations_released_total')).to.match(/reason="reconciler"} 1/);
    } finally {
      await reconciler.stop();
    }
  });
});
