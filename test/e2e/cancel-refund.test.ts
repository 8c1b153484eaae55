import { expect } from 'chai';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { checkMoneyInvariant, checkSeatInvariants, sagasSettled } from '../support/invariants';

describe('Cancel and refund over HTTP', () => {
  const iso = isolate('cancel');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];
  let other: Sale['buyer'];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso, { rows: 4 }));
    await api.credit(buyer.id, 100_000);
    other = await api.createUser('other');
    await api.credit(other.id, 100_000);
  });
  after(() => cleanup(iso, [app]));

  const seatStatuses = async (seatIds: string[]) => {
    const seats = (await api.get(`/api/shows/${show.id}/seats`)).body as Array<{ id: string; status: string }>;
    return seats.filter((s) => seatIds.includes(s.id)).map((s) => s.status);
  };
  const released = (seatIds: string[]) => waitFor('seats available again', async () => (await seatStatuses(seatIds)).every((s) => s === 'available'));

  it('When the owner cancels a pending order, then it is CANCELLED and its seats come back through order_cancel', async () => {
    const order = await api.order(buyer, show.id, freshSeats(2));
    const reply = await api.post(`/api/orders/${order.id}/cancel`, undefined, buyer.auth);
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.equal({ id: order.id, status: 'CANCELLED' });
    await released(order.seatIds);
    expect((await api.get(`/api/orders/${order.id}`, buyer.auth)).body.status).to.equal('CANCELLED');

    const release = await app.db('sagas').where({ order_id: order.id, type: 'cancel' }).first('id');
    const saga = await waitFor('release saga COMPENSATED', async () => {
      const view = (await api.saga(release.id)).body;
      return view.status === 'COMPENSATED' && view;
    });
    expect(saga.steps.map((s: { tag: string }) => s.tag)).to.deep.equal(['order_cancel']);
    expect(saga.compensations.map((c: { tag: string; listener: string; status: string }) => [c.tag, c.listener, c.status])).to.deep.equal([
      ['order_cancel', 'seat-release', 'DONE'],
    ]);
    // The seats can be sold again.
    expect((await api.post('/api/orders', { showId: show.id, seatIds: order.seatIds }, other.auth)).status).to.equal(201);
    await checkSeatInvariants(app, show.id);
  });

  it("When a user cancels another user's order, then 404 and the order stays pending", async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const reply = await api.post(`/api/orders/${order.id}/cancel`, undefined, other.auth);
    expect(reply.status).to.equal(404);
    expect(reply.body.error.code).to.equal('NOT_FOUND');
    expect((await api.get(`/api/orders/${order.id}`, buyer.auth)).body.status).to.equal('PENDING_PAYMENT');
    expect(await seatStatuses(order.seatIds)).to.deep.equal(['held']);
  });

  it('When a paid or already cancelled order is cancelled, then 409 ORDER_NOT_PAYABLE and nothing changes', async () => {
    const paid = await api.order(buyer, show.id, freshSeats(1));
    expect((await api.pay(buyer, paid.id)).status).to.equal(200);
    const reply = await api.post(`/api/orders/${paid.id}/cancel`, undefined, buyer.auth);
    expect(reply.status).to.equal(409);
    expect(reply.body.error).to.deep.include({ code: 'ORDER_NOT_PAYABLE', details: { status: 'PAID' } });
    expect(await seatStatuses(paid.seatIds)).to.deep.equal(['sold']);

    const cancelled = await api.order(buyer, show.id, freshSeats(1));
    expect((await api.post(`/api/orders/${cancelled.id}/cancel`, undefined, buyer.auth)).status).to.equal(200);
    const twice = await api.post(`/api/orders/${cancelled.id}/cancel`, undefined, buyer.auth);
    expect(twice.status).to.equal(409);
    expect(await app.db('sagas').where({ order_id: cancelled.id, type: 'cancel' }).count({ n: '*' })).to.deep.equal([{ n: '1' }]);
  });

  it('When cancel comes with a body, then 400 and the order stays pending', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const reply = await api.post(`/api/orders/${order.id}/cancel`, { force: true }, buyer.auth);
    expect(reply.status).to.equal(400);
    expect((await api.get(`/api/orders/${order.id}`, buyer.auth)).body.status).to.equal('PENDING_PAYMENT');
  });

  it('When the owner refunds a paid order, then it is REFUNDED, the money is back through the ledger and the seats are on sale again', async () => {
    const order = await api.order(buyer, show.id, freshSeats(2));
    const before = await api.balance(buyer);
    expect((await api.pay(buyer, order.id)).status).to.equal(200);
    expect(await api.balance(buyer)).to.equal(before - order.totalCents);

    const reply = await api.post(`/api/orders/${order.id}/refund`, undefined, buyer.auth);
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.equal({ id: order.id, status: 'REFUNDED', balanceCents: before });
    expect(await api.balance(buyer)).to.equal(before);
    const ledger = await app.db('ledger_entries').where({ order_id: order.id }).orderBy('id').select('kind', 'amount_cents');
    expect(ledger).to.deep.equal([
      { kind: 'payment', amount_cents: String(order.totalCents) },
      { kind: 'refund', amount_cents: String(order.totalCents) },
    ]);
    await released(order.seatIds);
    expect((await api.get(`/api/orders/${order.id}`, buyer.auth)).body.status).to.equal('REFUNDED');
    expect((await api.post('/api/orders', { showId: show.id, seatIds: order.seatIds }, other.auth)).status).to.equal(201);
    await checkSeatInvariants(app, show.id);
    await checkMoneyInvariant(app);
  });

  it('When a refund is asked twice, for a pending order, or by another user, then 409, 409 and 404, and no money moves', async () => {
    const paid = await api.order(buyer, show.id, freshSeats(1));
    expect((await api.pay(buyer, paid.id)).status).to.equal(200);
    expect((await api.post(`/api/orders/${paid.id}/refund`, undefined, other.auth)).status).to.equal(404);
    expect((await api.post(`/api/orders/${paid.id}/refund`, undefined, buyer.auth)).status).to.equal(200);
    const balance = await api.balance(buyer);

    const twice = await api.post(`/api/orders/${paid.id}/refund`, undefined, buyer.auth);
    expect(twice.status).to.equal(409);
    expect(twice.body.error).to.deep.include({ code: 'ORDER_NOT_REFUNDABLE', details: { status: 'REFUNDED' } });
    const pending = await api.order(buyer, show.id, freshSeats(1));
    const unpaid = await api.post(`/api/orders/${pending.id}/refund`, undefined, buyer.auth);
    expect(unpaid.status).to.equal(409);
    expect(unpaid.body.error.details).to.deep.equal({ status: 'PENDING_PAYMENT' });
    expect(await api.balance(buyer)).to.equal(balance);
  });

  it('When 20 refunds of one paid order arrive at once, then the money comes back once', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    expect((await api.pay(buyer, order.id)).status).to.equal(200);
    const before = await api.balance(buyer);
    const replies = await Promise.all(Array.from({ length: 20 }, () => api.post(`/api/orders/${order.id}/refund`, undefined, buyer.auth)));
    expect(replies.map((r) => r.status).sort()).to.deep.equal([200, ...Array(19).fill(409)]);
    expect(await api.balance(buyer)).to.equal(before + order.totalCents);
    await checkMoneyInvariant(app);
  });

  it('When the suite ends, then every saga settled and for every user balance = credits - payments + refunds', async () => {
    await waitFor('every saga settled', () => sagasSettled(app));
    expect(await checkMoneyInvariant(app)).to.be.at.least(2);
    await checkSeatInvariants(app, show.id);
  });
});
