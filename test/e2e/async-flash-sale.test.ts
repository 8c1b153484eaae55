import { expect } from 'chai';
import { deleteKeysWithPrefix } from '../../src/db/redis';
import { bulkBuyers } from '../support/buyers';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api, waitFor, type Reply } from '../support/http';
import { allResolved, checkReservationsResolved, checkSeatInvariants } from '../support/invariants';
import { managedQueue } from '../support/management';

describe('Async orders under a flash sale', () => {
  const iso = isolate('flash-sale');
  let app: TestApp;
  let api: Api;

  before(async () => {
    app = await startTestApp(iso, { ORDER_MAX_QUEUE_DELAY_MS: '20000' });
    api = new Api(app.url!);
  });
  after(() => cleanup(iso, [app]));

  it('When a show has the maximum of 100,000 seats, then its view loads, rebuilds after a loss and takes orders', async function () {
    this.timeout(120_000);
    const show = await api.createShow(100, 1000);
    const [buyer] = await bulkBuyers(app, 1, 'big-show');
    expect((await api.post('/api/orders/async?waitMs=5000', { showId: show.id, quantity: 2 }, buyer.auth)).status).to.equal(201);
    const { free, holds, meta, pending, reservations } = app.inventory.keys(show.id);
    await app.redis.del(free, holds, meta, pending, reservations);
    // The rebuilt view settles (ORDER_MAX_QUEUE_DELAY_MS + 1 s); the sync path is not held back.
    expect((await api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[99_999]] }, buyer.auth)).status).to.equal(201);
    expect(await app.redis.zcard(app.inventory.keys(show.id).free)).to.equal(99_997);
  });

  it('When 2,000 buyers order at once on 100 seats, then exactly 100 orders are persisted, the rest are SOLD_OUT or SEATS_TAKEN, and no seat is sold twice', async function () {
    this.timeout(180_000);
    const show = await api.createShow(10, 10);
    const buyers = await bulkBuyers(app, 2_000, 'flash');
    // Half ask for any seat, half for a given one (20 buyers per seat): both paths of the script race.
    const replies: Reply[] = await Promise.all(
      buyers.map((buyer, i) =>
        api.post('/api/orders/async', i % 2 === 0 ? { showId: show.id, quantity: 1 } : { showId: show.id, seatIds: [show.seatIds[i % 100]] }, buyer.auth),
      ),
    );
    const accepted = replies.filter((r) => r.status === 202).map((r) => r.body.orderId as string);
    const refused = replies.filter((r) => r.status !== 202);
    const codes = new Set(refused.map((r) => `${r.status} ${r.body?.error?.code}`));
    expect(
      [...codes].every((c) => c === '409 SOLD_OUT' || c === '409 SEATS_TAKEN'),
      [...codes].join(', '),
    ).to.equal(true);
    expect(accepted).to.have.length(100);

    await allResolved(app, accepted);
    const { persisted, released } = await checkReservationsResolved(app, show.id, accepted);
    expect(persisted).to.have.length(100);
    expect(released).to.have.length(0);
    const seats: string[] = await app.db('order_seats').whereIn('order_id', accepted).pluck('seat_id');
    expect(new Set(seats).size).to.equal(100);
    expect(await checkSeatInvariants(app, show.id)).to.deep.equal({ sold: 0, held: 100, available: 0 });
    const [{ n }] = await app.db('orders').where({ show_id: show.id }).count({ n: '*' });
    expect(Number(n)).to.equal(100);
    // The consumer acks a batch's run in one frame: none may be left unacknowledged behind it.
    await waitFor(
      'the order queue empty and nothing unacknowledged',
      async () => {
        const queue = await managedQueue(app.topology.asyncOrders.queue.name);
        return queue.consumers > 0 && queue.messages_ready === 0 && queue.messages_unacknowledged === 0;
      },
      20_000,
      500,
    );
  });
});

describe('Async orders when Redis loses its data', () => {
  const iso = isolate('flash-flush');
  let app: TestApp;
  let api: Api;

  before(async () => {
    // A rebuilt view settles for ORDER_MAX_QUEUE_DELAY_MS + 1 s.
    app = await startTestApp(iso, { ORDER_MAX_QUEUE_DELAY_MS: '3000' });
    api = new Api(app.url!);
  });
  after(() => cleanup(iso, [app]));

  it('When Redis loses its keys in the middle of a sale, then the view is rebuilt from the database before it takes orders again, and nothing is oversold', async function () {
    this.timeout(180_000);
    const show = await api.createShow(4, 50);
    const buyers = await bulkBuyers(app, 600, 'flush');
    const wave = (from: number, to: number) =>
      Promise.all(buyers.slice(from, to).map((buyer) => api.post('/api/orders/async', { showId: show.id, quantity: 1 }, buyer.auth)));

    const first = await wave(0, 150);
    // Some of the first wave are still queued when Redis forgets everything of this namespace.
    const lost = await deleteKeysWithPrefix(app.redis, `${iso.namespace}:`);
    expect(lost).to.be.greaterThan(0);
    const second = await wave(150, 600);
    const settling = second.filter((r) => r.status === 503);
    // Until the queue holds nothing older than the rebuild, the rebuilt show takes no async orders.
    expect(settling.length, 'refused while the rebuilt view settles').to.be.greaterThan(0);
    expect(settling.every((r) => r.headers.get('retry-after') !== null)).to.equal(true);
    const third = await waitFor(
      'the rebuilt view takes orders again',
      async () => {
        const replies = await wave(150, 600);
        return replies.some((r) => r.status === 202) ? replies : null;
      },
      30_000,
      500,
    );

    const all = [...first, ...second, ...third];
    const accepted = all.filter((r) => r.status === 202).map((r) => r.body.orderId as string);
    expect(all.filter((r) => ![202, 409, 503].includes(r.status)).map((r) => r.status)).to.deep.equal([]);
    await allResolved(app, accepted);
    const { persisted } = await checkReservationsResolved(app, show.id, accepted);
    const counts = await checkSeatInvariants(app, show.id);
    expect(counts.held).to.equal(persisted.length);
    expect(persisted.length).to.be.at.most(200);
    const seats: string[] = await app.db('order_seats').whereIn('order_id', persisted).pluck('seat_id');
    expect(new Set(seats).size).to.equal(seats.length);
  });
});
