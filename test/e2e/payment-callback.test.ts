import { createHmac } from 'node:crypto';
import { expect } from 'chai';
import { toNumber } from '../../src/db/database';
import { cleanup, isolate, startSale, startTestApp, type Sale, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkMoneyInvariant, checkSeatInvariants, sagasSettled, tableCounts } from '../support/invariants';

const SECRET = 'test-payment-notify-secret-0123456789abcdef';
const PRICE_CENTS = 2_500; // the fixture's show price

const signatureOf = (raw: string, secret = SECRET) => `sha256=${createHmac('sha256', secret).update(raw).digest('hex')}`;

let txnCounter = 0;
const newTxnId = () => `txn-${process.pid}-${Date.now()}-${++txnCounter}`;

interface Notification {
  orderId: string;
  amountCents: number;
  txnId: string;
  paidAt: string;
}

const notificationFor = (orderId: string, amountCents: number, overrides: Partial<Notification> = {}): Notification => ({
  orderId,
  amountCents,
  txnId: newTxnId(),
  paidAt: new Date().toISOString(),
  ...overrides,
});

/** Sends a raw body as the provider would: signed with SECRET unless told otherwise. */
function sendRaw(api: Api, raw: string, signature: string | null = signatureOf(raw)) {
  return api.request('POST', '/api/payments/notify', raw, {
    'Content-Type': 'application/json',
    ...(signature === null ? {} : { 'X-Payment-Signature': signature }),
  });
}

const notify = (api: Api, notification: object) => sendRaw(api, JSON.stringify(notification));

/** One value of a Prometheus sample in /metrics, or undefined when absent. */
async function metric(api: Api, sample: string): Promise<number | undefined> {
  const text = (await api.get('/metrics')).body as string;
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `));
  return line === undefined ? undefined : Number(line.slice(sample.length + 1));
}

describe('Payment provider callback and reconciliation', () => {
  const iso = isolate('payments');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];
  const otherApps: TestApp[] = [];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso, { rows: 5, env: { PAYMENT_NOTIFY_SECRET: SECRET } }));
    // A balance that is not zero, so "unchanged" means something.
    await api.credit(buyer.id, 1_234);
  });
  after(() => cleanup(iso, [app, ...otherApps]));

  async function placeOrder(seats = 2) {
    const reply = await api.post('/api/orders', { showId: show.id, seatIds: freshSeats(seats) }, buyer.auth);
    expect(reply.status, JSON.stringify(reply.body)).to.equal(201);
    return reply.body as { id: string; seatIds: string[]; totalCents: number; status: string };
  }

  const balance = async () => (await api.get('/api/users/me', buyer.auth)).body.balanceCents as number;
  const orderStatus = async (orderId: string) => (await api.get(`/api/orders/${orderId}`, buyer.auth)).body.status as string;
  const ledgerOf = (orderId: string) => app.db('ledger_entries').where({ order_id: orderId }).orderBy('id').select('user_id', 'kind', 'amount_cents');
  const notificationRow = (txnId: string) => app.db('payment_notifications').where({ txn_id: txnId }).first();
  const notificationCount = async () => toNumber((await app.db('payment_notifications').count({ n: '*' }))[0].n);

  async function seatStatuses(seatIds: string[]) {
    const seats = (await api.get(`/api/shows/${show.id}/seats`)).body as Array<{ id: string; status: string }>;
    return seats.filter((s) => seatIds.includes(s.id)).map((s) => s.status);
  }

  it('When a signed callback pays a PENDING_PAYMENT order, then it is SETTLED, the order PAID, its seats sold and the balance unchanged', async () => {
    const order = await placeOrder(2);
    expect(order.totalCents).to.equal(2 * PRICE_CENTS);
    const before = await balance();

    const notification = notificationFor(order.id, order.totalCents);
    const reply = await notify(api, notification);
    expect(reply.status, JSON.stringify(reply.body)).to.equal(200);
    expect(reply.body).to.deep.equal({ txnId: notification.txnId, orderId: order.id, status: 'SETTLED' });

    expect(await orderStatus(order.id)).to.equal('PAID');
    expect(await seatStatuses(order.seatIds)).to.deep.equal(['sold', 'sold']);
    expect(await balance()).to.equal(before);
    expect(await ledgerOf(order.id)).to.deep.equal([
      { user_id: buyer.id, kind: 'credit', amount_cents: String(order.totalCents) },
      { user_id: buyer.id, kind: 'payment', amount_cents: String(order.totalCents) },
    ]);
    const row = await notificationRow(notification.txnId);
    expect(row).to.include({ status: 'SETTLED', order_id: order.id, flag_reason: null });
    expect(row.resolved_at).to.be.instanceOf(Date);
    expect(await app.db('orders').where({ id: order.id }).first('paid_saga_id')).to.deep.equal({ paid_saga_id: null });
    await checkSeatInvariants(app, show.id);
  });

  const notYetKnown = [
    { failpoint: 'order.calc_money.after', state: 'its order row does not exist yet', orderRowExists: false },
    { failpoint: 'order.order_add.after', state: 'its order row exists but its order saga is still running', orderRowExists: true },
  ];
  for (const { failpoint, state, orderRowExists } of notYetKnown) {
    it(`When the callback arrives while ${state}, then it is stored UNMATCHED and the reconciler settles it once the order is known`, async () => {
      const seatIds = freshSeats(3);
      const known: string[] = await app.db('sagas').pluck('id');
      expect((await api.setFailpoint(failpoint, { action: 'delay', ms: 1500, count: 1 })).status).to.equal(200);
      const placing = api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);

      const orderId = await waitFor('the new order saga', async () => {
        const saga = await app.db('sagas').where({ type: 'order' }).whereNotIn('id', known).first('payload');
        return saga && (JSON.parse(saga.payload).orderId as string);
      });
      if (orderRowExists) await waitFor('the order row', () => app.db('orders').where({ id: orderId }).first());
      const notification = notificationFor(orderId, 3 * PRICE_CENTS);
      const early = await notify(api, notification);
      expect(early.status, JSON.stringify(early.body)).to.equal(200);
      expect(early.body).to.deep.equal({ txnId: notification.txnId, orderId, status: 'UNMATCHED' });
      expect(Boolean(await app.db('orders').where({ id: orderId }).first()), 'order row present').to.equal(orderRowExists);
      expect(await app.db('sagas').where({ type: 'order' }).whereNotIn('id', known).first('status')).to.deep.equal({ status: 'RUNNING' });

      const placed = await placing;
      expect(placed.status, JSON.stringify(placed.body)).to.equal(201);
      expect(placed.body.id).to.equal(orderId);

      await waitFor('the order PAID by reconciliation', async () => (await orderStatus(orderId)) === 'PAID');
      const row = await notificationRow(notification.txnId);
      expect(row.status).to.equal('SETTLED');
      expect(row.match_attempts, 'looked for before the order was known').to.be.greaterThan(0);
      expect(await seatStatuses(seatIds)).to.deep.equal(['sold', 'sold', 'sold']);
      expect((await ledgerOf(orderId)).map((e: { kind: string }) => e.kind)).to.deep.equal(['credit', 'payment']);
      const settled = app.logs.lines.filter((l) => l.message === 'payment settled' && l.txnId === notification.txnId);
      expect(settled.map((l) => l.task)).to.deep.equal(['payment reconciliation']);
      await checkSeatInvariants(app, show.id);
    });
  }

  it('When the same callback comes twice, then ten times at once, then it settles once and every copy answers 200 duplicate', async () => {
    const order = await placeOrder(1);
    const notification = notificationFor(order.id, order.totalCents);
    const raw = JSON.stringify(notification);
    const duplicatesBefore = (await metric(api, 'seat_saga_payment_notifications_total{outcome="duplicate"}')) ?? 0;

    const first = await sendRaw(api, raw);
    expect(first.status).to.equal(200);
    expect(first.body).to.deep.equal({ txnId: notification.txnId, orderId: order.id, status: 'SETTLED' });
    const second = await sendRaw(api, raw);
    expect(second.status).to.equal(200);
    expect(second.body).to.deep.equal({ txnId: notification.txnId, orderId: order.id, status: 'SETTLED', duplicate: true });

    const burst = await Promise.all(Array.from({ length: 10 }, () => sendRaw(api, raw)));
    for (const reply of burst) {
      expect(reply.status).to.equal(200);
      expect(reply.body).to.include({ status: 'SETTLED', duplicate: true });
    }
    expect(await ledgerOf(order.id)).to.have.length(2);
    expect(toNumber((await app.db('payment_notifications').where({ order_id: order.id }).count({ n: '*' }))[0].n)).to.equal(1);
    expect(await metric(api, 'seat_saga_payment_notifications_total{outcome="duplicate"}')).to.equal(duplicatesBefore + 11);

    // The same txnId naming another amount or another order is not a retry.
    for (const changed of [{ amountCents: order.totalCents + 1 }, { orderId: '12345' }]) {
      const reused = await notify(api, { ...notification, ...changed });
      expect(reused.status).to.equal(422);
      expect(reused.body.error.code).to.equal('IDEMPOTENCY_KEY_REUSED');
    }
    expect(await ledgerOf(order.id)).to.have.length(2);
    expect(await notificationRow(notification.txnId)).to.include({ status: 'SETTLED', amount_cents: String(order.totalCents) });
  });

  it('When ten copies of a new callback arrive at once, then exactly one is stored and the order is paid once', async () => {
    const order = await placeOrder(1);
    const raw = JSON.stringify(notificationFor(order.id, order.totalCents));
    const before = await balance();
    const replies = await Promise.all(Array.from({ length: 10 }, () => sendRaw(api, raw)));
    expect(replies.map((r) => r.status)).to.deep.equal(Array(10).fill(200));
    expect(replies.map((r) => r.body.status)).to.deep.equal(Array(10).fill('SETTLED'));
    expect(replies.filter((r) => r.body.duplicate !== true)).to.have.length(1);
    expect((await ledgerOf(order.id)).map((e: { kind: string }) => e.kind)).to.deep.equal(['credit', 'payment']);
    expect(await orderStatus(order.id)).to.equal('PAID');
    expect(await balance()).to.equal(before);
  });

  it('When the signature is missing, forged or over a body altered after signing, then 400 INVALID_SIGNATURE and nothing is written', async () => {
    const order = await placeOrder(1);
    const raw = JSON.stringify(notificationFor(order.id, order.totalCents));
    const altered = raw.replace(`"amountCents":${order.totalCents}`, `"amountCents":${order.totalCents - 1}`);
    expect(altered).to.not.equal(raw);
    const countsBefore = { ...(await tableCounts(app)), payment_notifications: await notificationCount() };

    const attempts: Array<[string, string, string | null]> = [
      ['signed with another secret', raw, signatureOf(raw, 'another-secret-that-is-long-enough-0123')],
      ['no signature header', raw, null],
      ['altered after signing', altered, signatureOf(raw)],
      ['hex without the sha256= prefix', raw, signatureOf(raw).slice('sha256='.length)],
      ['a truncated signature', raw, signatureOf(raw).slice(0, -2)],
      ['not JSON, unsigned', 'not json at all', null],
    ];
    for (const [what, body, signature] of attempts) {
      const reply = await sendRaw(api, body, signature);
      expect(reply.status, what).to.equal(400);
      expect(reply.body.error.code, what).to.equal('INVALID_SIGNATURE');
    }

    expect({ ...(await tableCounts(app)), payment_notifications: await notificationCount() }).to.deep.equal(countsBefore);
    expect(await orderStatus(order.id)).to.equal('PENDING_PAYMENT');
    expect((await metric(api, 'seat_saga_payment_notifications_total{outcome="rejected"}')) ?? 0).to.be.at.least(attempts.length);
  });

  it('When the provider retries a stored notification after five minutes, then it gets the stored answer, not STALE_NOTIFICATION', async () => {
    const order = await placeOrder(1);
    const late = notificationFor(order.id, order.totalCents, { paidAt: new Date(Date.now() - 10 * 60_000).toISOString() });
    // Stored ten minutes ago, when it was fresh (and flagged: the order did not match then).
    await app.db('payment_notifications').insert({
      txn_id: late.txnId,
      order_id: late.orderId,
      amount_cents: late.amountCents,
      paid_at: new Date(late.paidAt),
      status: 'FLAGGED',
      flag_reason: 'ORDER_NOT_PAYABLE',
      received_at: new Date(late.paidAt),
      resolved_at: new Date(late.paidAt),
    });
    const reply = await notify(api, late);
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.equal({ txnId: late.txnId, orderId: order.id, status: 'FLAGGED', reason: 'ORDER_NOT_PAYABLE', duplicate: true });
    expect(await orderStatus(order.id)).to.equal('PENDING_PAYMENT');
  });

  it('When a signed body is stale, from the future, not JSON, not a valid notification or over 64 KiB, then 4xx with its code and nothing is written', async () => {
    const order = await placeOrder(1);
    const countsBefore = { ...(await tableCounts(app)), payment_notifications: await notificationCount() };
    const minutes = (n: number) => new Date(Date.now() + n * 60_000).toISOString();

    const cases: Array<[string, string, string]> = [
      ['paid 10 minutes ago', JSON.stringify(notificationFor(order.id, order.totalCents, { paidAt: minutes(-10) })), 'STALE_NOTIFICATION'],
      ['paid 10 minutes from now', JSON.stringify(notificationFor(order.id, order.totalCents, { paidAt: minutes(10) })), 'STALE_NOTIFICATION'],
      ['malformed JSON', '{"orderId": ', 'MALFORMED_JSON'],
      ['an unknown field', JSON.stringify({ ...notificationFor(order.id, order.totalCents), extra: 1 }), 'VALIDATION_FAILED'],
      ['a negative amount', JSON.stringify(notificationFor(order.id, -5)), 'VALIDATION_FAILED'],
      ['a fractional amount', JSON.stringify(notificationFor(order.id, 12.5)), 'VALIDATION_FAILED'],
      ['an order id that is not an id', JSON.stringify(notificationFor('abc', order.totalCents)), 'VALIDATION_FAILED'],
      ['a txnId with a space', JSON.stringify(notificationFor(order.id, order.totalCents, { txnId: 'a b' })), 'VALIDATION_FAILED'],
      ['paidAt without an offset', JSON.stringify(notificationFor(order.id, order.totalCents, { paidAt: '2026-01-01T10:00:00' })), 'VALIDATION_FAILED'],
      ['a JSON array', '[]', 'VALIDATION_FAILED'],
    ];
    for (const [what, raw, code] of cases) {
      const reply = await sendRaw(api, raw);
      expect(reply.status, what).to.equal(400);
      expect(reply.body.error.code, what).to.equal(code);
    }
    const oversized = JSON.stringify({ ...notificationFor(order.id, order.totalCents), padding: 'x'.repeat(70_000) });
    const tooLarge = await sendRaw(api, oversized);
    expect(tooLarge.status).to.equal(413);
    expect(tooLarge.body.error.code).to.equal('PAYLOAD_TOO_LARGE');

    expect({ ...(await tableCounts(app)), payment_notifications: await notificationCount() }).to.deep.equal(countsBefore);
    expect(await orderStatus(order.id)).to.equal('PENDING_PAYMENT');
  });

  it('When the amount does not match the order, then the payment is FLAGGED AMOUNT_MISMATCH, never settled, and counted in /metrics', async () => {
    const order = await placeOrder(2);
    const before = await balance();
    const notification = notificationFor(order.id, order.totalCents - 100);
    const reply = await notify(api, notification);
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.equal({ txnId: notification.txnId, orderId: order.id, status: 'FLAGGED', reason: 'AMOUNT_MISMATCH' });

    expect(await orderStatus(order.id)).to.equal('PENDING_PAYMENT');
    expect(await seatStatuses(order.seatIds)).to.deep.equal(['held', 'held']);
    expect(await ledgerOf(order.id)).to.deep.equal([]);
    expect(await balance()).to.equal(before);
    const row = await notificationRow(notification.txnId);
    expect(row).to.include({ status: 'FLAGGED', flag_reason: 'AMOUNT_MISMATCH' });
    expect(row.detail).to.contain(String(order.totalCents));

    expect(await metric(api, 'seat_saga_payments_flagged{reason="AMOUNT_MISMATCH"}')).to.be.at.least(1);
    const logged = app.logs.lines.find((l) => l.message === 'payment flagged' && l.txnId === notification.txnId);
    expect(logged).to.include({ level: 'warn', reason: 'AMOUNT_MISMATCH', orderId: order.id });

    // The reconciler leaves a flagged payment alone.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await orderStatus(order.id)).to.equal('PENDING_PAYMENT');
    expect(await ledgerOf(order.id)).to.deep.equal([]);
  });

  it('When the order is already PAID (by the provider or the wallet), CANCELLED or past its payment window, then the payment is FLAGGED ORDER_NOT_PAYABLE', async () => {
    // PAID through a first callback: a second transaction for the same order must not pay it twice.
    const paid = await placeOrder(1);
    expect((await notify(api, notificationFor(paid.id, paid.totalCents))).body.status).to.equal('SETTLED');
    const again = await notify(api, notificationFor(paid.id, paid.totalCents));
    expect(again.status).to.equal(200);
    expect(again.body).to.include({ status: 'FLAGGED', reason: 'ORDER_NOT_PAYABLE' });
    expect((await notificationRow(again.body.txnId)).detail).to.contain('PAID');
    expect(await ledgerOf(paid.id)).to.have.length(2);

    // PAID from the wallet (the pay saga): the wallet is charged once, the provider's money flagged.
    const walletPaid = await placeOrder(1);
    await api.credit(buyer.id, walletPaid.totalCents);
    const pay = await api.post(`/api/orders/${walletPaid.id}/pay`, { payPassword: 'pay-secret' }, buyer.auth);
    expect(pay.status, JSON.stringify(pay.body)).to.equal(200);
    const afterPay = await balance();
    const onWalletPaid = await notify(api, notificationFor(walletPaid.id, walletPaid.totalCents));
    expect(onWalletPaid.body).to.include({ status: 'FLAGGED', reason: 'ORDER_NOT_PAYABLE' });
    expect((await ledgerOf(walletPaid.id)).map((e: { kind: string }) => e.kind)).to.deep.equal(['payment']);
    expect(await balance()).to.equal(afterPay);

    const cancelled = await placeOrder(1);
    const cancel = await api.post(`/api/orders/${cancelled.id}/cancel`, undefined, buyer.auth);
    expect(cancel.status, JSON.stringify(cancel.body)).to.equal(200);
    expect(await orderStatus(cancelled.id)).to.equal('CANCELLED');
    const onCancelled = await notify(api, notificationFor(cancelled.id, cancelled.totalCents));
    expect(onCancelled.body).to.include({ status: 'FLAGGED', reason: 'ORDER_NOT_PAYABLE' });
    expect((await notificationRow(onCancelled.body.txnId)).detail).to.contain('CANCELLED');
    expect(await ledgerOf(cancelled.id)).to.deep.equal([]);

    // Paid after the order's payment window closed (expiry may or may not have run yet).
    const late = await placeOrder(1);
    await app
      .db('orders')
      .where({ id: late.id })
      .update({ expires_at: new Date(Date.now() - 60_000) });
    const onLate = await notify(api, notificationFor(late.id, late.totalCents));
    expect(onLate.body).to.include({ status: 'FLAGGED', reason: 'ORDER_NOT_PAYABLE' });
    expect(await orderStatus(late.id)).to.not.equal('PAID');
    expect((await ledgerOf(late.id)).filter((e: { kind: string }) => e.kind === 'credit')).to.deep.equal([]);

    expect(await metric(api, 'seat_saga_payments_flagged{reason="ORDER_NOT_PAYABLE"}')).to.be.at.least(4);
  });

  it('When a pay saga has charged the wallet but not yet marked the order PAID, then the callback waits UNMATCHED and is flagged once the saga completes', async () => {
    const order = await placeOrder(1);
    await api.credit(buyer.id, order.totalCents);
    const before = await balance();
    await api.setFailpoint('pay.pay_money.after', { action: 'delay', ms: 1000, count: 1 });
    const paying = api.post(`/api/orders/${order.id}/pay`, { payPassword: 'pay-secret' }, buyer.auth);
    await waitFor("the pay saga's payment entry", () => app.db('ledger_entries').where({ order_id: order.id, kind: 'payment' }).first());

    const notification = notificationFor(order.id, order.totalCents);
    const callback = await notify(api, notification);
    expect(callback.body).to.deep.equal({ txnId: notification.txnId, orderId: order.id, status: 'UNMATCHED' });
    expect(app.logs.lines.some((l) => l.txnId === notification.txnId && /being paid by a pay saga/.test(l.message))).to.equal(true);

    expect((await paying).status).to.equal(200);
    const row = await waitFor('flagged', async () => {
      const current = await notificationRow(notification.txnId);
      return current.status === 'FLAGGED' && current;
    });
    expect(row).to.include({ flag_reason: 'ORDER_NOT_PAYABLE', detail: 'the order is PAID' });
    expect((await ledgerOf(order.id)).map((e: { kind: string }) => e.kind)).to.deep.equal(['payment']);
    expect(await balance()).to.equal(before - order.totalCents);
  });

  it('When that pay saga fails instead and is compensated, then the waiting callback settles the order and the wallet is whole', async () => {
    const order = await placeOrder(1);
    await api.credit(buyer.id, order.totalCents);
    const before = await balance();
    // The saga fails with its charge committed; the refund of the charge waits a moment.
    await api.setFailpoint('pay.pay_money.after', { action: 'throw', count: 1 });
    await api.setFailpoint('listener.balance-restore.before', { action: 'delay', ms: 1000, count: 1 });
    const pay = await api.post(`/api/orders/${order.id}/pay`, { payPassword: 'pay-secret' }, buyer.auth);
    expect(pay.status, JSON.stringify(pay.body)).to.equal(500);
    expect(await app.db('ledger_entries').where({ order_id: order.id, kind: 'payment' }).first(), 'charge not yet restored').to.not.equal(undefined);

    const notification = notificationFor(order.id, order.totalCents);
    const callback = await notify(api, notification);
    expect(callback.body).to.include({ status: 'UNMATCHED' });

    await waitFor('the order PAID by reconciliation', async () => (await orderStatus(order.id)) === 'PAID');
    expect(await notificationRow(notification.txnId)).to.include({ status: 'SETTLED' });
    await waitFor('sagas settled', () => sagasSettled(app));
    expect((await ledgerOf(order.id)).map((e: { kind: string }) => e.kind)).to.deep.equal(['credit', 'payment']);
    expect(await balance()).to.equal(before);
    await checkSeatInvariants(app, show.id);
  });

  it('When a pay saga and the provider pay the same order at once, then exactly one of them pays it and the other is refused or flagged', async () => {
    for (let round = 0; round < 6; round++) {
      const order = await placeOrder(1);
      await api.credit(buyer.id, order.totalCents);
      const before = await balance();
      const notification = notificationFor(order.id, order.totalCents);
      // Staggered so that the callback meets the pay saga at different steps.
      const [pay, callback] = await Promise.all([
        api.post(`/api/orders/${order.id}/pay`, { payPassword: 'pay-secret' }, buyer.auth),
        new Promise((resolve) => setTimeout(resolve, round * 15)).then(() => notify(api, notification)),
      ]);
      expect(callback.status).to.equal(200);
      // A callback that met the pay saga mid-way stays UNMATCHED until the next pass decides.
      const row = await waitFor('the notification decided', async () => {
        const current = await notificationRow(notification.txnId);
        return current.status !== 'UNMATCHED' && current;
      });
      await waitFor('sagas settled', () => sagasSettled(app));
      expect(await orderStatus(order.id)).to.equal('PAID');
      const kinds = (await ledgerOf(order.id)).map((e: { kind: string }) => e.kind);
      if (row.status === 'SETTLED') {
        expect(pay.status, JSON.stringify(pay.body)).to.equal(409);
        expect(kinds).to.deep.equal(['credit', 'payment']);
        expect(await balance()).to.equal(before);
      } else {
        expect(row.flag_reason).to.equal('ORDER_NOT_PAYABLE');
        expect(pay.status, JSON.stringify(pay.body)).to.equal(200);
        expect(kinds).to.deep.equal(['payment']);
        expect(await balance()).to.equal(before - order.totalCents);
      }
    }
    await checkSeatInvariants(app, show.id);
  });

  it("When an order paid by the provider is refunded, then its amount goes to the buyer's balance and its seats back on sale", async () => {
    const order = await placeOrder(1);
    expect((await notify(api, notificationFor(order.id, order.totalCents))).body.status).to.equal('SETTLED');
    const before = await balance();
    const refund = await api.post(`/api/orders/${order.id}/refund`, undefined, buyer.auth);
    expect(refund.status, JSON.stringify(refund.body)).to.equal(200);
    expect(refund.body).to.include({ status: 'REFUNDED', balanceCents: before + order.totalCents });
    expect((await ledgerOf(order.id)).map((e: { kind: string }) => e.kind)).to.deep.equal(['credit', 'payment', 'refund']);
    await waitFor('seats back on sale', async () => (await seatStatuses(order.seatIds)).every((s) => s === 'available'));
  });

  it('When no order ever appears, then past PAYMENT_MATCH_DEADLINE_MS the payment is flagged NO_ORDER for refund, logged and in /metrics', async () => {
    const quick = await startTestApp(iso, { PAYMENT_NOTIFY_SECRET: SECRET, PAYMENT_MATCH_DEADLINE_MS: '1000', SWEEP_INTERVAL_MS: '200' });
    otherApps.push(quick);
    const quickApi = new Api(quick.url!);
    const notification = notificationFor('987654321987654321', 4_200);

    const reply = await notify(quickApi, notification);
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.equal({ txnId: notification.txnId, orderId: notification.orderId, status: 'UNMATCHED' });
    expect(await metric(quickApi, 'seat_saga_payments_unmatched')).to.be.at.least(1);

    const row = await waitFor('flagged NO_ORDER', async () => {
      const current = await notificationRow(notification.txnId);
      return current.status === 'FLAGGED' && current;
    });
    expect(row.flag_reason).to.equal('NO_ORDER');
    expect(row.resolved_at.getTime() - row.received_at.getTime()).to.be.at.least(1000);
    // Every process of this database reconciles, and any of them may be the one that flagged it.
    const logged = [app, ...otherApps]
      .flatMap((a) => a.logs.lines)
      .find((l) => l.message === 'unmatched payment flagged for refund' && l.txnId === notification.txnId);
    expect(logged).to.include({ level: 'error', reason: 'NO_ORDER', orderId: notification.orderId, amountCents: 4_200 });
    // The gauge is computed from the database: every process sharing it reports the same count.
    const [{ n }] = await app.db('payment_notifications').where({ status: 'FLAGGED', flag_reason: 'NO_ORDER' }).count({ n: '*' });
    expect(toNumber(n)).to.be.at.least(1);
    expect(await metric(quickApi, 'seat_saga_payments_flagged{reason="NO_ORDER"}')).to.equal(toNumber(n));
    expect(await metric(api, 'seat_saga_payments_flagged{reason="NO_ORDER"}')).to.equal(toNumber(n));
  });

  it('When PAYMENT_NOTIFY_SECRET is not set, then the callback answers 404 and stores nothing', async () => {
    const unconfigured = await startTestApp(iso, {});
    otherApps.push(unconfigured);
    const before = await notificationCount();
    const raw = JSON.stringify(notificationFor('1', 100));
    const reply = await sendRaw(new Api(unconfigured.url!), raw);
    expect(reply.status).to.equal(404);
    expect(reply.body.error).to.include({ code: 'NOT_FOUND' });
    expect(reply.body.error.message).to.contain('PAYMENT_NOTIFY_SECRET');
    expect(await notificationCount()).to.equal(before);
  });

  it('When the suite is done, then for every user balance = credits − payments + refunds, none negative', async () => {
    await waitFor('sagas settled', () => sagasSettled(app));
    const [{ n: providerPayments }] = await app.db('ledger_entries').where({ kind: 'payment' }).whereNull('saga_id').count({ n: '*' });
    expect(toNumber(providerPayments), 'the suite settled provider payments').to.be.greaterThan(5);
    expect(await checkMoneyInvariant(app)).to.be.at.least(1);
    await checkSeatInvariants(app, show.id);
  });
});
