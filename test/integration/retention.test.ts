import { expect } from 'chai';
import { toNumber } from '../../src/db/database';
import { RETENTION_TABLES, SagaRetention, type PurgeCounts } from '../../src/retention/saga-retention';
import { IdGenerator } from '../../src/support/ids';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api } from '../support/http';

const DAY_MS = 86_400_000;
const OLD_SAGAS = 4_000;

/** What the test seeded, by what the purge must do with it. */
interface Seeded {
  /** Ended 40 days ago: every row of theirs must go. */
  oldEnded: string[];
  /** Created 40 days ago, still RUNNING or COMPENSATING: must stay with every row. */
  oldLive: string[];
  /** Created 40 days ago, ended yesterday (a long compensation): inside the window, stays. */
  oldCreatedRecentlyEnded: string[];
  /** Ended 40 days ago, but a dead letter of it is still open: stays until someone resolves it. */
  withOpenDeadLetter: string;
  /** An unsent outbox row of an old ended saga: the relay still owes it to the broker. */
  unsentOutboxId: string;
}

const datetime = (ms: number) => new Date(ms).toISOString().slice(0, 23).replace('T', ' ');

/** Old sagas the way the service writes them: steps, compensation records, attempts, outbox rows, dead letters. */
async function seedOldSagas(app: TestApp): Promise<Seeded> {
  let clock = Date.now() - 40 * DAY_MS;
  const ids = new IdGenerator(7, { now: () => clock });
  const sagas: any[] = [];
  const steps: any[] = [];
  const compensations: any[] = [];
  const attempts: any[] = [];
  const outbox: any[] = [];
  const deadLetters: any[] = [];
  const seeded: Seeded = { oldEnded: [], oldLive: [], oldCreatedRecentlyEnded: [], withOpenDeadLetter: '', unsentOutboxId: '' };
  for (let i = 0; i < OLD_SAGAS; i++) {
    clock += 50;
    const id = ids.next();
    const kind = i % 20;
    const status = kind < 13 ? 'COMPLETED' : kind < 17 ? 'COMPENSATED' : kind < 19 ? 'COMPENSATING' : 'RUNNING';
    const recentlyEnded = status === 'COMPENSATED' && i % 100 === 15;
    const finished = status === 'COMPLETED' || status === 'COMPENSATED' ? (recentlyEnded ? Date.now() - DAY_MS : clock + 40) : null;
    sagas.push({
      id,
      type: status === 'COMPLETED' && i % 2 ? 'pay' : 'order',
      status,
      payload: '{}',
      order_id: id,
      user_id: 1 + (i % 50),
      failed_tag: status === 'COMPLETED' ? null : 'order_add_cancel',
      compensations_pending: status === 'COMPENSATING' ? 2 : 0,
      created_at: datetime(clock),
      updated_at: datetime(clock + 40),
      finished_at: finished === null ? null : datetime(finished),
    });
    for (const step of ['seats_check', 'seats_hold', 'calc_money', 'order_add'])
      steps.push({ saga_id: id, step, tag: `${step}_cancel`, status: 'DONE', started_at: datetime(clock), finished_at: datetime(clock + 10) });
    if (status !== 'COMPLETED' && status !== 'RUNNING') {
      for (const listener of ['seat-release', 'order-delete']) {
        compensations.push({ saga_id: id, tag: 'order_add_cancel', listener, status: 'DONE', detail: 'undone', at: datetime(clock + 30) });
        attempts.push({ saga_id: id, tag: 'order_add_cancel', listener, delivery_count: 1, outcome: 'done', at: datetime(clock + 30) });
      }
      outbox.push({
        exchange: 'x',
        routing_key: 'order_add_cancel',
        message_id: `${id}:order_add_cancel:1`,
        payload: '{}',
        saga_id: id,
        created_at: datetime(clock + 20),
        sent_at: datetime(clock + 25),
      });
      if (i % 40 === 13)
        deadLetters.push({
          id: `dl-${id}`,
          queue: 'q',
          listener: 'seat-release',
          saga_id: id,
          tag: 'order_add_cancel',
          reason: 'rejected',
          deliveries: 3,
          dead_lettered_at: datetime(clock + 30),
          resolved_at: datetime(clock + 35),
          resolution: 'redriven',
        });
    }
    if (status === 'COMPLETED' || (status === 'COMPENSATED' && !recentlyEnded)) seeded.oldEnded.push(id);
    else if (recentlyEnded) seeded.oldCreatedRecentlyEnded.push(id);
    else seeded.oldLive.push(id);
  }
  // One old ended saga whose dead letter no one resolved yet; one with a message still unsent.
  seeded.withOpenDeadLetter = seeded.oldEnded.splice(5, 1)[0];
  deadLetters.push({
    id: 'dl-open',
    queue: 'q',
    listener: 'seat-release',
    saga_id: seeded.withOpenDeadLetter,
    tag: 'order_add_cancel',
    reason: 'rejected',
    deliveries: 3,
    dead_lettered_at: datetime(Date.now() - 39 * DAY_MS),
    resolved_at: null,
  });
  outbox.push({
    exchange: 'x',
    routing_key: 'order_add_cancel',
    message_id: 'unsent',
    payload: '{}',
    saga_id: seeded.oldEnded[seeded.oldEnded.length - 3],
    created_at: datetime(Date.now() - 39 * DAY_MS),
    sent_at: null,
  });
  // Dead letters of no saga: resolved long ago (go), resolved within the window or still open (stay); one of a live saga (stays).
  deadLetters.push(
    {
      id: 'dl-orphan-old',
      queue: 'q',
      listener: 'order-writer',
      saga_id: null,
      reason: 'rejected',
      deliveries: 8,
      dead_lettered_at: datetime(Date.now() - 45 * DAY_MS),
      resolved_at: datetime(Date.now() - 44 * DAY_MS),
      resolution: 'settled',
    },
    {
      id: 'dl-orphan-recent',
      queue: 'q',
      listener: 'order-writer',
      saga_id: null,
      reason: 'rejected',
      deliveries: 8,
      dead_lettered_at: datetime(Date.now() - 2 * DAY_MS),
      resolved_at: datetime(Date.now() - DAY_MS),
      resolution: 'settled',
    },
    {
      id: 'dl-orphan-open',
      queue: 'q',
      listener: 'order-writer',
      saga_id: null,
      reason: 'rejected',
      deliveries: 8,
      dead_lettered_at: datetime(Date.now() - 45 * DAY_MS),
      resolved_at: null,
    },
    {
      id: 'dl-live-saga',
      queue: 'q',
      listener: 'seat-release',
      saga_id: seeded.oldLive[0],
      reason: 'rejected',
      deliveries: 8,
      dead_lettered_at: datetime(Date.now() - 45 * DAY_MS),
      resolved_at: datetime(Date.now() - 44 * DAY_MS),
      resolution: 'redriven',
    },
  );
  const key = (name: string, expiresDaysAgo: number) => ({
    user_id: 1,
    scope: 'orders',
    idem_key: name,
    request_hash: 'h',
    status: 'DONE',
    response_status: 201,
    response_body: '{}',
    created_at: datetime(Date.now() - (expiresDaysAgo + 1) * DAY_MS),
    expires_at: datetime(Date.now() - expiresDaysAgo * DAY_MS),
  });
  const keys = [key('old-1', 35), key('old-2', 31), key('expired-yesterday', 1), key('live', -1)];
  for (const [table, rows] of Object.entries({
    sagas,
    saga_steps: steps,
    saga_compensations: compensations,
    compensation_attempts: attempts,
    outbox,
    dead_letters: deadLetters,
    idempotency_keys: keys,
  })) {
    for (let i = 0; i < rows.length; i += 1_000) await app.db(table).insert(rows.slice(i, i + 1_000));
  }
  seeded.unsentOutboxId = String((await app.db('outbox').where({ message_id: 'unsent' }).first('id')).id);
  return seeded;
}

/** Rows of these sagas, per table that holds saga rows. */
async function rowsOf(app: TestApp, ids: string[]): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const [table, column] of [
    ['sagas', 'id'],
    ['saga_steps', 'saga_id'],
    ['saga_compensations', 'saga_id'],
    ['compensation_attempts', 'saga_id'],
    ['outbox', 'saga_id'],
    ['dead_letters', 'saga_id'],
  ]) {
    let n = 0;
    for (let i = 0; i < ids.length; i += 1_000)
      n += toNumber(
        (
          await app
            .db(table)
            .whereIn(column, ids.slice(i, i + 1_000))
            .count({ n: '*' })
        )[0].n,
      );
    out[table] = n;
  }
  return out;
}

const tableCounts = async (app: TestApp) =>
  Object.fromEntries(await Promise.all(RETENTION_TABLES.map(async (t) => [t, toNumber((await app.db(t).count({ n: '*' }))[0].n)])));

describe('Saga retention', () => {
  const iso = isolate('retention');
  let app: TestApp;
  let api: Api;
  let seeded: Seeded;
  let recentSagas: string[];
  before(async () => {
    // The api role: no sweeper, so the old RUNNING and COMPENSATING sagas stay as seeded.
    app = await startTestApp(iso, {}, 'api');
    await app.relay.stop(); // the unsent outbox row stays unsent
    api = new Api(app.url!);
    seeded = await seedOldSagas(app);
    const buyer = await api.createUser('ann');
    const show = await api.createShow(1, 5);
    recentSagas = [];
    for (const seat of show.seatIds) recentSagas.push((await api.order(buyer, show.id, [seat])).sagaId);
  });
  after(() => cleanup(iso, [app]));

  it('When SAGA_RETENTION_DAYS is 0, then nothing is purged', async () => {
    const before = await tableCounts(app);
    const result = await new SagaRetention(app.db, app.logger, { retentionDays: 0 }).purgeOnce();
    expect(Object.values(result.deleted).every((n) => n === 0)).to.equal(true);
    expect(await tableCounts(app)).to.deep.equal(before);
  });

  it('When it is stopped in the middle of a pass, then it stops between two batches and the batch it did is whole', async () => {
    const retention = new SagaRetention(app.db, app.logger, { retentionDays: 30, batchSize: 100, pauseMs: 200 });
    const pass = retention.purgeOnce();
    // The first batch committed, the purge pausing: stop.
    while ((await rowsOf(app, seeded.oldEnded.slice(0, 100))).sagas > 0) await new Promise((resolve) => setTimeout(resolve, 10));
    await retention.stop();
    const result = await pass;
    const batches = result.batches;
    expect(result.finished).to.equal(false);
    expect(batches).to.be.lessThan(5);
    expect(result.deleted.sagas).to.equal(batches * 100);
    // Its sagas went whole, the next ones untouched.
    const done = await rowsOf(app, seeded.oldEnded.slice(0, result.deleted.sagas));
    expect(
      Object.values(done).every((n) => n === 0),
      JSON.stringify(done),
    ).to.equal(true);
    expect((await rowsOf(app, seeded.oldEnded.slice(result.deleted.sagas + 5, result.deleted.sagas + 6))).saga_steps).to.equal(4);
  });

  it('When it purges while buyers order, then only ended sagas older than the window go, with all their rows, and every order placed meanwhile is whole', async () => {
    const counted: Partial<PurgeCounts> = {};
    const retention = new SagaRetention(app.db, app.logger, {
      retentionDays: 30,
      batchSize: 100,
      pauseMs: 5,
      onPurged: (table, rows) => (counted[table] = (counted[table] ?? 0) + rows),
    });
    const liveBefore = await rowsOf(app, seeded.oldLive);
    const keptBefore = await rowsOf(app, [...seeded.oldCreatedRecentlyEnded, seeded.withOpenDeadLetter]);

    // A burst of sync order sagas for as long as the pass runs (at least 40 orders).
    const buyer = await api.createUser('bob');
    const show = await api.createShow(10, 50);
    let purging = true;
    const pass = retention.purgeOnce().finally(() => (purging = false));
    let next = 0;
    const placed: string[] = [];
    const latencies: number[] = [];
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while ((purging || next < 40) && next < show.seatIds.length) {
          const seat = show.seatIds[next++];
          const t0 = Date.now();
          placed.push((await api.order(buyer, show.id, [seat])).sagaId);
          latencies.push(Date.now() - t0);
        }
      }),
    );
    const result = await pass;
    latencies.sort((a, b) => a - b);
    console.log(
      `      (purged ${result.deleted.sagas} sagas in ${result.batches} batches, ${result.ms} ms, slowest batch ${result.slowestBatchMs} ms; ` +
        `${placed.length} orders meanwhile: p50 ${latencies[Math.floor(latencies.length / 2)]} ms, max ${latencies.at(-1)} ms)`,
    );
    expect(result.finished).to.equal(true);

    // Every row of the old ended sagas is gone (those the stopped pass took included).
    const gone = await rowsOf(app, seeded.oldEnded);
    expect(gone, 'rows of old ended sagas left').to.deep.equal({
      sagas: 0,
      saga_steps: 0,
      saga_compensations: 0,
      compensation_attempts: 0,
      outbox: 1,
      dead_letters: 0,
    });
    expect(await app.db('outbox').where({ id: seeded.unsentOutboxId }).whereNull('sent_at').first('id'), 'the unsent message').to.not.equal(undefined);
    // What had not ended, ended inside the window, or has an open dead letter, is whole.
    expect(await rowsOf(app, seeded.oldLive)).to.deep.equal(liveBefore);
    expect(await rowsOf(app, [...seeded.oldCreatedRecentlyEnded, seeded.withOpenDeadLetter])).to.deep.equal(keptBefore);
    // The recent sagas, and every one placed during the pass, are there, completed, with their four steps.
    const recent = [...recentSagas, ...placed];
    const statuses = await app.db('sagas').whereIn('id', recent).pluck('status');
    expect(statuses).to.have.length(recent.length);
    expect(new Set(statuses)).to.deep.equal(new Set(['COMPLETED']));
    expect(toNumber((await app.db('saga_steps').whereIn('saga_id', recent).count({ n: '*' }))[0].n)).to.equal(4 * recent.length);
    // Idempotency keys expired before the window, and dead letters resolved before it of no live saga, are gone.
    expect(await app.db('idempotency_keys').orderBy('idem_key').pluck('idem_key')).to.deep.equal(['expired-yesterday', 'live']);
    expect(await app.db('dead_letters').whereNull('saga_id').orderBy('id').pluck('id')).to.deep.equal(['dl-orphan-open', 'dl-orphan-recent']);
    expect(await app.db('dead_letters').where({ id: 'dl-live-saga' }).first('id')).to.not.equal(undefined);
    // The counter saw what the pass deleted.
    expect(counted).to.deep.include({ sagas: result.deleted.sagas, saga_steps: result.deleted.saga_steps, idempotency_keys: 2 });

    // A second pass finds nothing more.
    const again = await retention.purgeOnce();
    expect(
      Object.values(again.deleted).every((n) => n === 0),
      JSON.stringify(again.deleted),
    ).to.equal(true);
  });
});
