import { expect } from 'chai';
import createClient, { type Middleware } from 'openapi-fetch';
import type { paths } from '../support/api-types';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { ADMIN } from '../support/http';
import { checkResponse } from '../support/openapi-contract';

/**
 * A buyer's walk through the typed client only: openapi-fetch over the types openapi-typescript
 * generated from /openapi.json (`npm run openapi:types`). Its answers are checked against the
 * document too, like every answer of the Api client.
 */
describe('The generated client (openapi-typescript + openapi-fetch)', () => {
  const iso = isolate('openapi-client');
  let app: TestApp;
  let client: ReturnType<typeof createClient<paths>>;

  const contract: Middleware = {
    async onResponse({ request, response }) {
      const text = await response.clone().text();
      let body: unknown;
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = text;
      }
      checkResponse(request.method, request.url, response.status, response.headers, text, body);
    },
  };

  before(async () => {
    app = await startTestApp(iso);
    client = createClient<paths>({ baseUrl: app.url! });
    client.use(contract);
  });
  after(() => cleanup(iso, [app]));

  it('creates a user, credits them, creates a show, orders, pays and reads the order back', async () => {
    const created = await client.POST('/api/users', { body: { name: 'typed ann', payPassword: 'typed-secret' } });
    expect(created.response.status).to.equal(201);
    const user = created.data!;
    expect(user).to.include({ name: 'typed ann', balanceCents: 0 });
    const auth = { Authorization: `Bearer ${user.token}` };

    const credit = await client.POST('/api/admin/users/{id}/credits', { params: { path: { id: user.id } }, body: { amountCents: 10_000 }, headers: ADMIN });
    expect(credit.response.status).to.equal(200);
    expect(credit.data).to.deep.equal({ id: user.id, balanceCents: 10_000 });

    const show = await client.POST('/api/admin/shows', {
      body: { title: 'Typed show', startsAt: '2030-06-01T20:00:00Z', priceCents: 2_500, rows: 2, seatsPerRow: 5 },
      headers: ADMIN,
    });
    expect(show.response.status).to.equal(201);
    expect(show.data).to.include({ title: 'Typed show', priceCents: 2_500, seatsTotal: 10 });
    const showId = show.data!.id;

    const seats = await client.GET('/api/shows/{id}/seats', { params: { path: { id: showId } } });
    expect(seats.response.status).to.equal(200);
    expect(seats.data).to.have.length(10);
    const seatIds = seats.data!.slice(0, 2).map((s) => s.id);

    const ordered = await client.POST('/api/orders', {
      body: { showId, seatIds },
      headers: auth,
      params: { header: { 'Idempotency-Key': `typed-${Date.now()}` } },
    });
    expect(ordered.response.status).to.equal(201);
    const order = ordered.data!;
    expect(order).to.include({ status: 'PENDING_PAYMENT', showId, totalCents: 5_000 });
    expect(order.seatIds).to.have.members(seatIds);

    const wrong = await client.POST('/api/orders/{id}/pay', { params: { path: { id: order.id } }, body: { payPassword: 'not-it' }, headers: auth });
    expect(wrong.response.status).to.equal(403);
    expect(wrong.error).to.have.nested.property('error.code', 'WRONG_PAY_PASSWORD');

    const paid = await client.POST('/api/orders/{id}/pay', { params: { path: { id: order.id } }, body: { payPassword: 'typed-secret' }, headers: auth });
    expect(paid.response.status).to.equal(200);
    expect(paid.data).to.include({ id: order.id, status: 'PAID', balanceCents: 5_000 });

    const readBack = await client.GET('/api/orders/{id}', { params: { path: { id: order.id } }, headers: auth });
    expect(readBack.response.status).to.equal(200);
    expect(readBack.data).to.include({ id: order.id, status: 'PAID', totalCents: 5_000 });

    const mine = await client.GET('/api/orders', { headers: auth });
    expect(mine.data!.map((o) => o.id)).to.deep.equal([order.id]);

    const me = await client.GET('/api/users/me', { headers: auth });
    expect(me.data).to.deep.equal({ id: user.id, name: 'typed ann', balanceCents: 5_000 });

    const showNow = await client.GET('/api/shows/{id}', { params: { path: { id: showId } } });
    expect(showNow.data).to.include({ seatsTotal: 10, seatsAvailable: 8 });
  });
});
