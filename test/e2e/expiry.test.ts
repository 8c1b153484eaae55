import { expect } from 'chai';
import { toNumber } from '../../src/db/database';
import { cleanup, isolate, startSale, type Sale } from '../support/fixture';
import { waitFor } from '../support/http';
import { bulkBuyers } from '../support/buyers';
import { allResolved, checkMoneyInvariant, checkSeatInvariants, sagasSettled } from '../support/invariants';

/** Expired orders by trigger, from /metrics' counter in the app. */
async function expiredBy(sale: Sale): Promise<Record<string, number>> {
  const metric = await sale.app.metrics.ordersExpired.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.trigger), v.value]));
}

async function expectExpiredAndReleased(sale: Sale, order: { id: string; seatIds: string[] }) {
  const { api, buyer, show, app } = sale;
  await waitFor('order EXPIRED', async () => (await api.get(`/api/orders/${order.id}`, buyer.auth)).body.status === 'EXPIRED', 15_000);
  await waitFor('its seats available', async () => {
    const seats = (await api.get(`/api/shows/${show.id}/seats`)).body as Array<{ id: string; status: string }>;
    return seats.filter((s) => order.seatIds.includes(s.id)).every((s) => s.status === 'available');
  });
  const releases = await app.db('sagas').where({ order_id: order.id, type: 'expiry' }).select('id', 'status');
  expect(releases).to.have.length(1);
  await waitFor('release saga COMPENSATED', async () => (await api.saga(releases[0].id)).body.status === 'COMPENSATED');
  await checkSeatInvariants(app, show.id);
}

describe('Unpaid-order expiry', function () {
  this.timeout(120_000);

  describe('each trigger alone', () => {
    const cases = [
      { trigger: 'keyspace', env: { EXPIRY_TRIGGERS: 'keyspace' } },
      { trigger: 'delay-queue', env: { EXPIRY_TRIGGERS: 'delay-queue' } },
      { trigger: 'sweep', env: { EXPIRY_TRIGGERS: 'sweep' } },
    ];
    for (const { trigger, env } of cases) {
      describe(`${trigger} only`, () => {
        const iso = isolate(`expiry-${trigger}`);
        let sale: Sale;
        before(async () => {
          sale = await startSale(iso, { env: { ...env, PAYMENT_WINDOW_MS: '1200' } });
        });
        after(() => cleanup(iso, [sale?.app]));

        it(`When an order is not paid within the window and only the ${trigger} trigger is on, then it expires and its seats come back`, async () => {
          const order = await sale.api.order(sale.buyer, sale.show.id, sale.freshSeats(2));
          expect((await sale.api.get(`/api/orders/${order.id}`, sale.buyer.auth)).body.status).to.equal('PENDING_PAYMENT');
          await expectExpiredAndReleased(sale, order);
          expect(await expiredBy(sale)).to.deep.equal({ [trigger]: 1 });
          // The other triggers really were off.
          const delayMessages = await sale.app.db('outbox').where({ exchange: sale.app.topology.expiry.exchange }).count({ n: '*' });
          expect(toNumber(delayMessages[0].n)).to.equal(trigger === 'delay-queue' ? 1 : 0);
          const keys = await sale.app.redis.keys(`${iso.namespace}:expiry:order:*`);
          expect(keys).to.deep.equal([]);
        });
      });
    }
  });

  describe('async orders persisted in one batch, delay-queue only', () => {
    const iso = isolate('expiry-async-batch');
    let sale: Sale;
    before(async () => {
      // A long linger gathers the orders into one batch; only the durable trigger may expire them.
      sale = await startSale(iso, {
        rows: 1,
        seatsPerRow: 30,
        env: { EXPIRY_TRIGGERS: 'delay-queue', PAYMENT_WINDOW_MS: '1500', ASYNC_ORDER_BATCH_LINGER_MS: '300', REPEAT_SUBMIT_WINDOW_MS: '0' },
      });
    });
    after(() => cleanup(iso, [sale?.app]));

    it('When 20 async orders committed together go unpaid, then one delay message expires every one of them after its deadline', async () => {
      const { api, app, show } = sale;
      const buyers = await bulkBuyers(app, 20, 'batch-expiry');
      const replies = await Promise.all(buyers.map((buyer) => api.post('/api/orders/async', { showId: show.id, quantity: 1 }, buyer.auth)));
      expect(replies.map((r) => r.status)).to.deep.equal(buyers.map(() => 202));
      const orderIds = replies.map((r) => r.body.orderId as string);
      await allResolved(app, orderIds);
      const messages: Array<{ message_id: string; payload: string }> = await app
        .db('outbox')
        .where({ exchange: app.topology.expiry.exchange })
        .select('message_id', 'payload');
      expect(messages.length, 'fewer messages than orders').to.be.below(20);
      const named = messages.flatMap((m) => {
        const payload = JSON.parse(m.payload);
        return payload.orderIds ?? [payload.orderId];
      });
      expect([...named].sort(), 'every order named once').to.deep.equal([...orderIds].sort());

      await waitFor(
        'every order EXPIRED',
        async () => Number((await app.db('orders').whereIn('id', orderIds).where({ status: 'EXPIRED' }).count({ n: '*' }))[0].n) === 20,
        20_000,
        100,
      );
      // Never before its own deadline: the database decides, the message only asks.
      const early = await app.db('orders').whereIn('id', orderIds).whereRaw('updated_at < expires_at').count({ n: '*' });
      expect(Number(early[0].n)).to.equal(0);
      await waitFor('every seat back on sale', async () => (await checkSeatInvariants(app, show.id)).held === 0, 10_000, 100);
      expect(await expiredBy(sale)).to.deep.equal({ 'delay-queue': 20 });
    });
  });

  describe('an order saga that stalls past the payment window', () => {
    const iso = isolate('expiry-stall');
    let sale: Sale;
    before(async () => {
      sale = await startSale(iso, { env: { PAYMENT_WINDOW_MS: '1000', SAGA_STALE_MS: '2500', SWEEP_INTERVAL_MS: '200' } });
    });
    after(() => cleanup(iso, [sale?.app]));

    it('When its order expires before the sweeper compensates the stalled saga, then the seats come back once and no order row stays', async () => {
      const { api, app, buyer, show } = sale;
      const seatIds = sale.freshSeats(2);
      await api.setFailpoint('order.order_add.after', { action: 'delay', ms: 4_000, count: 1 });
      const reply = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
      // The order row committed, expired after 1 s (seats released), then the saga went stale
      // and was compensated: order-delete removed the EXPIRED row; the late step was refused.
      expect(reply.status).to.equal(500);
      expect(reply.body.error.details.tag).to.equal('order_add_cancel');
      const { sagaId } = reply.body.error.details;
      const saga = await waitFor('order saga COMPENSATED', async () => {
        const view = (await api.saga(sagaId)).body;
        return view.status === 'COMPENSATED' && view;
      });
      expect(saga.error.code).to.equal('SAGA_STALE');
      const byListener = Object.fromEntries(saga.compensations.map((c: { listener: string; status: string }) => [c.listener, c.status]));
      expect(byListener).to.deep.equal({ 'seat-release': 'NOOP', 'order-delete': 'DONE' });
      const expiry = await app.db('sagas').where({ type: 'expiry' }).select('id', 'status');
      expect(expiry).to.have.length(1);
      await waitFor('expiry release COMPENSATED', async () => (await api.saga(expiry[0].id)).body.status === 'COMPENSATED');
      expect(await app.db('orders').where({ saga_id: sagaId }).first()).to.equal(undefined);
      expect(await app.db('seat_holds').whereIn('seat_id', seatIds).first()).to.equal(undefined);
      await checkSeatInvariants(app, show.id);
    });
  });

  describe('all triggers (the default)', () => {
    const iso = isolate('expiry-all');
    let sale: Sale;
    before(async () => {
      sale = await startSale(iso, { rows: 10, seatsPerRow: 10, env: { PAYMENT_WINDOW_MS: '2500' } });
      await sale.api.credit(sale.buyer.id, 10_000_000);
    });
    after(() => cleanup(iso, [sale?.app]));

    it('When the service starts, then Redis sends expired-key events (notify-keyspace-events has E and x)', async () => {
      const [, flags] = await sale.app.redis.config('GET', 'notify-keyspace-events');
      expect(flags).to.include('E');
      expect(flags.includes('x') || flags.includes('A')).to.equal(true);
    });

    it('When every trigger fires for one order, then it expires once: one release, one counter increment', async () => {
      const before = await expiredBy(sale);
      const order = await sale.api.order(sale.buyer, sale.show.id, sale.freshSeats(1));
      await expectExpiredAndReleased(sale, order);
      // Let the slower triggers fire too, then count.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      expect(await sale.app.db('sagas').where({ order_id: order.id, type: 'expiry' }).count({ n: '*' })).to.deep.equal([{ n: '1' }]);
      const after = await expiredBy(sale);
      const total = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
      expect(total(after) - total(before)).to.equal(1);
    });

    it('When an expired order is paid, then 409 ORDER_NOT_PAYABLE and no money moves', async () => {
      const order = await sale.api.order(sale.buyer, sale.show.id, sale.freshSeats(1));
      await waitFor('EXPIRED', async () => (await sale.api.get(`/api/orders/${order.id}`, sale.buyer.auth)).body.status === 'EXPIRED', 10_000);
      const before = await sale.api.balance(sale.buyer);
      const reply = await sale.api.pay(sale.buyer, order.id);
      expect(reply.status).to.equal(409);
      expect(reply.body.error.code).to.equal('ORDER_NOT_PAYABLE');
      expect(await sale.api.balance(sale.buyer)).to.equal(before);
    });

    it("When 50 pays race their orders' expiry, then each order ends PAID or EXPIRED, never both, and money is conserved in every run", async () => {
      const { api, app, buyer, show } = sale;
      // A pay that passed its checks then dawdles 300 ms after deducting: around the deadline it
      // loses to the expiry and must give the money back.
      await api.setFailpoint('pay.pay_money.after', { action: 'delay', ms: 300 });
      const startBalance = await api.balance(buyer);
      const orders: Array<Awaited<ReturnType<typeof api.order>>> = [];
      for (let batch = 0; batch < 5; batch++) {
        orders.push(...(await Promise.all(Array.from({ length: 10 }, () => api.order(buyer, show.id, sale.freshSeats(1))))));
      }
      const replies = await Promise.all(
        orders.map(async (order, i) => {
          const jitter = -700 + ((i * 37) % 50) * 16; // spread over [-700, +100) ms around the deadline
          const wait = Date.parse(order.expiresAt) + jitter - Date.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          return api.pay(buyer, order.id);
        }),
      );
      await api.setFailpoint('pay.pay_money.after', { action: 'off' });
      await waitFor(
        'every order settled',
        async () => {
          const pending = await app
            .db('orders')
            .whereIn(
              'id',
              orders.map((o) => o.id),
            )
            .where('status', 'PENDING_PAYMENT')
            .first();
          return !pending && (await sagasSettled(app));
        },
        30_000,
      );

      let paidTotal = 0;
      const outcome: Record<string, number> = {};
      for (const [i, order] of orders.entries()) {
        const { status } = await app.db('orders').where({ id: order.id }).first('status');
        const payments = await app.db('ledger_entries').where({ order_id: order.id, kind: 'payment' }).select('amount_cents');
        const key = `${status}/${replies[i].status}`;
        outcome[key] = (outcome[key] ?? 0) + 1;
        if (status === 'PAID') {
          expect(replies[i].status, `order ${order.id} PAID: its pay answered 200`).to.equal(200);
          expect(payments.map((p: { amount_cents: string }) => toNumber(p.amount_cents))).to.deep.equal([order.totalCents]);
          paidTotal += order.totalCents;
        } else {
          expect(status, `order ${order.id}`).to.equal('EXPIRED');
          expect(replies[i].status, `order ${order.id} EXPIRED: its pay failed`).to.not.equal(200);
          expect(payments, `order ${order.id} EXPIRED: no payment left`).to.deep.equal([]);
        }
      }
      // The race was real: some pays deducted, then lost to the expiry and got their money back.
      const restored = await app.db('saga_compensations').where({ listener: 'balance-restore', status: 'DONE' }).count({ n: '*' });
      expect(toNumber(restored[0].n), JSON.stringify(outcome)).to.be.greaterThan(0);
      expect(outcome['PAID/200'] ?? 0, JSON.stringify(outcome)).to.be.greaterThan(0);
      expect(outcome['EXPIRED/409'] ?? 0, JSON.stringify(outcome)).to.be.greaterThan(0);
      expect(await api.balance(buyer)).to.equal(startBalance - paidTotal);
      await checkMoneyInvariant(app);
      await checkSeatInvariants(app, show.id);
    });
  });
});
