import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { bulkBuyers } from '../support/buyers';
import { cleanup, isolate, kill, spawnService, startTestApp, testEnv, type TestApp } from '../support/fixture';
import { Api } from '../support/http';
import { allResolved, checkReservationsResolved, checkSeatInvariants } from '../support/invariants';

/** The process (its registration id, mod 1024) that minted a snowflake id. */
const mintedBy = (id: string) => Number((BigInt(id) >> 12n) & 1023n);

describe('Async orders with several API and worker processes side by side', () => {
  const iso = isolate('scale-out');
  let api: TestApp;
  const children: Array<ChildProcess & { output: string[] }> = [];

  before(async function () {
    this.timeout(120_000);
    api = await startTestApp(iso, {}, 'api');
    // A second API process and two workers, as separate OS processes.
    const started = await Promise.all([spawnService(testEnv(iso), 'api'), spawnService(testEnv(iso), 'worker'), spawnService(testEnv(iso), 'worker')]);
    children.push(...started);
  });
  after(async () => {
    for (const child of children) await kill(child, 'SIGTERM');
    await cleanup(iso, [api]);
  });

  it('When orders arrive at two API processes at once, then two workers share the persisting, every order is persisted once and no seat is sold twice', async function () {
    this.timeout(120_000);
    const secondUrl = /listening on (http:\/\/[\d.:]+)/.exec(children[0].output.join(''))![1];
    const apis = [new Api(api.url!), new Api(secondUrl)];
    const show = await apis[0].createShow(10, 100);
    const buyers = await bulkBuyers(api, 1_200, 'side-by-side');
    // Every fourth buyer waits for the order: answered by whichever worker persists it.
    const replies = await Promise.all(
      buyers.map((buyer, i) => apis[i % 2].post(`/api/orders/async${i % 4 === 0 ? '?waitMs=10000' : ''}`, { showId: show.id, quantity: 1 }, buyer.auth)),
    );
    const statuses = replies.map((r) => r.status);
    expect(
      statuses.filter((s) => s !== 201 && s !== 202 && s !== 409),
      JSON.stringify(replies.find((r) => r.status >= 500)?.body),
    ).to.deep.equal([]);
    const placed = replies.filter((r) => r.status === 201 || r.status === 202).map((r) => (r.status === 201 ? r.body.id : r.body.orderId) as string);
    expect(placed).to.have.length(1_000);
    expect(replies.filter((r) => r.status === 409).every((r) => r.body.error.code === 'SOLD_OUT')).to.equal(true);
    expect(replies.filter((r, i) => i % 4 === 0 && r.status === 201).length, 'waiters answered 201 across processes').to.be.greaterThan(0);

    await allResolved(api, placed);
    const { persisted } = await checkReservationsResolved(api, show.id, placed);
    expect(persisted).to.have.length(1_000);
    expect(await checkSeatInvariants(api, show.id)).to.deep.equal({ sold: 0, held: 1_000, available: 0 });
    // Orders were accepted by both API processes (their ids' minting process) and persisted by both workers (their sagas').
    expect(new Set(placed.map(mintedBy)).size, 'API processes that accepted orders').to.equal(2);
    const sagaIds: string[] = await api.db('sagas').whereIn('order_id', placed).pluck('id');
    expect(new Set(sagaIds.map(mintedBy)).size, 'workers that persisted orders').to.equal(2);

    // Each worker serves its own /metrics; together they count every order once.
    let persistedByWorkers = 0;
    for (const worker of children.slice(1)) {
      const metricsUrl = /"metrics":"(http:[^"]+)"/.exec(worker.output.join(''))![1];
      const text = await (await fetch(metricsUrl)).text();
      persistedByWorkers += Number(/^seat_saga_async_orders_persisted_total (\d+)$/m.exec(text)![1]);
    }
    expect(persistedByWorkers).to.equal(1_000);
  });
});
