import { expect } from 'chai';
import { snowflakeTime } from '../../src/support/ids';
import { cleanup, isolate, startSale, type Sale } from '../support/fixture';
import { ADMIN, waitFor } from '../support/http';
import { checkSeatInvariants, sagasSettled } from '../support/invariants';

type SagaItem = {
  id: string;
  type: string;
  status: string;
  failedTag: string | null;
  orderId: string | null;
  userId: string | null;
  createdAt: string;
  updatedAt: string;
  finishedAt: string | null;
};

describe('Operator API: search, stats and timelines', function () {
  this.timeout(60_000);
  const iso = isolate('opsearch');
  let sale: Sale;
  const made: { completed: string[]; failed: string[]; payFailed: string; cancel: string; orderId: string } = {
    completed: [],
    failed: [],
    payFailed: '',
    cancel: '',
    orderId: '',
  };

  before(async () => {
    sale = await startSale(iso, { env: { RETRY_DELAYS_MS: '100', MAX_DELIVERIES: '5' }, rows: 4 });
    const { api, buyer, show } = sale;
    await api.credit(buyer.id, 100_000);
    for (let i = 0; i < 3; i++) made.completed.push((await api.order(buyer, show.id, sale.freshSeats(1))).sagaId);
    // The first one's seat-release fails twice before it applies: its attempts show in the timeline.
    await api.setFailpoint('listener.seat-release.before', { action: 'throw', count: 2 });
    for (let i = 0; i < 2; i++) {
      await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
      made.failed.push((await api.post('/api/orders', { showId: show.id, seatIds: sale.freshSeats(1) }, buyer.auth)).body.error.details.sagaId);
      await waitFor('compensated', async () => (await api.saga(made.failed[i])).body.status === 'COMPENSATED', 10_000);
    }
    const order = await api.order(buyer, show.id, sale.freshSeats(1));
    made.orderId = order.id;
    made.payFailed = (await api.pay(buyer, order.id, 'wrong-password')).body.error.details.sagaId;
    const cancelled = await api.order(buyer, show.id, sale.freshSeats(1));
    await api.post(`/api/orders/${cancelled.id}/cancel`, undefined, buyer.auth);
    made.cancel = (await sale.app.db('sagas').where({ order_id: cancelled.id, type: 'cancel' }).first('id')).id;
    await waitFor('every saga ended', () => sagasSettled(sale.app), 15_000);
  });
  after(() => cleanup(iso, [sale?.app]));

  const search = (query: string) => sale.api.get(`/api/admin/sagas${query}`, ADMIN);

  it('When the sagas are searched without a filter, then they come newest first, in pages that a cursor walks to the end', async () => {
    const all = (await search('?limit=200')).body;
    expect(all.nextCursor).to.equal(null);
    const ids: string[] = all.items.map((s: SagaItem) => s.id);
    const inDb: string[] = await sale.app.db('sagas').orderBy('id', 'desc').pluck('id');
    expect(ids).to.deep.equal(inDb);
    expect(all.items[0]).to.have.keys(['id', 'type', 'status', 'failedTag', 'orderId', 'userId', 'createdAt', 'updatedAt', 'finishedAt']);

    const walked: string[] = [];
    let cursor: string | null = null;
    for (let pages = 0; pages < 20; pages++) {
      const page: { items: SagaItem[]; nextCursor: string | null } = (await search(`?limit=3${cursor ? `&cursor=${cursor}` : ''}`)).body;
      expect(page.items.length).to.be.at.most(3);
      walked.push(...page.items.map((s) => s.id));
      cursor = page.nextCursor;
      if (!cursor) break;
    }
    expect(walked).to.deep.equal(inDb);
  });

  it('When filters are given, then each one narrows the list as the database says, and they combine', async () => {
    const ids = async (query: string) => (await search(query)).body.items.map((s: SagaItem) => s.id);
    const db = sale.app.db;
    expect(await ids('?status=COMPENSATED&type=order')).to.deep.equal(
      await db('sagas').where({ status: 'COMPENSATED', type: 'order' }).orderBy('id', 'desc').pluck('id'),
    );
    expect(await ids('?tag=order_add_cancel')).to.deep.equal([...made.failed].reverse());
    expect(await ids('?type=pay')).to.deep.equal([made.payFailed]);
    expect(await ids('?type=cancel&status=COMPENSATED')).to.deep.equal([made.cancel]);
    expect(await ids(`?orderId=${made.orderId}`)).to.deep.equal(await db('sagas').where({ order_id: made.orderId }).orderBy('id', 'desc').pluck('id'));
    expect(await ids(`?userId=${sale.buyer.id}&status=COMPLETED&type=order`)).to.deep.equal(
      await db('sagas').where({ user_id: sale.buyer.id, status: 'COMPLETED', type: 'order' }).orderBy('id', 'desc').pluck('id'),
    );
    // A time range is an id range: the moment the id was minted (a few ms before created_at).
    const mintedAt = snowflakeTime(made.failed[0]);
    const since = new Date(mintedAt).toISOString();
    const until = new Date(mintedAt + 1).toISOString();
    expect(await ids(`?since=${since}&until=${until}&tag=order_add_cancel`)).to.deep.equal([made.failed[0]]);
    expect(await ids(`?until=${new Date(Date.now() - 3_600_000).toISOString()}`)).to.deep.equal([]);
  });

  it('When a filter is bad, then 400 VALIDATION_FAILED names it; without the admin token, 401', async () => {
    for (const query of [
      '?status=BOGUS',
      '?limit=0',
      '?limit=201',
      '?limit=ten',
      '?color=red',
      '?cursor=bm9wZQ',
      '?orderId=abc',
      '?since=yesterday',
      `?since=2026-12-02T00:00:00Z&until=2026-12-01T00:00:00Z`,
      '?status=RUNNING&status=COMPLETED',
    ]) {
      const reply = await search(query);
      expect(reply.status, query).to.equal(400);
      expect(reply.body.error.code, query).to.equal('VALIDATION_FAILED');
    }
    expect((await sale.api.get('/api/admin/sagas')).status).to.equal(401);
    expect((await sale.api.get('/api/admin/sagas/stats')).status).to.equal(401);
  });

  it('When the stats are read, then the counts by status and type are the database’s, and a saga without progress past its bound is stuck', async () => {
    const db = sale.app.db;
    // A saga started and then left (its process died): RUNNING, no progress for an hour.
    const stuckId = (BigInt(made.completed[0]) - 1n).toString();
    await sale.app.sagaLog.create({ id: stuckId, type: 'order', input: {} });
    await db('sagas')
      .where({ id: stuckId })
      .update({ updated_at: db.raw('NOW(3) - INTERVAL 1 HOUR') });
    const stats = (await sale.api.get('/api/admin/sagas/stats', ADMIN)).body;
    const total = Number((await db('sagas').count({ n: '*' }))[0].n);
    expect(Object.values(stats.byStatus as Record<string, number>).reduce((a, b) => a + b, 0)).to.equal(total);
    expect(stats.byStatus).to.deep.equal({
      RUNNING: 1,
      COMPLETED: Number((await db('sagas').where({ status: 'COMPLETED' }).count({ n: '*' }))[0].n),
      COMPENSATING: 0,
      COMPENSATED: Number((await db('sagas').where({ status: 'COMPENSATED' }).count({ n: '*' }))[0].n),
    });
    expect(stats.byType).to.deep.include({ pay: 1, cancel: 1 });
    expect(stats.stuck).to.equal(1);
    expect(stats.stuckSagas.map((s: SagaItem) => s.id)).to.deep.equal([stuckId]);
    expect(Date.now() - Date.parse(stats.stuckSagas[0].updatedAt), 'no progress for an hour').to.be.greaterThan(3_500_000);
    await db('sagas')
      .where({ id: stuckId })
      .update({ status: 'COMPENSATED', finished_at: db.fn.now(3) }); // leave nothing running
  });

  it('When a failed saga is opened, then its timeline reads in time order: steps, the failure, the compensation queued and published, each listener’s failed and applied deliveries, the end', async () => {
    const reply = await sale.api.get(`/api/admin/sagas/${made.failed[0]}`, ADMIN);
    expect(reply.status).to.equal(200);
    const { timeline, listeners } = reply.body;
    const at = timeline.map((e: { at: string }) => e.at);
    expect(at).to.deep.equal([...at].sort());
    const kinds = timeline.map((e: { kind: string }) => e.kind);
    expect(kinds[0]).to.equal('saga.started');
    expect(kinds.at(-1)).to.equal('saga.compensated');
    for (const step of ['seats_check', 'seats_hold', 'calc_money']) {
      expect(timeline.filter((e: { step?: string }) => e.step === step).map((e: { kind: string }) => e.kind)).to.deep.equal(['step.started', 'step.done']);
    }
    // order.order_add.after: the step's effect committed, then it failed.
    expect(timeline.find((e: { kind: string }) => e.kind === 'step.failed')).to.deep.include({ step: 'order_add', tag: 'order_add_cancel' });
    expect(kinds).to.include.members(['compensation.queued', 'compensation.published', 'listener.undone']);
    expect(kinds).to.not.include('listener.done');
    expect(kinds.indexOf('compensation.queued')).to.be.below(kinds.indexOf('compensation.published'));
    const seatRelease = timeline.filter((e: { listener?: string; kind: string }) => e.listener === 'seat-release' && e.kind.startsWith('listener.'));
    expect(seatRelease.map((e: { kind: string; deliveryCount?: number }) => [e.kind, e.deliveryCount])).to.deep.equal([
      ['listener.failed', 1],
      ['listener.failed', 2],
      ['listener.undone', 3],
    ]);
    expect(seatRelease[2].label).to.match(/^seat-release: released 1 seat\(s\) of order \d+ \(delivery 3\)$/);
    expect(seatRelease[0].error).to.match(/failpoint/);
    expect(listeners).to.deep.equal([
      { listener: 'seat-release', state: 'done', attempts: 3, lastError: seatRelease[1].error },
      { listener: 'order-delete', state: 'done', attempts: 1, lastError: null },
    ]);
  });

  it('When a cancel is opened, then it reads as a release, with no failure and no error', async () => {
    const { timeline, error, reason } = (await sale.api.get(`/api/admin/sagas/${made.cancel}`, ADMIN)).body;
    expect(error).to.equal(null);
    expect(reason)
      .to.be.a('string')
      .and.match(/cancel/);
    expect(timeline[0]).to.deep.include({ kind: 'release.requested', label: 'order cancelled by its owner' });
    expect(timeline.at(-1)).to.deep.include({ kind: 'release.done', label: 'seats released' });
    expect(timeline.filter((e: { kind: string; error?: string }) => /failed/.test(e.kind) || e.error)).to.deep.equal([]);
  });

  it('When a saga that is not COMPENSATING is redriven, then 409 (404 for one that does not exist), and nothing is published', async () => {
    const before = Number((await sale.app.db('outbox').count({ n: '*' }))[0].n);
    const completed = await sale.api.post(`/api/admin/sagas/${made.completed[0]}/redrive`, undefined, ADMIN);
    expect(completed.status).to.equal(409);
    expect(completed.body.error).to.deep.include({ code: 'SAGA_NOT_COMPENSATING' });
    expect((await sale.api.post('/api/admin/sagas/123456789/redrive', undefined, ADMIN)).status).to.equal(404);
    expect(Number((await sale.app.db('outbox').count({ n: '*' }))[0].n)).to.equal(before);
  });
});

describe('Operator API: dead letters and redrive', function () {
  this.timeout(90_000);
  const iso = isolate('opredrive');
  let sale: Sale;

  before(async () => {
    // Two deliveries and the message is dead-lettered; the sweeper stays out of the way (10 min).
    sale = await startSale(iso, {
      env: { RETRY_DELAYS_MS: '50', MAX_DELIVERIES: '2', COMPENSATION_STALE_MS: '600000', DEAD_LETTER_RESOLVE_MS: '300' },
      rows: 10,
      seatsPerRow: 10,
    });
  });
  after(() => cleanup(iso, [sale?.app]));

  /** `n` order sagas failed at order_add.after whose seat-release compensation is in the DLQ. */
  async function deadLettered(n: number): Promise<Array<{ sagaId: string; seatIds: string[] }>> {
    const { api, buyer, show } = sale;
    await api.setFailpoint('listener.seat-release.before', { action: 'throw', count: 2 * n });
    const failed: Array<{ sagaId: string; seatIds: string[] }> = [];
    for (let i = 0; i < n; i++) {
      const seatIds = sale.freshSeats(1);
      await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
      failed.push({ sagaId: (await api.post('/api/orders', { showId: show.id, seatIds }, buyer.auth)).body.error.details.sagaId, seatIds });
    }
    await waitFor(
      `${n} dead letters`,
      async () => {
        const list = (await api.get('/api/admin/dead-letters?listener=seat-release', ADMIN)).body as Array<{ sagaId: string }>;
        return failed.every((f) => list.some((d) => d.sagaId === f.sagaId));
      },
      20_000,
      100,
    );
    await waitFor('order-delete done for them', async () => {
      const [{ n: done }] = await sale.app
        .db('saga_compensations')
        .whereIn(
          'saga_id',
          failed.map((f) => f.sagaId),
        )
        .andWhere({ listener: 'order-delete' })
        .count({ n: '*' });
      return Number(done) === n;
    });
    return failed;
  }

  it('When compensations are dead-lettered, then the list shows each one (read without consuming the DLQ), and the saga waits COMPENSATING', async () => {
    const [one] = await deadLettered(1);
    const list = (await sale.api.get('/api/admin/dead-letters', ADMIN)).body;
    const entry = list.find((d: { sagaId: string }) => d.sagaId === one.sagaId);
    expect(entry).to.deep.include({
      listener: 'seat-release',
      tag: 'order_add_cancel',
      reason: 'retries-exhausted',
      deliveries: 2,
      sagaStatus: 'COMPENSATING',
    });
    expect(entry.error).to.match(/failpoint/);
    expect(entry).to.have.keys(['id', 'listener', 'queue', 'messageId', 'sagaId', 'tag', 'reason', 'error', 'deliveries', 'deadLetteredAt', 'sagaStatus']);
    // Listed again: nothing was consumed.
    expect((await sale.api.get('/api/admin/dead-letters?listener=seat-release', ADMIN)).body.map((d: { sagaId: string }) => d.sagaId)).to.include(one.sagaId);
    expect((await sale.api.get('/api/admin/dead-letters?listener=order-delete', ADMIN)).body).to.deep.equal([]);
    expect((await sale.api.get('/api/admin/dead-letters?listener=nobody', ADMIN)).status).to.equal(400);

    const timeline = (await sale.api.get(`/api/admin/sagas/${one.sagaId}`, ADMIN)).body;
    expect(timeline.status).to.equal('COMPENSATING');
    expect(timeline.timeline.map((e: { kind: string }) => e.kind)).to.include('listener.dead-lettered');
    expect(timeline.listeners).to.deep.include({ listener: 'seat-release', state: 'dead-lettered', attempts: 2, lastError: entry.error });

    // The saga's own redrive publishes its compensation again; the resolver then takes the stale DLQ copy out.
    const redrive = await sale.api.post(`/api/admin/sagas/${one.sagaId}/redrive`, undefined, ADMIN);
    expect(redrive.status).to.equal(202);
    await waitFor('the saga compensated', async () => (await sale.api.saga(one.sagaId)).body.status === 'COMPENSATED', 10_000);
    await waitFor(
      'its dead letter gone from the list',
      async () => !(await sale.api.get('/api/admin/dead-letters', ADMIN)).body.some((d: { sagaId: string }) => d.sagaId === one.sagaId),
      10_000,
      100,
    );
    const row = await sale.app.db('dead_letters').where({ saga_id: one.sagaId }).first('resolution');
    expect(row.resolution).to.equal('settled');
  });

  it('When a redrive body is bad, then 400 and nothing leaves the DLQ', async () => {
    for (const body of [{ listener: 'nobody' }, { sagaIds: ['x'] }, { sagaIds: [] }, { extra: 1 }, []]) {
      const reply = await sale.api.post('/api/admin/dead-letters/redrive', body, ADMIN);
      expect(reply.status, JSON.stringify(body)).to.equal(400);
    }
  });

  it('When 20 dead letters are redriven by three concurrent redrives racing each saga’s own redrive, then each compensation takes effect exactly once and the DLQ is empty', async () => {
    const failed = await deadLettered(20);
    const ids = failed.map((f) => f.sagaId);
    const replies = await Promise.all([
      ...Array.from({ length: 3 }, () => sale.api.post('/api/admin/dead-letters/redrive', { listener: 'seat-release' }, ADMIN)),
      ...ids.map((id) => sale.api.post(`/api/admin/sagas/${id}/redrive`, undefined, ADMIN)),
    ]);
    const redrives = replies.slice(0, 3);
    for (const reply of redrives) expect(reply.status).to.equal(200);
    // Each dead letter left the DLQ once: redriven, or dropped when its saga was compensated first.
    const total = redrives.reduce((sum, r) => sum + r.body.redriven + r.body.dropped, 0);
    expect(total).to.be.at.most(20);
    await waitFor(
      'every saga compensated',
      async () => {
        const [{ n }] = await sale.app.db('sagas').whereIn('id', ids).andWhere({ status: 'COMPENSATED' }).count({ n: '*' });
        return Number(n) === 20;
      },
      20_000,
      100,
    );
    await waitFor(
      'no dead letter of them left',
      async () => {
        const list = (await sale.api.get('/api/admin/dead-letters', ADMIN)).body as Array<{ sagaId: string }>;
        return !list.some((d) => ids.includes(d.sagaId));
      },
      10_000,
      100,
    );
    const effects = await sale.app.db('saga_compensations').whereIn('saga_id', ids).select('saga_id', 'listener');
    expect(effects.filter((e) => e.listener === 'seat-release')).to.have.length(20);
    const applied = await sale.app
      .db('compensation_attempts')
      .whereIn('saga_id', ids)
      .andWhere({ listener: 'seat-release' })
      .whereIn('outcome', ['done', 'noop'])
      .select('saga_id');
    expect(new Set(applied.map((a) => a.saga_id)).size).to.equal(20);
    expect(applied).to.have.length(20);
    expect(
      await sale.app.db('seat_holds').whereIn(
        'seat_id',
        failed.flatMap((f) => f.seatIds),
      ),
    ).to.deep.equal([]);
    await checkSeatInvariants(sale.app, sale.show.id);
  });

  it('When a dead letter’s saga is COMPENSATED already, then a redrive drops it instead of sending it back', async () => {
    const [one] = await deadLettered(1);
    // Settle it behind the DLQ's back (as the sweeper would), then redrive by saga id at once.
    await sale.app.sagaLog.republishCompensation(one.sagaId, null);
    sale.app.relay.kick();
    await waitFor('compensated', async () => (await sale.api.saga(one.sagaId)).body.status === 'COMPENSATED', 10_000);
    const reply = await sale.api.post('/api/admin/dead-letters/redrive', { sagaIds: [one.sagaId] }, ADMIN);
    expect(reply.status).to.equal(200);
    // Dropped by this redrive, or settled by the resolver a moment before it: either way gone, never redriven.
    expect(reply.body.redriven).to.equal(0);
    await waitFor(
      'gone from the list',
      async () => !(await sale.api.get('/api/admin/dead-letters', ADMIN)).body.some((d: { sagaId: string }) => d.sagaId === one.sagaId),
      10_000,
      100,
    );
    const row = await sale.app.db('dead_letters').where({ saga_id: one.sagaId }).first('resolution');
    expect(row.resolution).to.be.oneOf(['dropped', 'settled']);
  });

  it('When one dead letter is redriven by its id, then it alone goes back; the others stay', async () => {
    const two = await deadLettered(2);
    const list = (await sale.api.get('/api/admin/dead-letters?listener=seat-release', ADMIN)).body as Array<{ id: string; sagaId: string }>;
    const first = list.find((d) => d.sagaId === two[0].sagaId)!;
    const reply = await sale.api.post('/api/admin/dead-letters/redrive', { ids: [first.id] }, ADMIN);
    expect(reply.body).to.deep.equal({ redriven: 1, dropped: 0 });
    await waitFor('the first compensated', async () => (await sale.api.saga(two[0].sagaId)).body.status === 'COMPENSATED', 10_000);
    const left = (await sale.api.get('/api/admin/dead-letters?listener=seat-release', ADMIN)).body as Array<{ sagaId: string }>;
    expect(left.map((d) => d.sagaId)).to.deep.equal([two[1].sagaId]);
    expect((await sale.api.saga(two[1].sagaId)).body.status).to.equal('COMPENSATING');
    expect((await sale.api.post('/api/admin/dead-letters/redrive', { ids: ['not an id!'] }, ADMIN)).status).to.equal(400);
    await sale.api.post('/api/admin/dead-letters/redrive', { sagaIds: [two[1].sagaId] }, ADMIN);
    await waitFor('the second compensated', async () => (await sale.api.saga(two[1].sagaId)).body.status === 'COMPENSATED', 10_000);
  });

  it('When the overview is read, then it counts orders of the last minute, sagas in flight and open dead letters by listener', async () => {
    const overview = (await sale.api.get('/api/admin/overview', ADMIN)).body;
    expect(overview.ordersAccepted.lastMinute).to.be.a('number');
    expect(overview.sagas).to.deep.equal({ running: 0, compensating: 0 });
    expect(overview.deadLetters.byListener).to.have.keys(['seat-release', 'order-delete', 'balance-restore', 'expiry', 'order-writer']);
    expect(overview.deadLetters.total).to.equal(0);
  });
});
