import { expect } from 'chai';
import { cleanup, isolate, kill, spawnService, startTestApp, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkSeatInvariants } from '../support/invariants';

describe('A listener killed between its commit and its ack', () => {
  const iso = isolate('listenercrash');
  let apiApp: TestApp;
  let worker: TestApp | undefined;

  before(async () => {
    // The API process runs no listener: the compensation goes to the child worker below.
    apiApp = await startTestApp(iso, {}, 'api');
  });
  after(() => cleanup(iso, [apiApp, worker]));

  it('When the worker dies after committing and before acking, then the redelivery changes nothing', async () => {
    const api = new Api(apiApp.url!);
    const buyer = await api.createUser('ann');
    const show = await api.createShow(1, 4);
    const seatIds = show.seatIds.slice(0, 2);

    const child = await spawnService({ ...apiApp.env, FAILPOINTS: 'listener.seat-release.after=crash' }, 'worker');
    let sagaId: string;
    try {
      await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
      const failed = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
      expect(failed.status).to.equal(500);
      sagaId = failed.body.error.details.sagaId;
      await waitFor('the worker to be killed by its failpoint', async () => child.signalCode === 'SIGKILL', 10_000);
    } finally {
      await kill(child);
    }

    // The effect was committed before the crash: the seats are free, and another order takes them.
    const release = await apiApp.db('saga_compensations').where({ saga_id: sagaId, listener: 'seat-release' }).first('status');
    expect(release).to.deep.equal({ status: 'DONE' });
    const retaken = await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth);
    expect(retaken.status).to.equal(201);

    // A healthy worker gets the unacked message again: it must not release the new order's seats.
    worker = await startTestApp(iso, {}, 'worker');
    await waitFor('the saga compensated', async () => (await api.saga(sagaId)).body.status === 'COMPENSATED', 10_000);
    await waitFor(
      'the redelivery handled',
      async () => {
        const values = (await worker!.metrics.compensations.get()).values;
        return values.some((v) => v.labels.listener === 'seat-release' && v.labels.outcome === 'duplicate-db' && v.value === 1);
      },
      10_000,
    );
    const outcomes = (await worker.metrics.compensations.get()).values.filter((v) => v.labels.listener === 'seat-release');
    expect(outcomes.map((v) => [v.labels.outcome, v.value])).to.deep.equal([['duplicate-db', 1]]);
    expect(await apiApp.db('saga_compensations').where({ saga_id: sagaId, listener: 'seat-release' }).count({ n: '*' })).to.deep.equal([{ n: '1' }]);
    const holders = await apiApp.db('seat_holds').whereIn('seat_id', seatIds).pluck('order_id');
    expect(holders).to.deep.equal([retaken.body.id, retaken.body.id]);
    await checkSeatInvariants(apiApp, show.id);
  });
});
