import { expect } from 'chai';
import { toNumber } from '../../src/db/database';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkSeatInvariants } from '../support/invariants';

describe('The outbox survives a restart', () => {
  const iso = isolate('outbox');
  let first: TestApp | undefined;
  let second: TestApp | undefined;
  after(() => cleanup(iso, [first, second]));

  it('When a process stops with compensation messages not yet published, then the next process publishes them and the sagas are compensated', async () => {
    first = await startTestApp(iso, {}, 'api');
    const api = new Api(first.url!);
    const buyer = await api.createUser('ann');
    const show = await api.createShow(1, 6);
    await first.relay.stop(); // as if the process died before its relay ran

    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 3 });
    const failed = await Promise.all(
      [0, 1, 2].map((i) => api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[i * 2], show.seatIds[i * 2 + 1]] }, buyer.auth)),
    );
    expect(failed.map((r) => r.status)).to.deep.equal([500, 500, 500]);
    const unsent = async (app: TestApp) => toNumber((await app.db('outbox').whereNull('sent_at').count({ n: '*' }))[0].n);
    // Three compensations, and the three expiry messages their orders wrote before failing.
    const unsentCompensations = toNumber(
      (await first.db('outbox').whereNull('sent_at').where({ exchange: first.topology.exchanges.compensation }).count({ n: '*' }))[0].n,
    );
    expect(unsentCompensations).to.equal(3);
    expect(await unsent(first)).to.equal(6);
    await first.stop();
    first = undefined;

    second = await startTestApp(iso, {}, 'all');
    await waitFor('the outbox drained by the new process', async () => (await unsent(second!)) === 0, 10_000);
    for (const reply of failed) {
      const sagaId = reply.body.error.details.sagaId;
      await waitFor(`saga ${sagaId} compensated`, async () => (await new Api(second!.url!).saga(sagaId)).body.status === 'COMPENSATED', 10_000);
    }
    const counts = await checkSeatInvariants(second, show.id);
    expect(counts.available).to.equal(6);
  });
});
