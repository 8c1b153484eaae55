import { expect } from 'chai';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api } from '../support/http';
import { createHttpApp, type ApiDeps } from '../../src/api/http-app';
import { OPERATIONS, openApiPath } from '../../src/api/openapi';
import { readFileSync } from 'node:fs';
import { API_TYPES_FILE, generateApiTypes } from '../../tools/openapi-types';

/** Stands in for every dependency: building the app's routes touches none of them. */
const inert: any = new Proxy(function () {}, {
  get: (_t, key) => (key === 'isLevelEnabled' ? () => false : key === 'adminToken' ? 'inert-token' : key === 'then' ? undefined : inert),
  apply: () => inert,
});

/** What the router keeps of each `use`, route and mounted router (router 2.x, Express 5). */
interface Layer {
  rawPath?: unknown;
  route?: { path: string; methods: Record<string, boolean | undefined> };
  handle: { stack?: Layer[] };
}

/** Every (method, path) the app's router serves, found by walking it (as the 405 answers do). */
function routesServed(stack: Layer[], prefix = ''): string[] {
  const out: string[] = [];
  for (const layer of stack) {
    if (layer.route) {
      for (const [method, on] of Object.entries(layer.route.methods)) {
        if (on && method !== '_all') out.push(`${method.toUpperCase()} ${openApiPath(`${prefix}${layer.route.path}`)}`);
      }
    } else if (Array.isArray(layer.handle.stack)) {
      const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
      out.push(...routesServed(layer.handle.stack, `${prefix}${mount}`));
    }
  }
  return out;
}

describe('OpenAPI document (/openapi.json, /docs)', () => {
  const iso = isolate('openapi');
  let app: TestApp;
  let api: Api;
  before(async () => {
    app = await startTestApp(iso);
    api = new Api(app.url!);
  });
  after(() => cleanup(iso, [app]));

  it('documents exactly the routes the app serves', async () => {
    const express = createHttpApp(inert as ApiDeps) as unknown as { router: { stack: Layer[] } };
    // Static files (the console's modules, Swagger UI's assets) are files, not operations.
    const served = [...new Set(routesServed(express.router.stack).map((r) => r.replace(/\/$/, '') || '/'))]
      .filter((r) => !/ \/(console|docs\/(assets|init\.js))/.test(r))
      .sort();
    const { body: doc } = await api.get('/openapi.json');
    const documented = Object.entries(doc.paths as Record<string, object>)
      .flatMap(([path, methods]) => Object.keys(methods).map((m) => `${m.toUpperCase()} ${path}`))
      .sort();
    console.log(`      ${served.length} routes served, ${documented.length} documented`);
    expect(documented).to.deep.equal(served);
    expect(OPERATIONS.length).to.equal(documented.length);
  });

  it('is an OpenAPI 3.1 document with the security schemes, headers and error shape', async () => {
    const reply = await api.get('/openapi.json');
    expect(reply.status).to.equal(200);
    expect(reply.headers.get('content-type')).to.match(/^application\/json/);
    const doc = reply.body;
    expect(doc.openapi).to.equal('3.1.0');
    expect(doc.components.securitySchemes.bearer).to.include({ type: 'http', scheme: 'bearer' });
    expect(doc.components.securitySchemes.adminToken).to.include({ type: 'apiKey', in: 'header', name: 'X-Admin-Token' });
    expect(Object.keys(doc.components.headers)).to.have.members(['X-Request-Id', 'Retry-After', 'Location', 'Idempotent-Replayed']);
    const placeOrder = doc.paths['/api/orders'].post;
    expect(placeOrder.parameters).to.deep.include({ $ref: '#/components/parameters/Idempotency-Key' });
    expect(placeOrder.requestBody.content['application/json'].schema.required).to.have.members(['showId', 'seatIds']);
    expect(placeOrder.responses['409'].content['application/json'].schema.properties.error.properties.code.enum).to.include('SEATS_TAKEN');
    expect(doc.paths['/api/orders/async'].post.parameters.map((p: { name: string }) => p.name)).to.include('waitMs');
    expect(doc.paths['/api/admin/sagas'].get.parameters.map((p: { name: string }) => p.name)).to.include.members(['status', 'limit', 'cursor']);
    expect(doc.paths['/api/orders/{id}/pay'].post.security).to.deep.equal([{ bearer: [] }]);
    expect(doc.paths['/api/admin/shows'].post.security).to.deep.equal([{ adminToken: [] }]);
  });

  it('test/support/api-types.ts is what `npm run openapi:types` makes of the current document', async () => {
    expect(readFileSync(API_TYPES_FILE, 'utf8') === (await generateApiTypes()), 'api-types.ts is stale: run npm run openapi:types').to.equal(true);
  });

  it('/docs renders it from files the service serves itself, under the strict CSP', async () => {
    const page = await fetch(`${api.baseUrl}/docs`);
    expect(page.status).to.equal(200);
    const html = await page.text();
    expect(html).to.include('/docs/assets/swagger-ui-bundle.js').and.include('/docs/init.js');
    expect(html).not.to.match(/https?:\/\//);
    expect(html).not.to.match(/<script>(?!<)/); // no inline script
    const csp = page.headers.get('content-security-policy') ?? '';
    expect(csp).to.include("script-src 'self'").and.include("style-src 'self'").and.not.include('unsafe');
    for (const asset of ['/docs/assets/swagger-ui-bundle.js', '/docs/assets/swagger-ui.css', '/docs/init.js']) {
      const res = await fetch(`${api.baseUrl}${asset}`);
      expect(res.status, asset).to.equal(200);
      expect((await res.text()).length, asset).to.be.greaterThan(10);
    }
    expect((await fetch(`${api.baseUrl}/docs/assets/index.html`)).status).to.equal(404);
  });
});
