import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { expect } from 'chai';
import { answerClientError } from '../../src/api/client-error';
import { toNumber } from '../../src/db/database';
import { cleanup, isolate, startSale, type Sale, type TestApp } from '../support/fixture';
import { ADMIN } from '../support/http';
import { tableCounts } from '../support/invariants';
import { hasErrorShape, rawRequest, type RawReply, type RawRequest } from '../support/raw-http';

/**
 * The contract's hardening rules for input: a bad Content-Encoding, a malformed percent-escape, JSON
 * nested deeper than 32 levels and a wrong method are each a 4xx with the error shape that writes
 * nothing (no idempotency record either); responses carry the security headers.
 */
describe('Hardening: input that must answer 4xx, never 500', () => {
  const iso = isolate('harden');
  let app: TestApp, api: Sale['api'], buyer: Sale['buyer'], show: Sale['show'], freshSeats: Sale['freshSeats'];
  let soldOutShowId: string;
  let seatOfAnotherShow: string;
  let orderId: string;

  before(async () => {
    // The sold-out cache outlives the file, so the fast path reads every async order's body.
    ({ app, api, buyer, show, freshSeats } = await startSale(iso, { rows: 2, seatsPerRow: 10, env: { SOLD_OUT_CACHE_MS: '60000' } }));
    await api.credit(buyer.id, 100_000);
    orderId = (await api.order(buyer, show.id, freshSeats(1))).id;
    const tiny = await api.createShow(1, 1);
    soldOutShowId = tiny.id;
    seatOfAnotherShow = tiny.seatIds[0];
    const first = await api.post('/api/orders/async', { showId: tiny.id, quantity: 1 }, buyer.auth);
    expect(first.status, JSON.stringify(first.body)).to.equal(202);
    const other = await api.createUser('bob');
    const refused = await api.post('/api/orders/async', { showId: tiny.id, quantity: 1 }, other.auth);
    expect(refused.body.error?.code, JSON.stringify(refused.body)).to.equal('SOLD_OUT');
  });
  after(() => cleanup(iso, [app]));

  const send = (request: RawRequest) => rawRequest(app.url!, request);
  const json = { 'Content-Type': 'application/json' };
  const idempotencyRows = async () => toNumber((await app.db('idempotency_keys').count({ n: '*' }))[0].n);

  /** Sends the request and checks the rule: the given 4xx, the error shape, nothing written. */
  async function expectRefused(request: RawRequest, status: number | number[], code?: string): Promise<RawReply> {
    const tablesBefore = await tableCounts(app);
    const keysBefore = await idempotencyRows();
    const reply = await send(request);
    const what = `${request.method} ${request.path} -> ${reply.status} ${reply.text.slice(0, 300)}`;
    expect(reply.status, what).to.be.oneOf(Array.isArray(status) ? status : [status]);
    expect(hasErrorShape(reply.body), what).to.equal(true);
    if (code) expect(reply.body.error.code, what).to.equal(code);
    expect(await tableCounts(app), `${what}: tables unchanged`).to.deep.equal(tablesBefore);
    expect(await idempotencyRows(), `${what}: no idempotency record`).to.equal(keysBefore);
    return reply;
  }

  describe('Content-Encoding', () => {
    const notGzip = '{"name":"ann","payPassword":"secret123"}';

    it('When a JSON body says Content-Encoding: gzip but is not gzip, then 400 BAD_REQUEST on every JSON route', async () => {
      const gzipHeaders = { ...json, 'Content-Encoding': 'gzip' };
      await expectRefused({ method: 'POST', path: '/api/users', headers: gzipHeaders, body: notGzip }, 400, 'BAD_REQUEST');
      await expectRefused(
        { method: 'POST', path: '/api/orders', headers: { ...gzipHeaders, ...buyer.auth, 'Idempotency-Key': 'gz-1' }, body: notGzip },
        400,
        'BAD_REQUEST',
      );
      await expectRefused(
        { method: 'POST', path: `/api/orders/${orderId}/pay`, headers: { ...gzipHeaders, ...buyer.auth, 'Idempotency-Key': 'gz-2' }, body: notGzip },
        400,
        'BAD_REQUEST',
      );
      await expectRefused({ method: 'POST', path: '/api/admin/shows', headers: { ...gzipHeaders, ...ADMIN }, body: notGzip }, 400, 'BAD_REQUEST');
      await expectRefused({ method: 'POST', path: '/api/orders/async', headers: { ...gzipHeaders, ...buyer.auth }, body: notGzip }, 400, 'BAD_REQUEST');
    });

    it('When the payment callback says Content-Encoding: gzip but is not gzip, then 400 BAD_REQUEST', async () => {
      await expectRefused(
        { method: 'POST', path: '/api/payments/notify', headers: { ...json, 'Content-Encoding': 'gzip' }, body: notGzip },
        400,
        'BAD_REQUEST',
      );
      await expectRefused(
        { method: 'POST', path: '/api/payments/notify', headers: { ...json, 'Content-Encoding': 'deflate' }, body: 'xx' },
        400,
        'BAD_REQUEST',
      );
    });

    it('When the Content-Encoding is unknown, then 415 UNSUPPORTED_MEDIA_TYPE, also on the payment callback', async () => {
      for (const encoding of ['compress', 'x-unknown', 'gzip, gzip']) {
        await expectRefused(
          { method: 'POST', path: '/api/users', headers: { ...json, 'Content-Encoding': encoding }, body: notGzip },
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        );
        await expectRefused(
          { method: 'POST', path: '/api/payments/notify', headers: { ...json, 'Content-Encoding': encoding }, body: notGzip },
          415,
          'UNSUPPORTED_MEDIA_TYPE',
        );
      }
    });

    it('When a body really is gzip, then it is read as JSON', async () => {
      const reply = await send({ method: 'POST', path: '/api/users', headers: { ...json, 'Content-Encoding': 'gzip' }, body: gzipSync(notGzip) });
      expect(reply.status, reply.text).to.equal(201);
    });

    it('When a gzip async order reaches the sold-out fast path, then it is not read there: Express inflates and answers it', async () => {
      const forSoldOut = gzipSync(JSON.stringify({ showId: soldOutShowId, quantity: 1 }));
      const reply = await send({
        method: 'POST',
        path: '/api/orders/async',
        headers: { ...json, 'Content-Encoding': 'gzip', ...buyer.auth },
        body: forSoldOut,
      });
      expect(reply.status, reply.text).to.equal(409);
      expect(reply.body.error.code).to.equal('SOLD_OUT');
      await expectRefused(
        { method: 'POST', path: '/api/orders/async', headers: { ...json, 'Content-Encoding': 'gzip', ...buyer.auth }, body: '{"showId":"1","quantity":1}' },
        400,
        'BAD_REQUEST',
      );
    });
  });

  describe('Percent-escapes in path ids', () => {
    const bad = ['%E0%A4%A', '%zz', '%', '%C0%AF', '%FF'];
    const paths = (id: string): Array<[string, string, Record<string, string>]> => [
      ['GET', `/api/orders/${id}`, buyer.auth],
      ['GET', `/api/shows/${id}`, {}],
      ['GET', `/api/shows/${id}/seats`, {}],
      ['POST', `/api/orders/${id}/pay`, { ...buyer.auth, 'Idempotency-Key': `pct-${Math.random()}` }],
      ['POST', `/api/orders/${id}/cancel`, buyer.auth],
      ['POST', `/api/orders/${id}/refund`, buyer.auth],
      ['GET', `/api/admin/sagas/${id}`, ADMIN],
      ['POST', `/api/admin/users/${id}/credits`, ADMIN],
      ['PUT', `/api/admin/failpoints/${id}`, ADMIN],
    ];

    it('When a path id holds a malformed percent-escape, then 400 or 404 with the error shape on every route with an id', async () => {
      for (const id of bad) {
        for (const [method, path, headers] of paths(id)) {
          const body =
            method === 'GET'
              ? undefined
              : path.endsWith('/pay')
                ? '{"payPassword":"pay-secret"}'
                : path.endsWith('/credits')
                  ? '{"amountCents":100}'
                  : path.includes('failpoints')
                    ? '{"action":"off"}'
                    : undefined;
          await expectRefused({ method, path, headers: { ...(body ? json : {}), ...headers }, body }, [400, 404]);
        }
      }
    });

    it('When the path itself (not an id) holds a malformed escape, then 404', async () => {
      await expectRefused({ method: 'GET', path: '/api/%zz', headers: {} }, 404, 'NOT_FOUND');
      await expectRefused({ method: 'GET', path: '/api/users/%E0%A4%A', headers: buyer.auth }, [400, 404]);
    });
  });

  describe('JSON nesting', () => {
    const nested = (levels: number, inner = '0') => '['.repeat(levels) + inner + ']'.repeat(levels);
    /** `{"x": [[...]]}`: the object is level 1. */
    const nestedInObject = (levels: number) => `{"x":${nested(levels - 1)}}`;

    it('When a body is nested 10,000 levels deep with an Idempotency-Key, then 400 and nothing is written (no idempotency record)', async () => {
      const deep = nested(10_000);
      expect(deep.length).to.be.below(64 * 1024);
      const routes: Array<[string, Record<string, string>]> = [
        ['/api/users', {}],
        ['/api/orders', { ...buyer.auth, 'Idempotency-Key': 'deep-order' }],
        [`/api/orders/${orderId}/pay`, { ...buyer.auth, 'Idempotency-Key': 'deep-pay' }],
        ['/api/orders/async', buyer.auth],
        [`/api/orders/${orderId}/cancel`, buyer.auth],
        ['/api/admin/shows', ADMIN],
        [`/api/admin/users/${buyer.id}/credits`, ADMIN],
      ];
      for (const [path, headers] of routes) {
        await expectRefused({ method: 'POST', path, headers: { ...json, ...headers }, body: deep }, 400, 'MALFORMED_JSON');
        await expectRefused({ method: 'POST', path, headers: { ...json, ...headers }, body: `{"payPassword":${deep}}` }, 400, 'MALFORMED_JSON');
      }
    });

    it('When an async order nested too deep reaches the sold-out fast path, then 400 MALFORMED_JSON', async () => {
      const body = `{"showId":"${soldOutShowId}","quantity":1,"x":${nested(40)}}`;
      await expectRefused({ method: 'POST', path: '/api/orders/async', headers: { ...json, ...buyer.auth }, body }, 400, 'MALFORMED_JSON');
      await expectRefused({ method: 'POST', path: '/api/orders/async', headers: { ...json, ...buyer.auth }, body: nested(5000) }, 400, 'MALFORMED_JSON');
    });

    it('When a body is nested 32 levels, then it is judged by the schema; 33 levels is MALFORMED_JSON', async () => {
      const at32 = await expectRefused({ method: 'POST', path: '/api/users', headers: json, body: nestedInObject(32) }, 400);
      expect(at32.body.error.code).to.equal('VALIDATION_FAILED');
      await expectRefused({ method: 'POST', path: '/api/users', headers: json, body: nestedInObject(33) }, 400, 'MALFORMED_JSON');
      await expectRefused(
        { method: 'POST', path: '/api/users', headers: json, body: `{"x":${nested(20, '{"y":' + nested(12) + '}')}}` },
        400,
        'MALFORMED_JSON',
      );
    });
  });

  describe('Validation before the idempotency claim', () => {
    it('When an order with an Idempotency-Key is invalid, then no key is claimed and the corrected retry with the same key runs', async () => {
      const headers = { ...json, ...buyer.auth, 'Idempotency-Key': 'fix-me-order' };
      await expectRefused({ method: 'POST', path: '/api/orders', headers, body: JSON.stringify({ showId: show.id, seatIds: [] }) }, 400, 'VALIDATION_FAILED');
      await expectRefused({ method: 'POST', path: '/api/orders', headers, body: '{"showId":' }, 400, 'MALFORMED_JSON');
      const fixed = await send({ method: 'POST', path: '/api/orders', headers, body: JSON.stringify({ showId: show.id, seatIds: freshSeats(1) }) });
      expect(fixed.status, fixed.text).to.equal(201);
    });

    it('When an order with an Idempotency-Key names a seat of another show (found after the claim), then its 400 is not stored and the corrected retry runs', async () => {
      const headers = { ...json, ...buyer.auth, 'Idempotency-Key': 'fix-me-seats' };
      await expectRefused(
        { method: 'POST', path: '/api/orders', headers, body: JSON.stringify({ showId: show.id, seatIds: [seatOfAnotherShow] }) },
        400,
        'VALIDATION_FAILED',
      );
      const fixed = await send({ method: 'POST', path: '/api/orders', headers, body: JSON.stringify({ showId: show.id, seatIds: freshSeats(1) }) });
      expect(fixed.status, fixed.text).to.equal(201);
    });

    it('When a pay with an Idempotency-Key has a bad body or a bad path id, then no key is claimed', async () => {
      const headers = { ...json, ...buyer.auth, 'Idempotency-Key': 'fix-me-pay' };
      await expectRefused({ method: 'POST', path: `/api/orders/${orderId}/pay`, headers, body: '{"payPassword":5}' }, 400, 'VALIDATION_FAILED');
      await expectRefused({ method: 'POST', path: '/api/orders/not-an-id/pay', headers, body: '{"payPassword":"pay-secret"}' }, 404, 'NOT_FOUND');
      await expectRefused({ method: 'POST', path: `/api/orders/${'9'.repeat(60)}/pay`, headers, body: '{"payPassword":"pay-secret"}' }, 404, 'NOT_FOUND');
      const paid = await send({ method: 'POST', path: `/api/orders/${orderId}/pay`, headers, body: '{"payPassword":"pay-secret"}' });
      expect(paid.status, paid.text).to.equal(200);
    });
  });

  describe('Values at the edges of their format (found by test/e2e/api-properties.test.ts)', () => {
    it('When a show starts at an instant outside 1970..9999 in UTC (9999-12-31T23:59:59-23:59 is year 10000), then 400 VALIDATION_FAILED, not a database error', async () => {
      for (const startsAt of ['9999-12-31T23:59:59-23:59', '0000-01-01T00:00:00Z', '0532-02-02T23:59:55+20:06', '1969-12-31T23:59:59Z']) {
        const body = JSON.stringify({ title: 't', startsAt, priceCents: 100, rows: 1, seatsPerRow: 1 });
        const reply = await expectRefused({ method: 'POST', path: '/api/admin/shows', headers: { ...json, ...ADMIN }, body }, 400, 'VALIDATION_FAILED');
        expect(reply.body.error.details.issues[0].field).to.equal('startsAt');
      }
      const latest = await send({
        method: 'POST',
        path: '/api/admin/shows',
        headers: { ...json, ...ADMIN },
        body: JSON.stringify({ title: 't', startsAt: '9999-12-31T23:59:59+01:00', priceCents: 100, rows: 1, seatsPerRow: 1 }),
      });
      expect(latest.status, latest.text).to.equal(201);
    });
  });

  describe('Clear errors', () => {
    it('When an async order fits neither of its forms, then the message says what each form lacked', async () => {
      const body = JSON.stringify({ showId: show.id, seatIds: [show.seatIds[5]], quantity: 1 });
      const reply = await expectRefused({ method: 'POST', path: '/api/orders/async', headers: { ...json, ...buyer.auth }, body }, 400, 'VALIDATION_FAILED');
      expect(reply.body.error.message).to.equal(
        '(body): matches none of the accepted forms: (1) (body): unknown field(s): quantity; (2) (body): unknown field(s): seatIds',
      );
    });
  });

  describe('Methods', () => {
    const cases: Array<[string, string, string[], Record<string, string>?]> = [
      ['DELETE', '/api/users', ['POST']],
      ['GET', '/api/users', ['POST']],
      ['POST', '/api/users/me', ['GET', 'HEAD']],
      ['GET', '/api/orders/1/pay', ['POST']],
      ['PUT', '/api/shows/1', ['GET', 'HEAD']],
      ['DELETE', '/api/orders', ['GET', 'HEAD', 'POST']],
      ['PATCH', '/api/orders/123', ['GET', 'HEAD']],
      ['GET', '/api/payments/notify', ['POST']],
      ['DELETE', '/api/admin/shows', ['POST'], ADMIN],
      ['GET', '/api/admin/users/1/credits', ['POST'], ADMIN],
      ['POST', '/livez', ['GET', 'HEAD']],
      ['DELETE', '/metrics', ['GET', 'HEAD']],
    ];
    for (const [method, path, allow, headers] of cases) {
      it(`When ${method} ${path} is sent, then 405 METHOD_NOT_ALLOWED with Allow: ${allow.join(', ')}`, async () => {
        const reply = await expectRefused({ method, path, headers }, 405, 'METHOD_NOT_ALLOWED');
        expect(reply.headers.allow).to.equal(allow.join(', '));
      });
    }

    it('When a path is unknown, then 404 whatever the method', async () => {
      for (const method of ['GET', 'POST', 'DELETE', 'PUT']) {
        const reply = await expectRefused({ method, path: '/api/nothing-here' }, 404, 'NOT_FOUND');
        expect(reply.headers.allow).to.equal(undefined);
      }
      await expectRefused({ method: 'DELETE', path: '/api/users/me/extra', headers: buyer.auth }, 404, 'NOT_FOUND');
    });
  });

  describe("Requests Node's HTTP parser refuses (answerClientError, for the server's clientError event)", () => {
    let server: Server;
    let port: number;
    before(async () => {
      server = createServer((_req, res) => res.end('{}')).on('clientError', answerClientError);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as AddressInfo).port;
    });
    after(() => new Promise<void>((resolve) => server.close(() => resolve())));

    /** The bytes as written, and the whole answer until the server closes. */
    function exchange(bytes: string): Promise<string> {
      return new Promise((resolve, reject) => {
        const socket = connect(port, '127.0.0.1', () => socket.end(bytes));
        const chunks: Buffer[] = [];
        socket.on('data', (chunk) => chunks.push(chunk));
        socket.on('error', reject);
        socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
      });
    }

    const cases: Array<[string, string, number, string]> = [
      ['headers over 16 KiB', `GET /api/orders?x=${'q'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'HEADERS_TOO_LARGE'],
      ['a request line that is not HTTP', 'NOT HTTP AT ALL\r\n\r\n', 400, 'BAD_REQUEST'],
      ['a header name that is not a token', 'GET /livez HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n', 400, 'BAD_REQUEST'],
      [
        'both Content-Length and Transfer-Encoding',
        'POST /api/users HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
        400,
        'BAD_REQUEST',
      ],
    ];
    for (const [name, bytes, status, code] of cases) {
      it(`When a request has ${name}, then ${status} ${code} with the error shape and the API's headers`, async () => {
        const answer = await exchange(bytes);
        const [head, body] = answer.split('\r\n\r\n');
        expect(head.split('\r\n')[0]).to.match(new RegExp(`^HTTP/1.1 ${status} `));
        expect(head)
          .to.match(/\r\nX-Content-Type-Options: nosniff\r\n/)
          .and.match(/\r\nCache-Control: no-store\r\n/)
          .and.match(/\r\nConnection: close/);
        const parsed = JSON.parse(body);
        expect(hasErrorShape(parsed), body).to.equal(true);
        expect(parsed.error.code).to.equal(code);
      });
    }
  });

  describe('Security headers', () => {
    const securityHeaderNames = [
      'x-content-type-options',
      'referrer-policy',
      'content-security-policy',
      'strict-transport-security',
      'x-frame-options',
      'cross-origin-opener-policy',
      'cross-origin-resource-policy',
    ];

    function expectSecurityHeaders(reply: RawReply, what: string) {
      expect(reply.headers['x-content-type-options'], what).to.equal('nosniff');
      expect(reply.headers['referrer-policy'], what).to.be.a('string').and.not.equal('');
      const csp = String(reply.headers['content-security-policy']);
      expect(csp, what).to.include("default-src 'self'");
      expect(csp, what).to.include("script-src 'self'");
      expect(csp, what).to.include("object-src 'none'");
      expect(csp, what).to.not.include('unsafe-inline');
      expect(csp, what).to.not.include('unsafe-eval');
      expect(reply.headers['x-powered-by'], what).to.equal(undefined);
    }

    it('When any route answers, success or error, then it carries nosniff, a Referrer-Policy and a strict CSP', async () => {
      const requests: RawRequest[] = [
        { method: 'GET', path: '/livez' },
        { method: 'GET', path: '/health' },
        { method: 'GET', path: '/api/users/me', headers: buyer.auth },
        { method: 'GET', path: '/api/nothing-here' },
        { method: 'POST', path: '/api/users', headers: json, body: '{' },
        { method: 'DELETE', path: '/api/users' },
        { method: 'POST', path: '/api/payments/notify', headers: json, body: '{}' },
      ];
      for (const request of requests) expectSecurityHeaders(await send(request), `${request.method} ${request.path}`);
    });

    it('When a user or order route answers, then Cache-Control: no-store', async () => {
      const requests: RawRequest[] = [
        { method: 'GET', path: '/api/users/me', headers: buyer.auth },
        { method: 'POST', path: '/api/users', headers: json, body: '{"name":"cc","payPassword":"secret123"}' },
        { method: 'GET', path: '/api/orders', headers: buyer.auth },
        { method: 'GET', path: `/api/orders/${orderId}`, headers: buyer.auth },
        { method: 'GET', path: '/api/orders/999', headers: buyer.auth },
        { method: 'POST', path: `/api/orders/${orderId}/cancel`, headers: buyer.auth },
        { method: 'POST', path: `/api/orders/${orderId}/refund`, headers: buyer.auth },
        { method: 'POST', path: `/api/orders/${orderId}/pay`, headers: { ...json, ...buyer.auth }, body: '{"payPassword":"nope"}' },
        { method: 'GET', path: `/api/shows/${show.id}` },
      ];
      for (const request of requests) {
        const reply = await send(request);
        expect(reply.headers['cache-control'], `${request.method} ${request.path} -> ${reply.status}`).to.equal('no-store');
      }
    });

    it('When the sold-out fast path answers, then it carries the same security headers as Express and no-store', async () => {
      const fast = await send({
        method: 'POST',
        path: '/api/orders/async',
        headers: { ...json, ...buyer.auth },
        body: JSON.stringify({ showId: soldOutShowId, quantity: 1 }),
      });
      expect(fast.status).to.equal(409);
      expect(fast.body.error.code).to.equal('SOLD_OUT');
      const viaExpress = await send({ method: 'GET', path: '/api/users/me', headers: buyer.auth });
      expectSecurityHeaders(fast, 'fast path');
      expect(fast.headers['cache-control']).to.equal('no-store');
      for (const name of securityHeaderNames) expect(fast.headers[name], name).to.equal(viaExpress.headers[name]);
    });
  });
});
