import { expect } from 'chai';
import { inTransaction } from '../../src/db/database';
import { cleanup, isolate, kill, spawnService, startSale, type Sale, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkSeatInvariants } from '../support/invariants';

describe('Recovery: the sweeper finishes what a dead or stuck process left', () => {
  const iso = isolate('recovery');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso, {
      env: { SAGA_STALE_MS: '1000', COMPENSATION_STALE_MS: '1000', SWEEP_INTERVAL_MS: '200' },
    }));
  });
  after(() => cleanup(iso, [app]));

  const latestSagaId = async (): Promise<string> => (await app.db('sagas').orderBy('id', 'desc').first('id')).id;

  const lateSteps = [
    { failpoint: 'order.seats_hold.before', tag: 'order_add_seats_cancel', release: 'NOOP' },
    { failpoint: 'order.seats_hold.after', tag: 'order_add_seats_cancel', release: 'DONE' },
    { failpoint: 'order.order_add.before', tag: 'order_add_cancel', release: 'DONE' },
  ];
  for (const { failpoint, tag, release } of lateSteps) {
    it(`When a saga stays RUNNING past the bound (${failpoint} delayed), then the sweeper compensates it and the late step is refused, holding nothing`, async () => {
      const seatIds = freshSeats(2);
      await api.setFailpoint(failpoint, { action: 'delay', ms: 2_500, count: 1 });
      const pending = api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const sagaId = await latestSagaId();

      const compensated = await waitFor(
        'the sweeper to compensate',
        async () => {
          const saga = (await api.saga(sagaId)).body;
          return saga.status === 'COMPENSATED' && saga;
        },
        5_000,
      );
      expect(compensated.failedTag).to.equal(tag);
      expect(compensated.error.code).to.equal('SAGA_STALE');
      expect(compensated.compensations.find((c: { listener: string }) => c.listener === 'seat-release').status).to.equal(release);

      // The delayed step wakes up after its saga was compensated: refused.
      const reply = await pending;
      expect(reply.status).to.equal(500);
      expect(reply.body.error).to.deep.include({ code: 'SAGA_FAILED' });
      expect(reply.body.error.details).to.deep.equal({ sagaId, tag });
      const final = (await api.saga(sagaId)).body;
      expect(final.status).to.equal('COMPENSATED');
      expect(await app.db('seat_holds').whereIn('seat_id', seatIds).first()).to.equal(undefined);
      expect(await app.db('orders').where({ saga_id: sagaId }).first()).to.equal(undefined);
      expect(app.logs.lines.some((l) => l.sagaId === sagaId && /refused/.test(l.message))).to.equal(true);
      await checkSeatInvariants(app, show.id);
    });
  }

  it('When the process running a saga is killed mid-saga, then another process compensates it from its last tag', async () => {
    const child = await spawnService({ ...app.env, FAILPOINTS: 'order.order_add.before=crash', PORT: '0' }, 'api');
    try {
      const url = child.output.join('').match(/listening on (http:\/\/[\d.:]+)/)![1];
      const seatIds = freshSeats(2);
      const reply = await new Api(url).post('/api/orders', { showId: show.id, seatIds }, buyer.auth).catch((err) => err);
      expect(reply).to.be.an('error'); // the connection died with the process
      await waitFor('the child to be gone', async () => child.signalCode === 'SIGKILL');

      const sagaId = await latestSagaId();
      expect((await app.db('seat_holds').whereIn('seat_id', seatIds)).length, 'the dead saga held its seats').to.equal(2);
      const saga = await waitFor(
        'the sweeper to compensate the orphan',
        async () => {
          const view = (await api.saga(sagaId)).body;
          return view.status === 'COMPENSATED' && view;
        },
        5_000,
      );
      expect(saga.failedTag).to.equal('order_add_cancel');
      expect(saga.compensations.map((c: { listener: string; status: string }) => [c.listener, c.status]).sort()).to.deep.equal([
        ['order-delete', 'NOOP'],
        ['seat-release', 'DONE'],
      ]);
      await checkSeatInvariants(app, show.id);
      expect((await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth)).status).to.equal(201);
    } finally {
      await kill(child);
    }
  });

  for (const [failpoint, tag] of [
    ['pay.pay_money.after', 'pay_money_cancel'],
    ['pay.pay_order_update.after', 'pay_cancel'],
  ]) {
    it(`When the process running a pay saga is killed at ${failpoint}, then another process gives the money back and the order stays payable`, async () => {
      await api.credit(buyer.id, 10_000);
      const order = await api.order(buyer, show.id, freshSeats(1));
      const before = await api.balance(buyer);
      const child = await spawnService({ ...app.env, FAILPOINTS: `${failpoint}=crash`, PORT: '0' }, 'api');
      try {
        const url = child.output.join('').match(/listening on (http:\/\/[\d.:]+)/)![1];
        const reply = await new Api(url).pay(buyer, order.id).catch((err) => err);
        expect(reply).to.be.an('error');
        await waitFor('the child to be gone', async () => child.signalCode === 'SIGKILL');
        expect(await api.balance(buyer), 'the dead saga had deducted').to.equal(before - order.totalCents);

        const sagaId = (await app.db('sagas').where({ order_id: order.id, type: 'pay' }).first('id')).id;
        const saga = await waitFor(
          'the sweeper to compensate the orphan',
          async () => {
            const view = (await api.saga(sagaId)).body;
            return view.status === 'COMPENSATED' && view;
          },
          5_000,
        );
        expect(saga.failedTag).to.equal(tag);
        expect(saga.compensations.map((c: { listener: string; status: string }) => [c.listener, c.status])).to.deep.equal([['balance-restore', 'DONE']]);
        expect(await api.balance(buyer)).to.equal(before);
        expect((await api.get(`/api/orders/${order.id}`, buyer.auth)).body.status).to.equal('PENDING_PAYMENT');
        expect((await api.pay(buyer, order.id)).status).to.equal(200);
        await checkSeatInvariants(app, show.id);
      } finally {
        await kill(child);
      }
    });
  }

  it('When a saga is stuck in COMPENSATING (its message went to the DLQ), then the sweeper publishes its compensation again', async () => {
    const seatIds = freshSeats(1);
    // Every delivery of the first publication fails, so it ends in the DLQ.
    await api.setFailpoint('listener.seat-release.before', { action: 'throw', count: 3 });
    await api.setFailpoint('order.seats_hold.after', { action: 'throw', count: 1 });
    const reply = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    const { sagaId } = reply.body.error.details;
    const saga = await waitFor(
      'compensated after the republish',
      async () => {
        const view = (await api.saga(sagaId)).body;
        return view.status === 'COMPENSATED' && view;
      },
      10_000,
    );
    expect(saga.compensations).to.have.length(1);
    expect((await app.db('sagas').where({ id: sagaId }).first('compensation_publishes')).compensation_publishes).to.equal(2);
    expect((await app.metrics.deadLettered.get()).values.reduce((sum, v) => sum + v.value, 0)).to.equal(1);
    await checkSeatInvariants(app, show.id);
  });

  it('When two transactions deadlock, then the one chosen as victim is retried whole and both commit', async () => {
    const users = await app.db('users').insert([
      { name: 'x', pay_password_hash: 'h', balance_cents: 0 },
      { name: 'y', pay_password_hash: 'h', balance_cents: 0 },
    ]);
    const first = String(users[0]);
    const second = String(Number(users[0]) + 1);
    let attempts = 0;
    const lockBoth = (a: string, b: string) =>
      inTransaction(app.db, async (trx) => {
        attempts++;
        await trx('users').where({ id: a }).increment('balance_cents', 1);
        await new Promise((resolve) => setTimeout(resolve, 200));
        await trx('users').where({ id: b }).increment('balance_cents', 1);
      });
    await Promise.all([lockBoth(first, second), lockBoth(second, first)]);
    expect(attempts).to.equal(3); // two first attempts, one retry of the victim
    const balances = await app.db('users').whereIn('id', [first, second]).pluck('balance_cents');
    expect(balances).to.deep.equal(['2', '2']);
    // The ledger of those two cents each, so the money invariant checked at cleanup holds for them too.
    await app.db('ledger_entries').insert([first, second].map((id) => ({ user_id: id, kind: 'credit', amount_cents: 2 })));
  });
});
