import { expect } from 'chai';
import { deleteKeysWithPrefix } from '../../src/db/redis';
import type { CompensationMessage } from '../../src/sagas/saga-types';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { waitFor } from '../support/http';
import { checkMoneyInvariant, checkSeatInvariants } from '../support/invariants';

describe('Balance restore takes effect exactly once', () => {
  const iso = isolate('restoreonce');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];

  before(async () => {
    ({ app, api, buyer, show, freshSeats } = await startSale(iso, { rows: 2 }));
    await api.credit(buyer.id, 100_000);
  });
  after(() => cleanup(iso, [app]));

  async function outcomes(): Promise<Record<string, number>> {
    const metric = await app.metrics.compensations.get();
    const counts: Record<string, number> = {};
    for (const v of metric.values) if (v.labels.listener === 'balance-restore') counts[String(v.labels.outcome)] = v.value;
    return counts;
  }
  const delta = (now: Record<string, number>, then: Record<string, number>, key: string) => (now[key] ?? 0) - (then[key] ?? 0);

  /** A pay that failed after marking the order PAID: restored, then the order paid for real. */
  async function restoredThenPaid(failpoint: string, tag: string) {
    const order = await api.order(buyer, show.id, freshSeats(1));
    const before = await api.balance(buyer);
    await api.setFailpoint(failpoint, { action: 'throw', count: 1 });
    const failed = await api.pay(buyer, order.id);
    expect(failed.status).to.equal(500);
    const { sagaId } = failed.body.error.details;
    await waitFor('compensated', async () => (await api.saga(sagaId)).body.status === 'COMPENSATED');
    expect(await api.balance(buyer)).to.equal(before);
    const row = await app.db('outbox').where({ routing_key: tag }).andWhere('message_id', 'like', `${sagaId}:%`).first('payload');
    const message = JSON.parse(row.payload) as CompensationMessage;
    const paid = await api.pay(buyer, order.id);
    expect(paid.status).to.equal(200);
    return { order, message, paidBalance: before - order.totalCents, paySagaId: paid.body.sagaId as string };
  }

  const republish = (message: CompensationMessage, times: number) =>
    Promise.all(
      Array.from({ length: times }, (_, i) =>
        app.broker.publish(app.topology.exchanges.compensation, message.tag, message, { messageId: `${message.sagaId}:replay:${i}` }),
      ),
    );

  async function expectUntouched(run: Awaited<ReturnType<typeof restoredThenPaid>>) {
    expect(await api.balance(buyer)).to.equal(run.paidBalance);
    const order = await app.db('orders').where({ id: run.order.id }).first('status', 'paid_saga_id');
    expect(order).to.deep.equal({ status: 'PAID', paid_saga_id: run.paySagaId });
    const payments = await app.db('ledger_entries').where({ order_id: run.order.id, kind: 'payment' }).select('saga_id');
    expect(payments).to.deep.equal([{ saga_id: run.paySagaId }]);
    const records = await app.db('saga_compensations').where({ saga_id: run.message.sagaId }).select('listener', 'status');
    expect(records).to.deep.equal([{ listener: 'balance-restore', status: 'DONE' }]);
    await checkMoneyInvariant(app);
    await checkSeatInvariants(app, show.id);
  }

  for (const [failpoint, tag] of [
    ['pay.pay_money.after', 'pay_money_cancel'],
    ['pay.pay_order_update.after', 'pay_cancel'],
  ]) {
    it(`When a ${tag} message is delivered three more times, then the balance was restored once (Redis dedupe), even after the order was paid again`, async () => {
      const run = await restoredThenPaid(failpoint, tag);
      const then = await outcomes();
      await republish(run.message, 3);
      await waitFor('three duplicates', async () => delta(await outcomes(), then, 'duplicate-redis') === 3);
      expect(delta(await outcomes(), then, 'done')).to.equal(0);
      await expectUntouched(run);
    });

    it(`When Redis lost its keys and a ${tag} message is delivered three more times, then nothing changes (database dedupe)`, async () => {
      const run = await restoredThenPaid(failpoint, tag);
      expect(await deleteKeysWithPrefix(app.redis, `${iso.namespace}:`)).to.be.greaterThan(0);
      const then = await outcomes();
      await republish(run.message, 3);
      await waitFor('three duplicates', async () => {
        const now = await outcomes();
        return delta(now, then, 'duplicate-redis') + delta(now, then, 'duplicate-db') === 3;
      });
      const now = await outcomes();
      expect(delta(now, then, 'duplicate-db')).to.be.at.least(1);
      expect(delta(now, then, 'done') + delta(now, then, 'noop')).to.equal(0);
      await expectUntouched(run);
    });
  }
});
