import { expect } from 'chai';
import type { CompensationMessage } from '../../src/sagas/saga-types';
import { deleteKeysWithPrefix } from '../../src/db/redis';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { checkSeatInvariants } from '../support/invariants';

describe('Compensation listeners deliver exactly once', () => {
  const iso = isolate('exactlyonce');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'];

  before(async () => {
    ({ app, api, buyer, show } = await startSale(iso, { rows: 2 }));
  });
  after(() => cleanup(iso, [app]));

  async function outcomes(listener: string): Promise<Record<string, number>> {
    const metric = await app.metrics.compensations.get();
    const counts: Record<string, number> = {};
    for (const v of metric.values) if (v.labels.listener === listener) counts[String(v.labels.outcome)] = v.value;
    return counts;
  }

  /** A saga that failed at order_add (after its effect), compensated; returns its message. */
  async function compensatedSaga(seatIds: string[]): Promise<CompensationMessage> {
    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
    const reply = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    expect(reply.status).to.equal(500);
    const { sagaId } = reply.body.error.details;
    await waitFor('compensated', async () => (await api.saga(sagaId)).body.status === 'COMPENSATED');
    const row = await app.db('outbox').where({ routing_key: 'order_add_cancel' }).andWhere('message_id', 'like', `${sagaId}:%`).first('payload');
    return JSON.parse(row.payload);
  }

  function republish(message: CompensationMessage, times: number) {
    return Promise.all(
      Array.from({ length: times }, (_, i) =>
        app.broker.publish(app.topology.exchanges.compensation, message.tag, message, { messageId: `${message.sagaId}:replay:${i}` }),
      ),
    );
  }

  async function expectUnchangedAfterReplay(message: CompensationMessage, takenBy: { id: string }, seatIds: string[]) {
    const records = await app.db('saga_compensations').where({ saga_id: message.sagaId }).orderBy('listener');
    expect(records.map((r: { listener: string; status: string }) => [r.listener, r.status])).to.deep.equal([
      ['order-delete', 'DONE'],
      ['seat-release', 'DONE'],
    ]);
    const saga = await app.db('sagas').where({ id: message.sagaId }).first('status', 'compensations_pending');
    expect(saga).to.deep.equal({ status: 'COMPENSATED', compensations_pending: 0 });
    // The seats went to another order since: a second release would have taken them from it.
    const holds = await app.db('seat_holds').whereIn('seat_id', seatIds).select('order_id');
    expect(holds.map((h: { order_id: string }) => h.order_id)).to.deep.equal(seatIds.map(() => takenBy.id));
    expect(await app.db('orders').where({ id: takenBy.id }).first('status')).to.deep.equal({ status: 'PENDING_PAYMENT' });
  }

  it('When every compensation message is delivered three more times, then its effect happened once (Redis dedupe)', async () => {
    const seatIds = show.seatIds.slice(0, 2);
    const message = await compensatedSaga(seatIds);
    const next = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    expect(next.status).to.equal(201);
    const before = { release: await outcomes('seat-release'), remove: await outcomes('order-delete') };

    await republish(message, 3);
    await waitFor('three duplicates per listener', async () => {
      const release = await outcomes('seat-release');
      const remove = await outcomes('order-delete');
      return (
        (release['duplicate-redis'] ?? 0) - (before.release['duplicate-redis'] ?? 0) === 3 &&
        (remove['duplicate-redis'] ?? 0) - (before.remove['duplicate-redis'] ?? 0) === 3
      );
    });
    expect((await outcomes('seat-release')).done).to.equal(before.release.done);
    await expectUnchangedAfterReplay(message, next.body, seatIds);
    await checkSeatInvariants(app, show.id);
  });

  it('When Redis has lost every key of the namespace, then three more deliveries still change nothing (database dedupe)', async () => {
    const seatIds = show.seatIds.slice(2, 4);
    const message = await compensatedSaga(seatIds);
    const next = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    expect(next.status).to.equal(201);

    expect(await deleteKeysWithPrefix(app.redis, `${iso.namespace}:`)).to.be.greaterThan(0);
    const before = { release: await outcomes('seat-release'), remove: await outcomes('order-delete') };
    await republish(message, 3);
    // The first copy can only be caught by the database (Redis forgot); copies arriving after it
    // marked the key done again are caught by Redis. Either way: three duplicates, no effect.
    const delta = (now: Record<string, number>, then: Record<string, number>, key: string) => (now[key] ?? 0) - (then[key] ?? 0);
    for (const [listener, then] of [
      ['seat-release', before.release],
      ['order-delete', before.remove],
    ] as const) {
      await waitFor(`three duplicates for ${listener}`, async () => {
        const now = await outcomes(listener);
        return delta(now, then, 'duplicate-db') + delta(now, then, 'duplicate-redis') === 3;
      });
      const now = await outcomes(listener);
      expect(delta(now, then, 'duplicate-db'), `${listener}: caught by the database`).to.be.at.least(1);
      expect(delta(now, then, 'done') + delta(now, then, 'noop'), `${listener}: acted again`).to.equal(0);
    }
    await expectUnchangedAfterReplay(message, next.body, seatIds);

    // The seat view is rebuilt from the database on next use, and agrees with it.
    const taken = await api.post('/api/orders', { showId: show.id, seatIds: [seatIds[0]] }, buyer.auth);
    expect(taken.status).to.equal(409);
    await checkSeatInvariants(app, show.id);
  });

  it('When copies arrive while the first delivery is still running, then they wait for it and the effect happens once', async () => {
    const seatIds = show.seatIds.slice(4, 6);
    const before = await outcomes('seat-release');
    await api.setFailpoint('listener.seat-release.before', { action: 'delay', ms: 400, count: 1 });
    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
    const reply = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    const { sagaId } = reply.body.error.details;
    const message = await waitFor('the compensation message', async () => {
      const row = await app.db('outbox').where('message_id', 'like', `${sagaId}:%`).whereNotNull('sent_at').first('payload');
      return row && (JSON.parse(row.payload) as CompensationMessage);
    });
    await republish(message, 3);
    await waitFor('compensated', async () => (await api.saga(sagaId)).body.status === 'COMPENSATED');
    await waitFor(
      'all copies handled',
      async () => {
        const now = await outcomes('seat-release');
        const duplicates = ['duplicate-redis', 'duplicate-db'].reduce((sum, k) => sum + (now[k] ?? 0) - (before[k] ?? 0), 0);
        return duplicates === 3;
      },
      15_000,
    );
    const now = await outcomes('seat-release');
    expect(now.done - (before.done ?? 0)).to.equal(1);
    expect((now.busy ?? 0) - (before.busy ?? 0)).to.be.greaterThan(0);
    expect(await app.db('saga_compensations').where({ saga_id: sagaId, listener: 'seat-release' }).count({ n: '*' })).to.deep.equal([{ n: '1' }]);
    await checkSeatInvariants(app, show.id);
  });
});
