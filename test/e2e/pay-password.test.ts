import { expect } from 'chai';
import type { ChildProcess } from 'node:child_process';
import { cleanup, isolate, kill, spawnService, startSale, type Sale } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkMoneyInvariant } from '../support/invariants';

describe('Pay password attempts, limited across API processes', function () {
  this.timeout(90_000);
  const iso = isolate('paypw');
  let sale: Sale;
  let second: (ChildProcess & { output: string[] }) | null = null;
  let secondApi: Api;

  before(async () => {
    const env = { PAY_PASSWORD_WINDOW_MS: '4000' };
    sale = await startSale(iso, { env, rows: 2 });
    second = await spawnService({ ...sale.app.env, ...env, PORT: '0' }, 'api');
    const url = /seat-saga listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(second.output.join(''))![1];
    secondApi = new Api(url);
    await sale.api.credit(sale.buyer.id, 100_000);
  });
  after(async () => {
    if (second) await kill(second, 'SIGTERM');
    await cleanup(iso, [sale?.app]);
  });

  it('When the pay password is wrong, then 403 WRONG_PAY_PASSWORD, no saga step moves money, and the attempts left are told', async () => {
    const user = await sale.api.createUser('typo');
    await sale.api.credit(user.id, 10_000);
    const order = await sale.api.order(user, sale.show.id, sale.freshSeats(1));
    const reply = await sale.api.pay(user, order.id, 'not-the-password');
    expect(reply.status).to.equal(403);
    expect(reply.body.error).to.deep.include({ code: 'WRONG_PAY_PASSWORD' });
    expect(reply.body.error.details).to.include({ attemptsLeft: 4, tag: 'pay_check_cancel' });
    expect(await sale.api.balance(user)).to.equal(10_000);
    expect((await sale.api.get(`/api/orders/${order.id}`, user.auth)).body.status).to.equal('PENDING_PAYMENT');
  });

  it('When five wrong attempts were spread over two API processes, then the sixth (on either) answers 429 TOO_MANY_ATTEMPTS, even with the right password, until the window passes', async () => {
    const { api, buyer, show } = sale;
    const order = await api.order(buyer, show.id, sale.freshSeats(1));
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await (i % 2 === 0 ? api : secondApi).pay(buyer, order.id, `wrong-${i}`)).status);
    expect(statuses).to.deep.equal([403, 403, 403, 403, 403]);

    const sixth = await secondApi.pay(buyer, order.id, 'wrong-again');
    expect(sixth.status).to.equal(429);
    expect(sixth.body.error.code).to.equal('TOO_MANY_ATTEMPTS');
    expect(Number(sixth.headers.get('retry-after'))).to.be.within(1, 4);
    const retryKey = { 'Idempotency-Key': `after-lockout-${order.id}` };
    const rightButLocked = await api.pay(buyer, order.id, 'pay-secret', retryKey);
    expect(rightButLocked.status).to.equal(429);
    expect(await api.balance(buyer)).to.equal(100_000);
    // Refused before any saga started: the lock-out writes nothing.
    expect(await sale.app.db('sagas').where({ order_id: order.id, type: 'pay' }).count({ n: '*' })).to.deep.equal([{ n: '5' }]);

    await new Promise((resolve) => setTimeout(resolve, 4_200));
    // The 429 was not stored under its Idempotency-Key: the retry runs, and pays.
    const afterWindow = await secondApi.pay(buyer, order.id, 'pay-secret', retryKey);
    expect(afterWindow.status).to.equal(200);
    expect(afterWindow.headers.get('idempotent-replayed')).to.equal(null);
    expect(afterWindow.body.balanceCents).to.equal(100_000 - order.totalCents);
    await checkMoneyInvariant(sale.app);
  });

  /** Hashes computed so far by both API processes (this one's registry and the second's /metrics). */
  async function hashesComputed(): Promise<number> {
    const own = (await sale.app.metrics.payPasswordChecks.get()).values.filter((v) => v.labels.outcome !== 'locked').reduce((sum, v) => sum + v.value, 0);
    const text = await (await fetch(`${secondApi.baseUrl}/metrics`)).text();
    const theirs = [...text.matchAll(/^seat_saga_pay_password_checks_total\{outcome="(right|wrong)"\} (\d+)$/gm)].reduce((sum, m) => sum + Number(m[2]), 0);
    return own + theirs;
  }

  it('When 30 wrong guesses race over two API processes and the right password follows while they run, then 5 hashes are computed, 5 answer 403, the rest and the right one 429, and no money moves', async () => {
    const { api, show } = sale;
    const victim = await api.createUser('victim');
    await api.credit(victim.id, 10_000);
    const order = await api.order(victim, show.id, sale.freshSeats(1));
    const before = await hashesComputed();
    const counter = `${sale.app.config.NAMESPACE}:pay-password-failures:${victim.id}`;

    const guesses = Array.from({ length: 30 }, (_, i) => (i % 2 === 0 ? api : secondApi).pay(victim, order.id, `guess-${i}`));
    // The right password, once the burst has reserved every attempt but before it has been answered.
    await waitFor('the burst to reserve the attempts', async () => Number(await sale.app.redis.get(counter)) >= 5, 5_000, 1);
    const right = await api.pay(victim, order.id);
    const statuses = (await Promise.all(guesses)).map((r) => r.status);

    expect(statuses.filter((s) => s === 403)).to.have.length(5);
    expect(statuses.filter((s) => s === 429)).to.have.length(25);
    expect(right.status).to.equal(429);
    expect(right.body.error.code).to.equal('TOO_MANY_ATTEMPTS');
    expect((await hashesComputed()) - before).to.equal(5);
    expect(await api.balance(victim)).to.equal(10_000);
    expect((await api.get(`/api/orders/${order.id}`, victim.auth)).body.status).to.equal('PENDING_PAYMENT');
  });

  it('When the right password follows two wrong ones, then it pays and gives only its own attempt back: the next wrong one has two left', async () => {
    const { api, show } = sale;
    const user = await api.createUser('careful');
    await api.credit(user.id, 10_000);
    const first = await api.order(user, show.id, sale.freshSeats(1));
    const second = await api.order(user, show.id, sale.freshSeats(1));
    for (const guess of ['wrong-1', 'wrong-2']) expect((await api.pay(user, first.id, guess)).status).to.equal(403);
    expect((await api.pay(user, first.id)).status).to.equal(200);
    const next = await secondApi.pay(user, second.id, 'wrong-3');
    expect(next.status).to.equal(403);
    expect(next.body.error.details.attemptsLeft).to.equal(2);
  });

  it("When one user is locked out, then another user's payments are unaffected", async () => {
    const { api, show } = sale;
    const locked = await api.createUser('locked');
    const fine = await api.createUser('fine');
    await api.credit(fine.id, 10_000);
    const lockedOrder = await api.order(locked, show.id, sale.freshSeats(1));
    for (let i = 0; i < 5; i++) await api.pay(locked, lockedOrder.id, 'wrong-password');
    expect((await api.pay(locked, lockedOrder.id, 'wrong-password')).status).to.equal(429);
    const order = await api.order(fine, show.id, sale.freshSeats(1));
    expect((await secondApi.pay(fine, order.id)).status).to.equal(200);
  });
});
