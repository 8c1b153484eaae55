/// <reference lib="dom" />
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { cleanup, isolate, startSale, type Sale } from '../support/fixture';
import { ADMIN, waitFor } from '../support/http';

/**
 * The operator console in a real browser (Debian's Chromium, driven by playwright-core; no browser
 * is downloaded): login, saga search and timeline, dead-letter redrive, the seat map and the live
 * counters, under the service's strict CSP. Screenshots of each view go to a temporary folder, or
 * to docs/ with CONSOLE_SCREENSHOTS=docs (how the README's pictures are made).
 */

const TOKEN = ADMIN['X-Admin-Token'];
const TOKEN_KEY = 'seat-saga.admin-token';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const VIEWPORT = { width: 1280, height: 800 };
const RED = 'rgb(179, 38, 30)'; // --red in console.css

describe('Operator console in a browser', function () {
  this.timeout(120_000);
  const iso = isolate('console');
  let sale: Sale;
  let profile: string;
  let shots: string;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  const problems: string[] = []; // CSP violations and uncaught page errors
  const consoleErrors: string[] = [];
  const requestUrls: string[] = [];
  const figures: Record<string, string> = {};

  const db = () => sale.app.db;
  const shot = (name: string, fullPage = false) => page.screenshot({ path: path.join(shots, `console-${name}.png`), fullPage });
  const testid = (id: string) => page.getByTestId(id);
  /** Waits until the search shows exactly these sagas, in this order. */
  const rowsBecome = async (ids: string[]) => {
    const shown = () => testid('saga-row').evaluateAll((rows) => rows.map((r) => r.getAttribute('data-saga-id')));
    await waitFor(`the rows ${ids.join(', ')}`, async () => JSON.stringify(await shown()) === JSON.stringify(ids), 10_000).catch(async (err) => {
      throw new Error(`${(err as Error).message}; shown: ${JSON.stringify(await shown())}`);
    });
  };
  const counter = async (id: string) => Number((await testid(id).getByTestId('counter-value').textContent())!.replace(/,/g, ''));

  /** Opens a view by its hash, signing in first when the tab has no token. */
  async function open(hash: string) {
    await page.goto(`${base}/console/${hash}`);
    await page.locator('[data-testid="login-form"], [data-testid="counters"]').first().waitFor();
    if (await testid('login-form').isVisible()) {
      await testid('token-input').fill(TOKEN);
      await testid('sign-in').click();
      await testid('counters').waitFor();
    }
  }

  /** An order saga failed at order_add (after its effect), as in the operator API test; its compensation follows. */
  async function failedOrderSaga(): Promise<string> {
    const { api, buyer, show } = sale;
    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
    const reply = await api.post('/api/orders', { showId: show.id, seatIds: sale.freshSeats(1) }, buyer.auth);
    expect(reply.status).to.equal(500);
    return reply.body.error.details.sagaId;
  }

  before(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium (as .ci/run does), or set CHROMIUM_PATH`);
    // Two deliveries and a compensation is dead-lettered (as in the operator API test); the sweeper
    // stays out of the way, so a dead letter waits for the operator and a stuck saga stays stuck.
    const env = { RETRY_DELAYS_MS: '50', MAX_DELIVERIES: '2', COMPENSATION_STALE_MS: '600000', DEAD_LETTER_RESOLVE_MS: '300', SWEEP_INTERVAL_MS: '600000' };
    sale = await startSale(iso, { env, rows: 4, seatsPerRow: 10 });
    await sale.api.credit(sale.buyer.id, 1_000_000);
    base = sale.app.url!.replace(/\/$/, '');
    shots = process.env.CONSOLE_SCREENSHOTS === 'docs' ? path.join(__dirname, '../../docs') : mkdtempSync(path.join(os.tmpdir(), 'console-shots-'));
    mkdirSync(shots, { recursive: true });
    profile = mkdtempSync(path.join(os.tmpdir(), 'console-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS, viewport: VIEWPORT });
    // Recorded from inside the page too: the CSP's own report of anything it blocked.
    await context.addInitScript(() => {
      document.addEventListener('securitypolicyviolation', (e) =>
        console.error(`Content Security Policy violation: ${e.violatedDirective} blocked ${e.blockedURI}`),
      );
    });
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) problems.push(`console: ${msg.text()}`);
      else if (msg.type() === 'error') consoleErrors.push(msg.text());
    });
    page.on('pageerror', (err) => problems.push(`pageerror: ${err.message}`));
    page.on('request', (req) => requestUrls.push(req.url()));
  });

  after(async () => {
    await context?.close().catch(() => {});
    if (profile) rmSync(profile, { recursive: true, force: true });
    if (Object.keys(figures).length)
      console.log(
        `      console figures: ${Object.entries(figures)
          .map(([k, v]) => `${k} ${v}`)
          .join(', ')}; screenshots in ${shots}`,
      );
    await cleanup(iso, [sale?.app]);
  });

  afterEach(() => {
    // The token never travels in a URL, whatever the test did.
    expect(requestUrls.filter((url) => url.includes(TOKEN))).to.deep.equal([]);
  });

  it('When the operator signs in, then the token is typed once and kept in sessionStorage only, a reload keeps the session, a wrong token is refused, a later 401 asks again', async () => {
    const transferred: Array<Promise<number>> = [];
    const onResponse = (res: import('playwright-core').Response) => {
      if (res.url().startsWith(`${base}/console`))
        transferred.push(
          res
            .request()
            .sizes()
            .then((s) => s.responseBodySize + s.responseHeadersSize),
        );
    };
    page.on('response', onResponse);
    await page.goto(`${base}/console/`);
    await testid('login-form').waitFor();
    const loginAt = await page.evaluate(() => performance.getEntriesByName('console:login-visible')[0]?.startTime);
    await page.waitForLoadState('load');
    page.off('response', onResponse);
    const bytes = (await Promise.all(transferred)).reduce((a, b) => a + b, 0);
    figures['page weight'] = `${(bytes / 1024).toFixed(1)} KiB in ${transferred.length} requests`;
    figures['login form visible'] = `${Math.round(loginAt)} ms`;
    expect(transferred.length).to.be.at.most(20);
    expect(bytes).to.be.below(120 * 1024);
    expect(await page.getByLabel('Admin token').getAttribute('type')).to.equal('password');
    await shot('login');

    await testid('token-input').fill('not-the-token-0123456789');
    await testid('sign-in').click();
    await testid('login-error').waitFor();
    expect(await testid('login-error').textContent()).to.match(/refused this token \(401\)/);
    expect(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY)).to.equal(null);

    await testid('token-input').fill(TOKEN);
    await testid('sign-in').click();
    await testid('counters').waitFor();
    await testid('live-status').and(page.locator('[data-state="live"]')).waitFor();
    expect(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY)).to.equal(TOKEN);
    expect(await page.evaluate(() => localStorage.length)).to.equal(0);
    expect(await context.cookies()).to.deep.equal([]);
    expect(page.url()).to.not.include(TOKEN);

    await page.reload();
    await testid('counters').waitFor();
    await page.waitForFunction(() => performance.getEntriesByName('console:counters-visible').length > 0);
    const countersAt = await page.evaluate(() => performance.getEntriesByName('console:counters-visible')[0].startTime);
    figures['first counters visible (signed in, reload)'] = `${Math.round(countersAt)} ms`;
    expect(await testid('login-form').count()).to.equal(0);

    await testid('sign-out').click();
    await testid('login-notice').waitFor();
    expect(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY)).to.equal(null);

    // A token the service stops accepting (it restarted with another ADMIN_TOKEN): the next refresh answers 401.
    await page.evaluate((key) => sessionStorage.setItem(key, 'a-token-from-before-0123456789'), TOKEN_KEY);
    await page.reload();
    await testid('login-notice').waitFor();
    expect(await testid('login-notice').textContent()).to.match(/refused the admin token \(401\)/);
    expect(await page.evaluate((key) => sessionStorage.getItem(key), TOKEN_KEY)).to.equal(null);
  });

  it('When a saga failed by a failpoint is searched by status and failed tag, then its timeline draws the failed step, the compensation and each listener’s events; stuck sagas open their timeline; a cancel reads as a release', async () => {
    const { api, buyer, show } = sale;
    const completed: string[] = [];
    for (let i = 0; i < 3; i++) completed.push((await api.order(buyer, show.id, sale.freshSeats(1))).sagaId);
    const sagaId = await failedOrderSaga();
    const order = await api.order(buyer, show.id, sale.freshSeats(1));
    expect((await api.post(`/api/orders/${order.id}/cancel`, undefined, buyer.auth)).status).to.equal(200);
    const cancelId = (await db()('sagas').where({ order_id: order.id, type: 'cancel' }).first('id')).id;
    await waitFor('compensated', async () => (await api.saga(sagaId)).body.status === 'COMPENSATED', 15_000);
    await waitFor('cancel done', async () => (await api.saga(cancelId)).body.status === 'COMPENSATED', 15_000);
    // A saga whose process died an hour ago (as in the operator API test): RUNNING, no progress.
    const stuckId = (BigInt(completed[0]) - 1n).toString();
    await sale.app.sagaLog.create({ id: stuckId, type: 'order', input: {} });
    await db()('sagas')
      .where({ id: stuckId })
      .update({ updated_at: db().raw('NOW(3) - INTERVAL 1 HOUR') });

    await open('#/sagas');
    await testid('filter-status').selectOption('COMPENSATED');
    await testid('filter-tag').fill('order_add_cancel');
    await testid('search').click();
    await page.waitForURL(/status=COMPENSATED/);
    await rowsBecome([sagaId]);
    expect(await testid('saga-row').getByTestId('saga-status').getAttribute('data-status')).to.equal('COMPENSATED');

    // A bad filter: the service's 400 names the field, and the form shows it next to that field.
    await testid('filter-orderId').fill('abc');
    await testid('search').click();
    await testid('field-error-orderId').waitFor();
    expect(await testid('field-error-orderId').textContent()).to.match(/must be an id/);
    expect(await testid('search-error').textContent()).to.match(/400 VALIDATION_FAILED/);

    // Pages of 2, newest first, walked forward and back through the kept cursors.
    const newest: string[] = await db()('sagas').orderBy('id', 'desc').limit(4).pluck('id');
    await open('#/sagas?limit=2');
    await rowsBecome(newest.slice(0, 2));
    await testid('page-next').click();
    await rowsBecome(newest.slice(2, 4));
    expect(await testid('page-number').textContent()).to.equal('Page 2');
    await testid('page-previous').click();
    await rowsBecome(newest.slice(0, 2));
    expect(await testid('page-previous').isDisabled()).to.equal(true);

    // The stuck saga, listed beside the search, opens its timeline.
    await open('#/sagas');
    const stuck = page.locator(`[data-testid="stuck-item"][data-saga-id="${stuckId}"]`);
    await stuck.waitFor();
    expect(await testid('stuck-count').textContent()).to.equal('1');
    await testid('saga-row').first().waitFor();
    await shot('sagas');
    await stuck.click();
    await page.waitForURL(new RegExp(`#/sagas/${stuckId}$`));
    await page.locator(`[data-testid="saga-head"][data-saga-id="${stuckId}"]`).waitFor();
    expect(await testid('saga-head').getByTestId('saga-status').getAttribute('data-status')).to.equal('RUNNING');
    await db()('sagas')
      .where({ id: stuckId })
      .update({ status: 'COMPENSATED', finished_at: db().fn.now(3) }); // leave nothing running

    // The timeline, opened from the search.
    await open(`#/sagas?status=COMPENSATED&tag=order_add_cancel`);
    await page.locator(`[data-testid="saga-link"][data-saga-id="${sagaId}"]`).click();
    await page.waitForURL(new RegExp(`#/sagas/${sagaId}$`));
    await testid('timeline').waitFor();
    const events = await testid('timeline-event').evaluateAll((items) =>
      items.map((li) => ({
        kind: li.getAttribute('data-kind'),
        family: li.getAttribute('data-family'),
        listener: li.getAttribute('data-listener'),
        time: li.querySelector('.event-time')!.textContent,
        label: li.querySelector('[data-testid="event-label"]')!.textContent,
        dot: getComputedStyle(li.querySelector('.event-dot')!).backgroundColor,
      })),
    );
    const api_ = (await api.saga(sagaId)).body;
    expect(events.map((e) => e.kind)).to.deep.equal(api_.timeline.map((e: { kind: string }) => e.kind));
    expect(events[0]).to.deep.include({ kind: 'saga.started', time: '+0 ms' });
    for (const e of events) expect(e.time).to.match(/^\+\d+(\.\d+)? (ms|s|min)/);
    const failed = events.find((e) => e.kind === 'step.failed')!;
    expect(failed).to.deep.include({ family: 'failure', dot: RED });
    expect(failed.label).to.match(/^order_add failed: .*failpoint/);
    const undone = events.filter((e) => e.kind === 'listener.undone');
    expect(undone.map((e) => e.listener).sort()).to.deep.equal(['order-delete', 'seat-release']);
    for (const e of undone) expect(e.family).to.equal('compensation');
    expect(events.filter((e) => e.kind === 'step.done').every((e) => e.family === 'done')).to.equal(true);
    expect(events.at(-1)).to.deep.include({ kind: 'saga.compensated', family: 'compensation' });
    const listeners = await testid('listener-row').evaluateAll((rows) =>
      rows.map((r) => [r.getAttribute('data-listener'), r.getAttribute('data-state'), r.querySelector('.num')!.textContent]),
    );
    expect(listeners).to.deep.equal(
      api_.listeners.map((l: { listener: string; state: string; attempts: number }) => [l.listener, l.state, String(l.attempts)]),
    );
    expect(await testid('redrive-saga').count()).to.equal(0); // COMPENSATED: nothing to redrive
    await shot('timeline', true);

    // A cancel is a release: blue, "released", and no failure anywhere.
    await open(`#/sagas/${cancelId}`);
    await testid('release-note').waitFor();
    expect(await testid('saga-head').getByTestId('saga-status').textContent()).to.equal('released');
    const families = await testid('timeline-event').evaluateAll((items) => items.map((li) => li.getAttribute('data-family')));
    expect(families).to.not.include('failure');
    expect(await testid('saga-error').count()).to.equal(0); // its reason is no error
    expect(families[0]).to.equal('release');
    expect(families.at(-1)).to.equal('release');
    await shot('timeline-release', true);
  });

  it('When a compensation is dead-lettered, then the dead letters view lists it, a confirmed redrive of the selection reports {redriven, dropped} and it leaves the list; the saga ends COMPENSATED', async () => {
    const { api } = sale;
    await api.setFailpoint('listener.seat-release.before', { action: 'throw', count: 2 });
    const sagaId = await failedOrderSaga();
    await waitFor(
      'dead-lettered',
      async () => (await api.get('/api/admin/dead-letters', ADMIN)).body.some((d: { sagaId: string }) => d.sagaId === sagaId),
      20_000,
      100,
    );

    // Its timeline shows the dead-lettering, and the saga's own redrive button (not used here).
    await open(`#/sagas/${sagaId}`);
    await page.locator('[data-testid="timeline-event"][data-kind="listener.dead-lettered"]').waitFor();
    expect(await page.locator('[data-testid="listener-row"][data-listener="seat-release"]').getAttribute('data-state')).to.equal('dead-lettered');
    await testid('redrive-saga').waitFor();

    await open('#/dead-letters');
    const row = page.locator(`[data-testid="dead-letter-row"][data-saga-id="${sagaId}"]`);
    await row.waitFor();
    expect(await row.textContent()).to.include('seat-release');
    expect(await row.textContent()).to.include('retries-exhausted');
    expect(await testid('dlq-redrive-selected').isDisabled()).to.equal(true);
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="counter-dead-letters"] [data-testid="counter-value"]')?.textContent) >= 1);
    await shot('dead-letters');

    // Select all, then unselect all, then just this one.
    await testid('dlq-select-all').check();
    expect(await testid('dlq-select').evaluateAll((boxes) => boxes.every((b) => (b as HTMLInputElement).checked))).to.equal(true);
    await testid('dlq-select-all').uncheck();
    await row.getByTestId('dlq-select').check();
    await testid('dlq-redrive-selected').click();
    await testid('dlq-confirm').waitFor();
    expect(await testid('dlq-confirm-summary').textContent()).to.match(/^\s*1 dead-lettered message of seat-release \(1\) will go back to its work queue/);
    await shot('dead-letters-confirm');
    await testid('confirm-ok').click();
    await testid('redrive-result').waitFor();
    expect(await testid('redrive-result').getAttribute('data-redriven')).to.equal('1');
    expect(await testid('redrive-result').getAttribute('data-dropped')).to.equal('0');
    await row.waitFor({ state: 'detached', timeout: 15_000 });
    await shot('dead-letters-after');

    await waitFor('saga compensated', async () => (await db()('sagas').where({ id: sagaId }).first('status')).status === 'COMPENSATED', 15_000);
    expect(await db()('seat_holds').whereIn('order_id', db()('sagas').where({ id: sagaId }).select('order_id'))).to.deep.equal([]);
  });

  it('When a show’s seat map is opened, then every seat is drawn in its row with the status the API and seat_holds give it, with a legend and counts', async () => {
    const { api, buyer } = sale;
    const show = await api.createShow(4, 12);
    const held = await api.order(buyer, show.id, [show.seatIds[0], show.seatIds[13], show.seatIds[26]]);
    const sold = await api.order(buyer, show.id, [show.seatIds[5], show.seatIds[6]]);
    expect((await api.pay(buyer, sold.id)).status).to.equal(200);

    await open('#/seats');
    await testid('show-id').fill(show.id);
    await testid('show-seats').click();
    await page.waitForURL(new RegExp(`#/seats/${show.id}$`));
    await testid('seat').first().waitFor();

    const expected = (await api.get(`/api/shows/${show.id}/seats`)).body as Array<{ id: string; label: string; status: string }>;
    const drawn = await testid('seat').evaluateAll((seats) =>
      seats.map((s) => ({
        id: s.getAttribute('data-seat-id'),
        label: s.getAttribute('data-label'),
        status: s.getAttribute('data-status'),
        className: s.className,
      })),
    );
    expect(drawn).to.have.length(expected.length);
    const byId = new Map(drawn.map((s) => [s.id, s]));
    for (const seat of expected) {
      expect(byId.get(seat.id), seat.label).to.deep.include({ label: seat.label, status: seat.status });
      expect(byId.get(seat.id)!.className.split(/\s+/)).to.include(`seat-${seat.status}`);
    }
    const holds: Array<{ seat_id: string; status: string }> = await db()('seat_holds').where({ show_id: show.id }).select('seat_id', 'status');
    const inDb = (status: string) =>
      holds
        .filter((h) => h.status === status)
        .map((h) => String(h.seat_id))
        .sort();
    const onPage = (status: string) =>
      drawn
        .filter((s) => s.status === status)
        .map((s) => s.id!)
        .sort();
    expect(onPage('held'))
      .to.deep.equal(inDb('held'))
      .and.to.deep.equal([...held.seatIds].sort());
    expect(onPage('sold')).to.deep.equal(inDb('sold')).and.to.have.length(2);
    for (const [status, n] of [
      ['available', 48 - 5],
      ['held', 3],
      ['sold', 2],
    ] as const) {
      expect(await testid(`seat-count-${status}`).getAttribute('data-count')).to.equal(String(n));
    }
    // Drawn by row: A…D, twelve seats each, in seat order.
    const rows = await page
      .locator('.seat-row')
      .evaluateAll((els) => els.map((el) => [...el.querySelectorAll('[data-testid="seat"]')].map((s) => s.getAttribute('data-label'))));
    expect(rows).to.deep.equal(['A', 'B', 'C', 'D'].map((r) => Array.from({ length: 12 }, (_, i) => `${r}${i + 1}`)));
    await shot('seats');
  });

  it('When orders arrive, then the live counters change by themselves, an unreachable or 503 service reads as such, and no page broke its CSP', async () => {
    await open('#/sagas');
    await testid('live-status').and(page.locator('[data-state="live"]')).waitFor();
    // The page has caught up with the service (the seat map test just placed orders), and holds still.
    const before: number = (await sale.api.get('/api/admin/overview', ADMIN)).body.ordersAccepted.lastMinute;
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-testid="counter-orders-minute"] [data-testid="counter-value"]')?.textContent) === n,
      before,
      { timeout: 10_000 },
    );
    const updated = await testid('updated-at').textContent();
    await sale.api.order(sale.buyer, sale.show.id, sale.freshSeats(2));
    await sale.api.order(sale.buyer, sale.show.id, sale.freshSeats(1));
    await page.waitForFunction(
      (n) => Number(document.querySelector('[data-testid="counter-orders-minute"] [data-testid="counter-value"]')?.textContent) === n,
      before + 2,
      { timeout: 10_000 },
    );
    expect(await testid('updated-at').textContent()).to.not.equal(updated);

    // The service gone, then answering 503: the counters say so (and keep their last values).
    await page.route('**/api/admin/overview', (route) => route.abort('connectionrefused'));
    await testid('live-status').and(page.locator('[data-state="unreachable"]')).waitFor({ timeout: 10_000 });
    expect(await testid('live-status').textContent()).to.match(/Service unreachable/);
    expect(await counter('counter-orders-minute')).to.equal(before + 2);
    await page.unroute('**/api/admin/overview');
    await page.route('**/api/admin/overview', (route) =>
      route.fulfill({
        status: 503,
        contentType: 'application/json',
        headers: { 'Retry-After': '1' },
        body: JSON.stringify({ error: { code: 'SERVICE_UNAVAILABLE', message: 'mysql is down' } }),
      }),
    );
    await testid('live-status').and(page.locator('[data-state="unavailable"]')).waitFor({ timeout: 10_000 });
    expect(await testid('live-status').textContent()).to.match(/Service unavailable \(503\)/);
    await page.unroute('**/api/admin/overview');
    await testid('live-status').and(page.locator('[data-state="live"]')).waitFor({ timeout: 10_000 });

    expect(problems, problems.join('\n')).to.deep.equal([]);
    // The only console errors are the HTTP answers the tests asked for (401, 400, the routed outage).
    for (const text of consoleErrors) expect(text).to.match(/Failed to load resource|net::ERR_CONNECTION_REFUSED/);
  });
});
