import { expect } from 'chai';
import { cleanup, isolate, startSale, startTestApp, type Sale } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkReservationsResolved, checkSeatInvariants, tableCounts } from '../support/invariants';

describe('Async orders (the flash-sale path)', () => {
  const iso = isolate('async-orders');
  let sale: Sale;

  before(async () => {
    sale = await startSale(iso, { rows: 4, seatsPerRow: 10, env: { REPEAT_SUBMIT_WINDOW_MS: '0', SOLD_OUT_CACHE_MS: '2000' } });
  });
  after(() => cleanup(iso, [sale?.app]));

  it('When an async order is accepted, then it answers 202 QUEUED, GET finds it once persisted, and its saga is COMPLETED', async () => {
    const { api, buyer, show } = sale;
    const seats = sale.freshSeats(2);
    const reply = await api.post('/api/orders/async', { showId: show.id, seatIds: seats }, buyer.auth);
    expect(reply.status, JSON.stringify(reply.body)).to.equal(202);
    expect(reply.body).to.deep.equal({ orderId: reply.body.orderId, status: 'QUEUED' });
    expect(reply.headers.get('location')).to.equal(`/api/orders/${reply.body.orderId}`);
    const order = await waitFor('the order persisted', async () => {
      const got = await api.get(`/api/orders/${reply.body.orderId}`, buyer.auth);
      return got.status === 200 ? got.body : null;
    });
    expect(order).to.include({ id: reply.body.orderId, status: 'PENDING_PAYMENT', showId: show.id, totalCents: 2 * show.priceCents });
    expect(order.seatIds).to.deep.equal(seats);
    const saga = (await api.saga(order.sagaId)).body;
    expect(saga.status).to.equal('COMPLETED');
    expect(saga.steps.map((s: any) => [s.step, s.tag, s.status])).to.deep.equal([
      ['seats_check', 'order_seats_cancel', 'DONE'],
      ['seats_hold', 'order_add_seats_cancel', 'DONE'],
      ['calc_money', 'order_calc_money_cancel', 'DONE'],
      ['order_add', 'order_add_cancel', 'DONE'],
    ]);
    await checkReservationsResolved(sale.app, show.id, [reply.body.orderId]);
    await checkSeatInvariants(sale.app, show.id);
  });

  it('When an order asks for a quantity and waits, then it gets the best free seats, 201 with the order', async () => {
    const { api, buyer, show } = sale;
    const taken = new Set(await sale.app.db('seat_holds').where({ show_id: show.id }).pluck('seat_id'));
    const best = show.seatIds.filter((id) => !taken.has(id)).slice(0, 3);
    const reply = await api.post('/api/orders/async?waitMs=5000', { showId: show.id, quantity: 3 }, buyer.auth);
    expect(reply.status, JSON.stringify(reply.body)).to.equal(201);
    expect(reply.body.status).to.equal('PENDING_PAYMENT');
    expect(reply.body.seatIds).to.deep.equal(best);
    sale.freshSeats(3);
  });

  it('When bad input reaches the async path, then it answers 400 and writes nothing, not even in Redis', async () => {
    const { api, buyer, show } = sale;
    const { pending: pendingKey } = sale.app.inventory.keys(show.id);
    const before: Record<string, number> = { ...(await tableCounts(sale.app)), pending: await sale.app.redis.zcard(pendingKey) };
    const other = await api.createShow(1, 2);
    const bad: Array<[string, unknown]> = [
      ['/api/orders/async', { showId: show.id, seatIds: [show.seatIds[30]], quantity: 1 }],
      ['/api/orders/async', { showId: show.id, quantity: 0 }],
      ['/api/orders/async', { showId: show.id, quantity: 1.5 }],
      ['/api/orders/async', { showId: show.id, quantity: 51 }],
      ['/api/orders/async', { showId: show.id, seatIds: [] }],
      ['/api/orders/async', { showId: show.id, seatIds: [show.seatIds[30], show.seatIds[30]] }],
      ['/api/orders/async', { showId: show.id, seatIds: [other.seatIds[0]] }],
      ['/api/orders/async', { showId: 7, quantity: 1 }],
      ['/api/orders/async?waitMs=10001', { showId: show.id, quantity: 1 }],
      ['/api/orders/async?waitMs=abc', { showId: show.id, quantity: 1 }],
    ];
    for (const [path, body] of bad) {
      const reply = await api.post(path, body, buyer.auth);
      expect(reply.status, `${path} ${JSON.stringify(body)}: ${JSON.stringify(reply.body)}`).to.equal(400);
      expect(reply.body.error.code).to.equal('VALIDATION_FAILED');
    }
    expect((await api.post('/api/orders/async', { showId: '999999', quantity: 1 }, buyer.auth)).status).to.equal(404);
    expect((await api.post('/api/orders/async', { showId: show.id, quantity: 1 })).status).to.equal(401);
    const after = { ...(await tableCounts(sale.app)), pending: await sale.app.redis.zcard(pendingKey) };
    expect(after).to.deep.equal({ ...before, shows: before.shows + 1, seats: before.seats + 2 });
  });

  it('When the same user submits again for the same show inside the window, then it answers DUPLICATE_REQUEST naming the first order', async () => {
    const repeatIso = isolate('async-repeat');
    const app = await startTestApp(repeatIso, { REPEAT_SUBMIT_WINDOW_MS: '60000' });
    const api = new Api(app.url!);
    try {
      const buyer = await api.createUser('double-clicker');
      const show = await api.createShow(1, 10);
      const first = await api.post('/api/orders/async', { showId: show.id, quantity: 1 }, buyer.auth);
      expect(first.status).to.equal(202);
      const again = await api.post('/api/orders/async', { showId: show.id, quantity: 1 }, buyer.auth);
      expect(again.status).to.equal(409);
      expect(again.body.error.code).to.equal('DUPLICATE_REQUEST');
      expect(again.body.error.details.orderId).to.equal(first.body.orderId);
      // Another show, or another user, is not a repeat.
      const otherShow = await api.createShow(1, 2);
      expect((await api.post('/api/orders/async', { showId: otherShow.id, quantity: 1 }, buyer.auth)).status).to.equal(202);
      const friend = await api.createUser('friend');
      expect((await api.post('/api/orders/async', { showId: show.id, quantity: 1 }, friend.auth)).status).to.equal(202);
    } finally {
      await cleanup(repeatIso, [app]);
    }
  });

  it('When a show sells out, then SOLD_OUT is answered (also from the process cache), and clears once a cancel gives seats back', async () => {
    const { api, buyer } = sale;
    const show = await api.createShow(1, 3);
    const placed = await api.post('/api/orders/async?waitMs=5000', { showId: show.id, quantity: 3 }, buyer.auth);
    expect(placed.status, JSON.stringify(placed.body)).to.equal(201);
    const soldOut = await api.post('/api/orders/async', { showId: show.id, quantity: 1 }, buyer.auth);
    expect(soldOut.status).to.equal(409);
    expect(soldOut.body.error.code).to.equal('SOLD_OUT');
    const metrics = async () => (await api.get('/metrics')).body as string;
    expect(await metrics()).to.match(/seat_saga_async_order_requests_total\{outcome="sold_out"\} [1-9]/);
    const cached = await api.post('/api/orders/async', { showId: show.id, seatIds: [show.seatIds[0]] }, { ...buyer.auth, 'X-Request-Id': 'sold-out-1' });
    expect(cached.status).to.equal(409);
    expect(cached.body).to.deep.equal({ error: { code: 'SOLD_OUT', message: `show ${show.id} is sold out`, details: { showId: show.id } } });
    expect(cached.headers.get('x-request-id')).to.equal('sold-out-1');
    expect(await metrics()).to.match(/seat_saga_async_order_requests_total\{outcome="sold_out_cached"\} [1-9]/);
    // While a sold-out show is known, the body of any other order is read early and handed on intact.
    const elsewhere = await api.post('/api/orders/async?waitMs=5000', { showId: sale.show.id, seatIds: sale.freshSeats(1) }, buyer.auth);
    expect(elsewhere.status, JSON.stringify(elsewhere.body)).to.equal(201);
    expect((await api.post('/api/orders/async', { showId: show.id, quantity: 1, extra: true }, buyer.auth)).body.error.code).to.equal('VALIDATION_FAILED');
    // The sold-out answer comes early, but never before the token and the body are checked.
    expect((await api.post('/api/orders/async', { showId: show.id, quantity: 1 })).status).to.equal(401);
    expect((await api.post('/api/orders/async', { showId: show.id, quantity: 0 }, buyer.auth)).body.error.code).to.equal('VALIDATION_FAILED');
    expect((await api.post('/api/orders/async', '{"showId":', { ...buyer.auth, 'Content-Type': 'application/json' })).body.error.code).to.equal(
      'MALFORMED_JSON',
    );

    expect((await api.post(`/api/orders/${placed.body.id}/cancel`, undefined, buyer.auth)).status).to.equal(200);
    const again = await waitFor(
      'seats back on sale',
      async () => {
        const reply = await api.post('/api/orders/async', { showId: show.id, quantity: 2 }, buyer.auth);
        return reply.status === 202 ? reply : null;
      },
      10_000,
      100,
    );
    expect(again.body.status).to.equal('QUEUED');
  });

  it('When a seat is taken, then SEATS_TAKEN names it; when fewer seats are left than asked, SEATS_TAKEN says how many', async () => {
    const { api, buyer } = sale;
    const show = await api.createShow(1, 4);
    expect((await api.post('/api/orders/async', { showId: show.id, seatIds: [show.seatIds[0]] }, buyer.auth)).status).to.equal(202);
    const taken = await api.post('/api/orders/async', { showId: show.id, seatIds: [show.seatIds[0], show.seatIds[1]] }, buyer.auth);
    expect(taken.status).to.equal(409);
    expect(taken.body.error).to.include({ code: 'SEATS_TAKEN' });
    expect(taken.body.error.details.seatIds).to.deep.equal([show.seatIds[0]]);
    const tooMany = await api.post('/api/orders/async', { showId: show.id, quantity: 4 }, buyer.auth);
    expect(tooMany.status).to.equal(409);
    expect(tooMany.body.error.details).to.deep.equal({ available: 3 });
  });

  it('When the publish fails, then the answer is 503, the seats are back and the reservation is RELEASED', async () => {
    const { api, buyer, app } = sale;
    const show = await api.createShow(1, 2);
    await api.setFailpoint('async_order.publish.before', { action: 'throw', count: 1 });
    const reply = await api.post('/api/orders/async', { showId: show.id, seatIds: [show.seatIds[0]] }, buyer.auth);
    expect(reply.status).to.equal(503);
    expect(reply.body.error.code).to.equal('SERVICE_UNAVAILABLE');
    const released = await app.db('reservations').where({ show_id: show.id }).select('outcome', 'reason');
    expect(released).to.deep.equal([{ outcome: 'RELEASED', reason: 'publish-failed' }]);
    await checkSeatInvariants(app, show.id);
    expect(await app.redis.zscore(app.inventory.keys(show.id).free, show.seatIds[0])).to.not.equal(null);
    // The same seat can be ordered again at once.
    expect((await api.post('/api/orders/async', { showId: show.id, seatIds: [show.seatIds[0]] }, buyer.auth)).status).to.equal(202);
    expect((await api.get('/metrics')).body).to.match(/seat_saga_reservations_released_total\{reason="publish-failed"\} 1/);
  });
});

describe('Async orders that wait too long', () => {
  const iso = isolate('async-stale');
  let sale: Sale;

  before(async () => {
    sale = await startSale(iso, {
      rows: 1,
      seatsPerRow: 10,
      env: { ORDER_MAX_QUEUE_DELAY_MS: '2000', RESERVATION_RECONCILE_AFTER_MS: '4000', REPEAT_SUBMIT_WINDOW_MS: '0', ASYNC_ORDER_BATCH_LINGER_MS: '200' },
    });
  });
  after(() => cleanup(iso, [sale?.app]));

  /** A metric's value by its exact name and labels, as /metrics prints it (0 when absent). */
  const metric = async (series: string) => {
    const line = ((await sale.api.get('/metrics')).body as string).split('\n').find((l) => l.startsWith(`${series} `));
    return Number(line?.slice(series.length + 1) ?? 0);
  };

  it('When an order message is consumed later than ORDER_MAX_QUEUE_DELAY_MS, then it is dropped, its seats come back, the waiter hears 503 and the counter goes up', async () => {
    const { api, buyer, show, app } = sale;
    const seat = sale.freshSeats(1);
    await api.setFailpoint('async_order.consume.before', { action: 'delay', ms: 3_000, count: 1 });
    const reply = await api.post('/api/orders/async?waitMs=5000', { showId: show.id, seatIds: seat }, buyer.auth);
    expect(reply.status, JSON.stringify(reply.body)).to.equal(503);
    expect(reply.body.error.details).to.include({ reason: 'stale' });
    const orderId = reply.body.error.details.orderId;
    const got = await api.get(`/api/orders/${orderId}`, buyer.auth);
    expect(got.status).to.equal(404);
    expect(got.body.error.details).to.deep.equal({ orderId, reservation: 'RELEASED', reason: 'stale' });
    await checkReservationsResolved(app, show.id, [orderId]);
    expect(await checkSeatInvariants(app, show.id)).to.include({ held: 0 });
    expect(await metric('seat_saga_async_orders_stale_dropped_total')).to.equal(1);
    expect(await api.get(`/api/orders/${orderId}`, (await api.createUser('stranger')).auth)).to.have.property('status', 404);
  });

  it('When the order is persisted after its waiter gave up, then both are counted', async () => {
    const { api, buyer, show } = sale;
    const before = {
      timeouts: await metric('seat_saga_async_order_wait_timeouts_total'),
      late: await metric('seat_saga_async_orders_persisted_after_waiter_gave_up_total'),
    };
    await api.setFailpoint('async_order.consume.before', { action: 'delay', ms: 600, count: 1 });
    const reply = await api.post('/api/orders/async?waitMs=200', { showId: show.id, seatIds: sale.freshSeats(1) }, buyer.auth);
    expect(reply.status).to.equal(202);
    await waitFor('persisted', async () => (await api.get(`/api/orders/${reply.body.orderId}`, buyer.auth)).status === 200);
    expect(await metric('seat_saga_async_order_wait_timeouts_total')).to.equal(before.timeouts + 1);
    expect(await metric('seat_saga_async_orders_persisted_after_waiter_gave_up_total')).to.equal(before.late + 1);
  });

  it('When a persisted order is still pending in Redis (its confirm was lost), then the reconciler marks it done and keeps its seats', async () => {
    const { api, buyer, show, app } = sale;
    const seats = sale.freshSeats(2);
    const placed = await api.post('/api/orders/async?waitMs=5000', { showId: show.id, seatIds: seats }, buyer.auth);
    expect(placed.status).to.equal(201);
    const { pending: pendingKey, reservations: reservationsKey } = app.inventory.keys(show.id);
    await app.redis.zadd(pendingKey, Date.now() - 60_000, placed.body.id);
    await app.redis.hset(reservationsKey, placed.body.id, `${buyer.id}|${seats.join(',')}`);
    await waitFor('the reconciler resolved it', async () => (await app.redis.zcard(pendingKey)) === 0, 10_000, 100);
    expect(await app.db('reservations').where({ order_id: placed.body.id }).first('outcome')).to.deep.equal({ outcome: 'PERSISTED' });
    expect((await api.get(`/api/orders/${placed.body.id}`, buyer.auth)).body.status).to.equal('PENDING_PAYMENT');
    expect(await checkSeatInvariants(app, show.id)).to.include({ held: 3 });
  });

  it('When one message of a batch cannot be persisted at all, then it alone goes to the DLQ and the rest of its batch is persisted', async () => {
    const { api, buyer, show, app } = sale;
    const deadLettered = await metric(`seat_saga_messages_dead_lettered_total{queue="${app.topology.asyncOrders.queue.name}",reason="unprocessable"}`);
    // A message naming a seat that does not exist (the API never sends one), then a real order,
    // within one batch (the linger is 200 ms here).
    await app.broker.publish(
      app.topology.asyncOrders.exchange,
      app.topology.asyncOrders.routingKey,
      {
        orderId: '123456789',
        userId: buyer.id,
        showId: show.id,
        seatIds: ['999999999'],
        priceCents: 100,
        reservedAt: Date.now(),
        waitMs: 0,
      },
      { messageId: 'order:123456789' },
    );
    const good = await api.post('/api/orders/async?waitMs=5000', { showId: show.id, seatIds: sale.freshSeats(1) }, buyer.auth);
    expect(good.status, JSON.stringify(good.body)).to.equal(201);
    await waitFor(
      'the bad message in the DLQ',
      async () =>
        (await metric(`seat_saga_messages_dead_lettered_total{queue="${app.topology.asyncOrders.queue.name}",reason="unprocessable"}`)) === deadLettered + 1,
    );
    expect(await app.db('orders').where({ id: '123456789' }).first()).to.equal(undefined);
    const dlq = await app.broker.withChannel((channel) => channel.checkQueue(app.topology.asyncOrders.queue.deadLetterQueue));
    expect(dlq.messageCount).to.equal(1);
  });
});
