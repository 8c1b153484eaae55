import { expect } from 'chai';
import { toNumber } from '../../src/db/database';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { checkMoneyInvariant, sagasSettled } from '../support/invariants';

describe('Idempotency-Key on placing and paying orders', () => {
  const iso = isolate('idem');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso, { rows: 5 }));
    await api.credit(buyer.id, 1_000_000);
  });
  after(() => cleanup(iso, [app]));

  const key = (label: string) => ({ 'Idempotency-Key': `${label}-${Math.random().toString(36).slice(2)}` });
  const paymentsOf = async (orderId: string) => toNumber((await app.db('ledger_entries').where({ order_id: orderId, kind: 'payment' }).count({ n: '*' }))[0].n);

  it('When a pay is retried with the same Idempotency-Key, then it charges once and the retry gets the first response', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const before = await api.balance(buyer);
    const headers = key('pay');
    const first = await api.pay(buyer, order.id, 'pay-secret', headers);
    const retry = await api.pay(buyer, order.id, 'pay-secret', headers);
    expect(first.status).to.equal(200);
    expect(retry.status).to.equal(200);
    expect(retry.body).to.deep.equal(first.body);
    expect(retry.headers.get('idempotent-replayed')).to.equal('true');
    expect(first.headers.get('idempotent-replayed')).to.equal(null);
    expect(await api.balance(buyer)).to.equal(before - order.totalCents);
    expect(await paymentsOf(order.id)).to.equal(1);
    // Without the key, the same request is a new one: the order is already paid.
    expect((await api.pay(buyer, order.id)).status).to.equal(409);
  });

  it('When the same key comes with a different body, then 422 IDEMPOTENCY_KEY_REUSED and nothing runs', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const headers = key('reuse');
    const wrong = await api.pay(buyer, order.id, 'wrong-password', headers);
    expect(wrong.status).to.equal(403);
    const sagas = toNumber((await app.db('sagas').count({ n: '*' }))[0].n);
    const reused = await api.pay(buyer, order.id, 'pay-secret', headers);
    expect(reused.status).to.equal(422);
    expect(reused.body.error.code).to.equal('IDEMPOTENCY_KEY_REUSED');
    expect(toNumber((await app.db('sagas').count({ n: '*' }))[0].n)).to.equal(sagas);
    // The stored 403 is replayed to a true retry, and does not count as another wrong attempt.
    const replay = await api.pay(buyer, order.id, 'wrong-password', headers);
    expect(replay.status).to.equal(403);
    expect(replay.body).to.deep.equal(wrong.body);
    expect((await api.pay(buyer, order.id, 'pay-secret', key('fresh'))).status).to.equal(200);
  });

  it('When ten copies of one pay arrive at once with one key, then one charge and ten identical 200 answers', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const before = await api.balance(buyer);
    const headers = key('burst');
    const replies = await Promise.all(Array.from({ length: 10 }, () => api.pay(buyer, order.id, 'pay-secret', headers)));
    expect(replies.map((r) => r.status)).to.deep.equal(Array(10).fill(200));
    for (const reply of replies) expect(reply.body).to.deep.equal(replies[0].body);
    expect(replies.filter((r) => r.headers.get('idempotent-replayed') === 'true')).to.have.length(9);
    expect(await api.balance(buyer)).to.equal(before - order.totalCents);
    expect(await paymentsOf(order.id)).to.equal(1);
  });

  it('When the first attempt failed with a 5xx, then it is not stored and the retry runs again (and charges once)', async () => {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const before = await api.balance(buyer);
    const headers = key('retry5xx');
    await api.setFailpoint('pay.pay_money.after', { action: 'throw', count: 1 });
    const failed = await api.pay(buyer, order.id, 'pay-secret', headers);
    expect(failed.status).to.equal(500);
    await waitFor('compensated', () => sagasSettled(app));
    const retry = await api.pay(buyer, order.id, 'pay-secret', headers);
    expect(retry.status).to.equal(200);
    expect(retry.headers.get('idempotent-replayed')).to.equal(null);
    expect(await api.balance(buyer)).to.equal(before - order.totalCents);
    await checkMoneyInvariant(app);
  });

  it('When an order is placed again with the same key, then the same order comes back and one order exists', async () => {
    const seatIds = freshSeats(2);
    const headers = key('order');
    const first = await api.post('/api/orders', { showId: show.id, seatIds }, { ...buyer.auth, ...headers });
    const retry = await api.post('/api/orders', { showId: show.id, seatIds }, { ...buyer.auth, ...headers });
    expect(first.status).to.equal(201);
    expect(retry.status).to.equal(201);
    expect(retry.body).to.deep.equal(first.body);
    const orders = await app.db('order_seats').whereIn('seat_id', seatIds).select('order_id');
    expect(new Set(orders.map((o: { order_id: string }) => o.order_id))).to.deep.equal(new Set([first.body.id]));
    const other = await api.post('/api/orders', { showId: show.id, seatIds: freshSeats(1) }, { ...buyer.auth, ...headers });
    expect(other.status).to.equal(422);
  });

  it('When two users use the same key, then each gets their own result', async () => {
    const other = await api.createUser('other');
    const headers = { 'Idempotency-Key': 'shared-key-1' };
    const mine = await api.post('/api/orders', { showId: show.id, seatIds: freshSeats(1) }, { ...buyer.auth, ...headers });
    const theirs = await api.post('/api/orders', { showId: show.id, seatIds: freshSeats(1) }, { ...other.auth, ...headers });
    expect(mine.status).to.equal(201);
    expect(theirs.status).to.equal(201);
    expect(theirs.body.id).to.not.equal(mine.body.id);
  });

  it('When the key is malformed, then 400 and nothing is written', async () => {
    const sagas = toNumber((await app.db('sagas').count({ n: '*' }))[0].n);
    const reply = await api.post('/api/orders', { showId: show.id, seatIds: freshSeats(1) }, { ...buyer.auth, 'Idempotency-Key': 'x'.repeat(129) });
    expect(reply.status).to.equal(400);
    expect(reply.body.error.code).to.equal('VALIDATION_FAILED');
    expect(toNumber((await app.db('sagas').count({ n: '*' }))[0].n)).to.equal(sagas);
    expect(toNumber((await app.db('idempotency_keys').where('idem_key', 'like', 'xxx%').count({ n: '*' }))[0].n)).to.equal(0);
  });
});
