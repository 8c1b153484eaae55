import { expect } from 'chai';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkSeatInvariants, sagasSettled } from '../support/invariants';

describe('Order saga under concurrent requests', () => {
  const iso = isolate('concurrency');
  let app: TestApp;
  let api: Api;
  let buyers: Array<Awaited<ReturnType<Api['createUser']>>>;

  before(async () => {
    app = await startTestApp(iso);
    api = new Api(app.url!);
    buyers = [];
    for (let i = 0; i < 10; i++) buyers.push(await api.createUser(`buyer-${i}`));
  });
  after(() => cleanup(iso, [app]));

  it('When 200 orders race for the same seat, then exactly one is created and 199 answer SEATS_TAKEN', async () => {
    const show = await api.createShow(1, 10);
    const seat = show.seatIds[0];
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => api.post('/api/orders', { showId: show.id, seatIds: [seat] }, buyers[i % buyers.length].auth)),
    );
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s === 201)).to.have.length(1);
    expect(statuses.filter((s) => s === 409)).to.have.length(199);
    expect(replies.filter((r) => r.status === 409).every((r) => r.body.error.code === 'SEATS_TAKEN')).to.equal(true);

    await waitFor('every saga settled', () => sagasSettled(app), 20_000);
    const counts = await checkSeatInvariants(app, show.id);
    expect(counts).to.deep.equal({ sold: 0, held: 1, available: 9 });
    const winner = replies.find((r) => r.status === 201)!.body;
    expect(await app.db('seat_holds').where({ seat_id: seat }).first('order_id')).to.deep.equal({ order_id: winner.id });
    expect(await app.db('orders').where({ show_id: show.id }).count({ n: '*' })).to.deep.equal([{ n: '1' }]);
  });

  it('When 500 orders of random seat pairs race on a 100-seat show, then no seat is in two orders and sold + held + available = total', async () => {
    const show = await api.createShow(10, 10);
    let seed = 42;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31) / 2 ** 31;
    const pairs = Array.from({ length: 500 }, () => {
      const a = Math.floor(random() * 100);
      let b = Math.floor(random() * 99);
      if (b >= a) b += 1;
      return [show.seatIds[a], show.seatIds[b]];
    });
    const replies = await Promise.all(pairs.map((seatIds, i) => api.post('/api/orders', { showId: show.id, seatIds }, buyers[i % buyers.length].auth)));
    const created = replies.filter((r) => r.status === 201);
    const others = replies.filter((r) => r.status !== 201);
    expect(
      others.every((r) => r.status === 409 && r.body.error.code === 'SEATS_TAKEN'),
      JSON.stringify(others.find((r) => r.status !== 409)?.body),
    ).to.equal(true);
    expect(created.length).to.be.within(1, 50);

    // No seat in two created orders.
    const ordered = created.flatMap((r) => r.body.seatIds as string[]);
    expect(new Set(ordered).size).to.equal(ordered.length);

    await waitFor('every saga settled', () => sagasSettled(app), 30_000);
    const counts = await checkSeatInvariants(app, show.id);
    expect(counts.held).to.equal(ordered.length);
    expect(counts.sold + counts.held + counts.available).to.equal(100);
    const [{ n }] = await app.db('sagas').where({ status: 'COMPENSATED' }).count({ n: '*' });
    expect(Number(n)).to.be.at.least(others.length);
  });
});
