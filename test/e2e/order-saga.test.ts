import { expect } from 'chai';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { checkSeatInvariants, sagasSettled } from '../support/invariants';

describe('Order saga over HTTP', () => {
  const iso = isolate('order');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso, { rows: 4 }));
  });
  after(() => cleanup(iso, [app]));

  it('When the seats are free, then the order is created, its seats held and its saga COMPLETED with its four tags in order', async () => {
    const seatIds = freshSeats(2);
    const reply = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    expect(reply.status).to.equal(201);
    expect(reply.body).to.include({ status: 'PENDING_PAYMENT', showId: show.id, totalCents: 5_000 });
    expect(reply.body.seatIds).to.deep.equal(seatIds);
    expect(reply.body.id).to.match(/^\d+$/);
    expect(Date.parse(reply.body.expiresAt)).to.be.greaterThan(Date.now());

    const seats = (await api.get(`/api/shows/${show.id}/seats`)).body as Array<{ id: string; status: string }>;
    expect(seats.filter((s) => seatIds.includes(s.id)).map((s) => s.status)).to.deep.equal(['held', 'held']);
    expect((await api.get(`/api/shows/${show.id}`)).body.seatsAvailable).to.equal(show.seatsTotal - 2);

    const saga = (await api.saga(reply.body.sagaId)).body;
    expect(saga.status).to.equal('COMPLETED');
    expect(saga.steps.map((s: { tag: string }) => s.tag)).to.deep.equal([
      'order_seats_cancel',
      'order_add_seats_cancel',
      'order_calc_money_cancel',
      'order_add_cancel',
    ]);
    expect(saga.steps.every((s: { status: string }) => s.status === 'DONE')).to.equal(true);
    expect(saga.compensations).to.deep.equal([]);

    const fetched = await api.get(`/api/orders/${reply.body.id}`, buyer.auth);
    expect(fetched.status).to.equal(200);
    expect(fetched.body).to.include({ id: reply.body.id, status: 'PENDING_PAYMENT', sagaId: reply.body.sagaId });
    await checkSeatInvariants(app, show.id);
  });

  const failures: Array<{ failpoint: string; tag: string; expected: Record<string, 'DONE' | 'NOOP'> }> = [
    { failpoint: 'order.seats_check.before', tag: 'order_seats_cancel', expected: {} },
    { failpoint: 'order.seats_check.after', tag: 'order_seats_cancel', expected: {} },
    { failpoint: 'order.seats_hold.before', tag: 'order_add_seats_cancel', expected: { 'seat-release': 'NOOP' } },
    { failpoint: 'order.seats_hold.after', tag: 'order_add_seats_cancel', expected: { 'seat-release': 'DONE' } },
    { failpoint: 'order.calc_money.before', tag: 'order_calc_money_cancel', expected: { 'seat-release': 'DONE' } },
    { failpoint: 'order.calc_money.after', tag: 'order_calc_money_cancel', expected: { 'seat-release': 'DONE' } },
    { failpoint: 'order.order_add.before', tag: 'order_add_cancel', expected: { 'seat-release': 'DONE', 'order-delete': 'NOOP' } },
    { failpoint: 'order.order_add.after', tag: 'order_add_cancel', expected: { 'seat-release': 'DONE', 'order-delete': 'DONE' } },
  ];

  for (const { failpoint, tag, expected } of failures) {
    it(`When ${failpoint} fails, then SAGA_FAILED with ${tag}, the seats come back, no order row stays, and the saga is COMPENSATED`, async () => {
      const seatIds = freshSeats(2);
      expect((await api.setFailpoint(failpoint, { action: 'throw', count: 1 })).status).to.equal(200);

      const reply = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
      expect(reply.status).to.equal(500);
      expect(reply.body.error.code).to.equal('SAGA_FAILED');
      expect(reply.body.error.details.tag).to.equal(tag);
      const { sagaId } = reply.body.error.details;

      const saga = await waitFor('saga COMPENSATED', async () => {
        const view = (await api.saga(sagaId)).body;
        return view.status === 'COMPENSATED' && view;
      });
      expect(saga.failedTag).to.equal(tag);
      expect(saga.steps.at(-1)).to.include({ tag, status: 'FAILED' });
      const compensations = Object.fromEntries(saga.compensations.map((c: { listener: string; status: string; tag: string }) => [c.listener, c.status]));
      expect(compensations).to.deep.equal(expected);
      expect(saga.compensations.every((c: { tag: string }) => c.tag === tag)).to.equal(true);

      const seats = (await api.get(`/api/shows/${show.id}/seats`)).body as Array<{ id: string; status: string }>;
      expect(seats.filter((s) => seatIds.includes(s.id)).map((s) => s.status)).to.deep.equal(['available', 'available']);
      expect(await app.db('orders').where({ saga_id: sagaId }).first()).to.equal(undefined);
      expect(await app.db('seat_holds').whereIn('seat_id', seatIds).first()).to.equal(undefined);

      // The seats can be ordered again.
      const again = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
      expect(again.status).to.equal(201);
      await checkSeatInvariants(app, show.id);
    });
  }

  it('When an order is read back, then it is the one the POST answered, createdAt to the millisecond', async () => {
    const placed = await api.post('/api/orders', { showId: show.id, seatIds: freshSeats(1) }, buyer.auth);
    expect(placed.status).to.equal(201);
    const read = await api.get(`/api/orders/${placed.body.id}`, buyer.auth);
    expect(read.body.createdAt).to.equal(placed.body.createdAt);
    expect(read.body.expiresAt).to.equal(placed.body.expiresAt);
    const listed = (await api.get('/api/orders', buyer.auth)).body.find((o: { id: string }) => o.id === placed.body.id);
    expect(listed.createdAt).to.equal(placed.body.createdAt);
  });

  it("When recording a step's tag fails, then the saga is compensated from the previous step's tag and its seats come back", async () => {
    const seatIds = freshSeats(2);
    await api.setFailpoint('order.calc_money.record', { action: 'throw', count: 1 });
    const reply = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    expect(reply.status).to.equal(500);
    expect(reply.body.error.details.tag).to.equal('order_add_seats_cancel');
    const saga = await waitFor('compensated', async () => {
      const view = (await api.saga(reply.body.error.details.sagaId)).body;
      return view.status === 'COMPENSATED' && view;
    });
    expect(saga.steps.map((s: { step: string; status: string }) => [s.step, s.status])).to.deep.equal([
      ['seats_check', 'DONE'],
      ['seats_hold', 'FAILED'],
    ]);
    expect(saga.compensations.map((c: { listener: string; status: string }) => [c.listener, c.status])).to.deep.equal([['seat-release', 'DONE']]);
    expect(await app.db('seat_holds').whereIn('seat_id', seatIds).first()).to.equal(undefined);
    await checkSeatInvariants(app, show.id);
  });

  it('When a seat is already held, then the order answers 409 SEATS_TAKEN naming it and the holder keeps it', async () => {
    const [a, b] = freshSeats(2);
    const first = await api.post('/api/orders', { showId: show.id, seatIds: [a] }, buyer.auth);
    expect(first.status).to.equal(201);
    const second = await api.post('/api/orders', { showId: show.id, seatIds: [b, a] }, buyer.auth);
    expect(second.status).to.equal(409);
    expect(second.body.error.code).to.equal('SEATS_TAKEN');
    expect(second.body.error.details.seatIds).to.deep.equal([a]);
    await waitFor('sagas settled', () => sagasSettled(app));
    const seats = (await api.get(`/api/shows/${show.id}/seats`)).body as Array<{ id: string; status: string }>;
    expect(seats.find((s) => s.id === a)?.status).to.equal('held');
    expect(seats.find((s) => s.id === b)?.status).to.equal('available');
    await checkSeatInvariants(app, show.id);
  });

  it("When another user asks for an order, then it is 404, and the owner's list has it newest first", async () => {
    const other = await api.createUser('bob');
    const [seat] = freshSeats(1);
    const order = (await api.post('/api/orders', { showId: show.id, seatIds: [seat] }, buyer.auth)).body;
    expect((await api.get(`/api/orders/${order.id}`, other.auth)).status).to.equal(404);
    expect((await api.get('/api/orders', other.auth)).body).to.deep.equal([]);
    const mine = (await api.get('/api/orders', buyer.auth)).body as Array<{ id: string }>;
    expect(mine[0].id).to.equal(order.id);
    const ids = mine.map((o) => BigInt(o.id));
    expect([...ids].sort((x, y) => (x < y ? 1 : x > y ? -1 : 0))).to.deep.equal(ids);
  });
});
