import { expect } from 'chai';
import { toNumber } from '../../src/db/database';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { checkMoneyInvariant, checkSeatInvariants, sagasSettled } from '../support/invariants';

describe('Pay saga over HTTP', () => {
  const iso = isolate('pay');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso, { rows: 10, seatsPerRow: 10 }));
    await api.credit(buyer.id, 1_000_000);
  });
  after(() => cleanup(iso, [app]));

  const paymentsOf = (orderId: string) => app.db('ledger_entries').where({ order_id: orderId, kind: 'payment' }).select('user_id', 'amount_cents', 'saga_id');
  const seatStatuses = async (seatIds: string[]) => {
    const seats = (await api.get(`/api/shows/${show.id}/seats`)).body as Array<{ id: string; status: string }>;
    return seats.filter((s) => seatIds.includes(s.id)).map((s) => s.status);
  };

  it('When the buyer pays a pending order, then it is PAID, its seats sold, and the balance and the ledger agree', async () => {
    const order = await api.order(buyer, show.id, freshSeats(2));
    const before = await api.balance(buyer);

    const reply = await api.pay(buyer, order.id);
    expect(reply.status).to.equal(200);
    expect(reply.body).to.include({ id: order.id, status: 'PAID', balanceCents: before - 5_000 });
    expect(await api.balance(buyer)).to.equal(before - 5_000);
    expect((await api.get(`/api/orders/${order.id}`, buyer.auth)).body.status).to.equal('PAID');
    expect(await seatStatuses(order.seatIds)).to.deep.equal(['sold', 'sold']);

    const payments = await paymentsOf(order.id);
    expect(payments).to.deep.equal([{ user_id: buyer.id, amount_cents: '5000', saga_id: reply.body.sagaId }]);
    const saga = (await api.saga(reply.body.sagaId)).body;
    expect(saga).to.include({ type: 'pay', status: 'COMPLETED' });
    expect(saga.steps.map((s: { tag: string; status: string }) => [s.tag, s.status])).to.deep.equal([
      ['pay_check_cancel', 'DONE'],
      ['pay_money_cancel', 'DONE'],
      ['pay_cancel', 'DONE'],
    ]);
    // The pay password never reaches the saga log.
    const row = await app.db('sagas').where({ id: reply.body.sagaId }).first('payload');
    expect(JSON.parse(row.payload)).to.deep.equal({ orderId: order.id, userId: buyer.id });
    await checkSeatInvariants(app, show.id);
    await checkMoneyInvariant(app);
  });

  const failures = [
    { failpoint: 'pay.pay_check.after', tag: 'pay_check_cancel', restore: null },
    { failpoint: 'pay.pay_money.before', tag: 'pay_money_cancel', restore: 'NOOP' },
    { failpoint: 'pay.pay_money.after', tag: 'pay_money_cancel', restore: 'DONE' },
    { failpoint: 'pay.pay_order_update.before', tag: 'pay_cancel', restore: 'DONE' },
    { failpoint: 'pay.pay_order_update.after', tag: 'pay_cancel', restore: 'DONE' },
  ] as const;

  for (const { failpoint, tag, restore } of failures) {
    it(`When ${failpoint} fails, then SAGA_FAILED with ${tag}, the balance is back to exactly its value before, and the order is still PENDING_PAYMENT and can be paid`, async () => {
      const order = await api.order(buyer, show.id, freshSeats(2));
      const before = await api.balance(buyer);
      await api.setFailpoint(failpoint, { action: 'throw', count: 1 });

      const reply = await api.pay(buyer, order.id);
      expect(reply.status).to.equal(500);
      expect(reply.body.error).to.deep.include({ code: 'SAGA_FAILED' });
      expect(reply.body.error.details.tag).to.equal(tag);
      const saga = await waitFor('pay saga COMPENSATED', async () => {
        const view = (await api.saga(reply.body.error.details.sagaId)).body;
        return view.status === 'COMPENSATED' && view;
      });
      expect(saga.compensations.map((c: { listener: string; status: string }) => [c.listener, c.status])).to.deep.equal(
        restore ? [['balance-restore', restore]] : [],
      );
      expect(await api.balance(buyer)).to.equal(before);
      expect(await paymentsOf(order.id)).to.deep.equal([]);
      expect((await api.get(`/api/orders/${order.id}`, buyer.auth)).body.status).to.equal('PENDING_PAYMENT');
      expect(await seatStatuses(order.seatIds)).to.deep.equal(['held', 'held']);
      await checkMoneyInvariant(app);

      const again = await api.pay(buyer, order.id);
      expect(again.status).to.equal(200);
      expect(again.body.balanceCents).to.equal(before - order.totalCents);
      expect(await seatStatuses(order.seatIds)).to.deep.equal(['sold', 'sold']);
      await checkSeatInvariants(app, show.id);
      await checkMoneyInvariant(app);
    });
  }

  it('When 50 pays of one order arrive at once, then exactly one charges; the others answer 409, or 429 past the password checks a user gets at once', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const before = await api.balance(buyer);
    const replies = await Promise.all(Array.from({ length: 50 }, () => api.pay(buyer, order.id)));
    const statuses = replies.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).to.have.length(1);
    // At most PAY_PASSWORD_MAX_ATTEMPTS (5) pay-password checks run at once (contract, hardening
    // rules): the pays that find none free answer 429 without a hash, the others 409.
    expect(
      statuses.filter((s) => s !== 200).every((s) => s === 409 || s === 429),
      JSON.stringify(statuses),
    ).to.equal(true);
    expect(replies.filter((r) => r.status === 409).every((r) => r.body.error.code === 'ORDER_NOT_PAYABLE')).to.equal(true);
    expect(replies.filter((r) => r.status === 429).every((r) => r.body.error.code === 'TOO_MANY_ATTEMPTS')).to.equal(true);
    // Right passwords give their attempts back and refusals are not counted: no lock-out follows.
    const next = await api.order(buyer, show.id, freshSeats(1));
    expect((await api.pay(buyer, next.id)).status).to.equal(200);
    await api.post(`/api/orders/${next.id}/refund`, undefined, buyer.auth);
    await waitFor('every pay saga settled', () => sagasSettled(app));
    expect(await api.balance(buyer)).to.equal(before - order.totalCents);
    expect(await paymentsOf(order.id)).to.have.length(1);
    await checkMoneyInvariant(app);
  });

  it('When the balance does not cover the total, then 402 INSUFFICIENT_BALANCE and no money moves', async () => {
    const poor = await api.createUser('poor');
    await api.credit(poor.id, 1_000);
    const order = await api.order(poor, show.id, freshSeats(1));
    const reply = await api.pay(poor, order.id);
    expect(reply.status).to.equal(402);
    expect(reply.body.error).to.deep.include({ code: 'INSUFFICIENT_BALANCE' });
    expect(reply.body.error.details).to.include({ balanceCents: 1_000, totalCents: 2_500 });
    expect(await api.balance(poor)).to.equal(1_000);
    expect(await paymentsOf(order.id)).to.deep.equal([]);
  });

  it("When a user pays another user's order, or an unknown one, then 404 and nothing is written", async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const other = await api.createUser('other');
    await api.credit(other.id, 100_000);
    const sagasBefore = toNumber((await app.db('sagas').count({ n: '*' }))[0].n);
    for (const reply of [await api.pay(other, order.id), await api.pay(other, '999999999999')]) {
      expect(reply.status).to.equal(404);
      expect(reply.body.error.code).to.equal('NOT_FOUND');
    }
    expect(toNumber((await app.db('sagas').count({ n: '*' }))[0].n)).to.equal(sagasBefore);
    expect(await api.balance(other)).to.equal(100_000);
  });

  it('When the pay body is bad, then 400 and nothing is written', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    for (const body of [{}, { payPassword: 7 }, { payPassword: 'pay-secret', extra: 1 }, { payPassword: '' }]) {
      const reply = await api.post(`/api/orders/${order.id}/pay`, body, buyer.auth);
      expect(reply.status, JSON.stringify(body)).to.equal(400);
      expect(reply.body.error.code).to.equal('VALIDATION_FAILED');
    }
    expect(await app.db('sagas').where({ order_id: order.id, type: 'pay' }).first()).to.equal(undefined);
  });

  it('When an order is paid twice in a row, then the second answers 409 ORDER_NOT_PAYABLE and charges nothing', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    expect((await api.pay(buyer, order.id)).status).to.equal(200);
    const before = await api.balance(buyer);
    const again = await api.pay(buyer, order.id);
    expect(again.status).to.equal(409);
    expect(again.body.error).to.deep.include({ code: 'ORDER_NOT_PAYABLE' });
    expect(await api.balance(buyer)).to.equal(before);
  });

  it('When the suite ends, then for every user balance = credits - payments + refunds, none negative', async () => {
    await waitFor('every saga settled', () => sagasSettled(app));
    expect(await checkMoneyInvariant(app)).to.be.at.least(3);
    await checkSeatInvariants(app, show.id);
  });
});
