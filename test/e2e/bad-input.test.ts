import { expect } from 'chai';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { ADMIN, Api } from '../support/http';
import { tableCounts } from '../support/invariants';

describe('Bad input', () => {
  const iso = isolate('badinput');
  let app: TestApp;
  let api: Api;
  let auth: Record<string, string>;
  let userId: string;
  let show: Awaited<ReturnType<Api['createShow']>>;
  let otherShow: Awaited<ReturnType<Api['createShow']>>;

  before(async () => {
    app = await startTestApp(iso);
    api = new Api(app.url!);
    const user = await api.createUser('ann');
    auth = user.auth;
    userId = user.id;
    show = await api.createShow(1, 5);
    otherShow = await api.createShow(1, 5);
  });
  after(() => cleanup(iso, [app]));

  const json = { 'Content-Type': 'application/json' };
  type Case = { name: string; method: string; path: () => string; body?: () => unknown; headers?: () => Record<string, string>; status: number; code: string };
  const cases: Case[] = [
    // users
    {
      name: 'a user without a name',
      method: 'POST',
      path: () => '/api/users',
      body: () => ({ payPassword: 'secret123' }),
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a user with a numeric name',
      method: 'POST',
      path: () => '/api/users',
      body: () => ({ name: 5, payPassword: 'secret123' }),
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a user with a short pay password',
      method: 'POST',
      path: () => '/api/users',
      body: () => ({ name: 'a', payPassword: '1' }),
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a user with an unknown field',
      method: 'POST',
      path: () => '/api/users',
      body: () => ({ name: 'a', payPassword: 'secret123', isAdmin: true }),
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    { name: 'malformed JSON', method: 'POST', path: () => '/api/users', body: () => '{"name": "a",', headers: () => json, status: 400, code: 'MALFORMED_JSON' },
    {
      name: 'a JSON array body',
      method: 'POST',
      path: () => '/api/users',
      body: () => [{ name: 'a', payPassword: 'secret123' }],
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a body that is not JSON',
      method: 'POST',
      path: () => '/api/users',
      body: () => 'name=a',
      headers: () => ({ 'Content-Type': 'text/plain' }),
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a body over 64 KiB',
      method: 'POST',
      path: () => '/api/users',
      body: () => ({ name: 'a'.repeat(70_000), payPassword: 'secret123' }),
      status: 413,
      code: 'PAYLOAD_TOO_LARGE',
    },
    // credits
    {
      name: 'a negative credit',
      method: 'POST',
      path: () => `/api/admin/users/${userId}/credits`,
      body: () => ({ amountCents: -100 }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a zero credit',
      method: 'POST',
      path: () => `/api/admin/users/${userId}/credits`,
      body: () => ({ amountCents: 0 }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a fractional credit',
      method: 'POST',
      path: () => `/api/admin/users/${userId}/credits`,
      body: () => ({ amountCents: 10.5 }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a credit as a string',
      method: 'POST',
      path: () => `/api/admin/users/${userId}/credits`,
      body: () => ({ amountCents: '100' }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a credit without the admin token',
      method: 'POST',
      path: () => `/api/admin/users/${userId}/credits`,
      body: () => ({ amountCents: 100 }),
      status: 401,
      code: 'UNAUTHORIZED',
    },
    {
      name: 'a credit with a wrong admin token',
      method: 'POST',
      path: () => `/api/admin/users/${userId}/credits`,
      body: () => ({ amountCents: 100 }),
      headers: () => ({ 'X-Admin-Token': 'x'.repeat(27) }),
      status: 401,
      code: 'UNAUTHORIZED',
    },
    {
      name: 'a credit to an unknown user',
      method: 'POST',
      path: () => '/api/admin/users/999999/credits',
      body: () => ({ amountCents: 100 }),
      headers: () => ADMIN,
      status: 404,
      code: 'NOT_FOUND',
    },
    // shows
    {
      name: 'a show with zero rows',
      method: 'POST',
      path: () => '/api/admin/shows',
      body: () => ({ title: 't', startsAt: '2030-01-01T20:00:00Z', priceCents: 100, rows: 0, seatsPerRow: 5 }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a show with a negative price',
      method: 'POST',
      path: () => '/api/admin/shows',
      body: () => ({ title: 't', startsAt: '2030-01-01T20:00:00Z', priceCents: -1, rows: 1, seatsPerRow: 5 }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a show with a bad date',
      method: 'POST',
      path: () => '/api/admin/shows',
      body: () => ({ title: 't', startsAt: 'tomorrow', priceCents: 100, rows: 1, seatsPerRow: 5 }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a show of over 100000 seats',
      method: 'POST',
      path: () => '/api/admin/shows',
      body: () => ({ title: 't', startsAt: '2030-01-01T20:00:00Z', priceCents: 100, rows: 1000, seatsPerRow: 101 }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'a show without the admin token',
      method: 'POST',
      path: () => '/api/admin/shows',
      body: () => ({ title: 't', startsAt: '2030-01-01T20:00:00Z', priceCents: 100, rows: 1, seatsPerRow: 5 }),
      status: 401,
      code: 'UNAUTHORIZED',
    },
    // orders
    {
      name: 'an order without a token',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: show.id, seatIds: [show.seatIds[0]] }),
      status: 401,
      code: 'UNAUTHORIZED',
    },
    {
      name: 'an order with a forged token',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: show.id, seatIds: [show.seatIds[0]] }),
      headers: () => ({ Authorization: `Bearer v1.${userId}.${'A'.repeat(43)}` }),
      status: 401,
      code: 'UNAUTHORIZED',
    },
    {
      name: 'an order with an empty seat list',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: show.id, seatIds: [] }),
      headers: () => auth,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'an order naming a seat twice',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: show.id, seatIds: [show.seatIds[0], show.seatIds[0]] }),
      headers: () => auth,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'an order with a seat of another show',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: show.id, seatIds: [show.seatIds[0], otherShow.seatIds[0]] }),
      headers: () => auth,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'an order with a seat that does not exist',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: show.id, seatIds: ['987654321'] }),
      headers: () => auth,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'an order with numeric ids',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: Number(show.id), seatIds: [Number(show.seatIds[0])] }),
      headers: () => auth,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'an order with a negative id',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: '-1', seatIds: [show.seatIds[0]] }),
      headers: () => auth,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'an order with an unknown field',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: show.id, seatIds: [show.seatIds[0]], priceCents: 1 }),
      headers: () => auth,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    {
      name: 'an order for an unknown show',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: '987654321', seatIds: [show.seatIds[0]] }),
      headers: () => auth,
      status: 404,
      code: 'NOT_FOUND',
    },
    {
      name: 'an order with 51 seats',
      method: 'POST',
      path: () => '/api/orders',
      body: () => ({ showId: show.id, seatIds: Array.from({ length: 51 }, (_, i) => String(i + 1)) }),
      headers: () => auth,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    // reads
    { name: 'an unknown show', method: 'GET', path: () => '/api/shows/987654321', status: 404, code: 'NOT_FOUND' },
    { name: 'a show id that is not an id', method: 'GET', path: () => '/api/shows/abc', status: 404, code: 'NOT_FOUND' },
    { name: 'an order id that is not an id', method: 'GET', path: () => '/api/orders/1e3', headers: () => auth, status: 404, code: 'NOT_FOUND' },
    { name: 'me without a token', method: 'GET', path: () => '/api/users/me', status: 401, code: 'UNAUTHORIZED' },
    { name: 'an unknown saga', method: 'GET', path: () => '/api/admin/sagas/123', headers: () => ADMIN, status: 404, code: 'NOT_FOUND' },
    {
      name: 'a failpoint with an unknown action',
      method: 'PUT',
      path: () => '/api/admin/failpoints/order.order_add.after',
      body: () => ({ action: 'explode' }),
      headers: () => ADMIN,
      status: 400,
      code: 'VALIDATION_FAILED',
    },
    { name: 'an unknown route', method: 'GET', path: () => '/api/nothing-here', status: 404, code: 'NOT_FOUND' },
  ];

  for (const c of cases) {
    it(`When a request sends ${c.name}, then it answers ${c.status} ${c.code} with a message and writes nothing`, async () => {
      const before = await tableCounts(app);
      const redisKeysBefore = await namespaceKeys();
      const reply = await api.request(c.method, c.path(), c.body?.(), c.headers?.() ?? {});
      expect(reply.status, JSON.stringify(reply.body)).to.equal(c.status);
      expect(reply.body.error.code).to.equal(c.code);
      expect(reply.body.error.message).to.be.a('string').and.not.equal('');
      expect(await tableCounts(app)).to.deep.equal(before);
      expect(await namespaceKeys()).to.deep.equal(redisKeysBefore);
    });
  }

  async function namespaceKeys(): Promise<string[]> {
    const keys = await app.redis.keys(`${iso.namespace}:*`);
    return keys.sort();
  }

  it('When a validation error names several fields, then each is listed in details.issues', async () => {
    const reply = await api.post('/api/users', { name: '', payPassword: 1, extra: true });
    expect(reply.status).to.equal(400);
    const fields = reply.body.error.details.issues.map((i: { field: string }) => i.field);
    expect(fields).to.include.members(['name', 'payPassword', '(body)']);
  });
});
