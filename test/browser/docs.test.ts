import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { chromium, type BrowserContext } from 'playwright-core';
import type { AddressInfo, Server } from 'node:net';
import { createHttpApp, type ApiDeps } from '../../src/api/http-app';

/**
 * The app itself (the same createHttpApp, security headers and all), with inert dependencies:
 * serving /docs and /openapi.json touches none of them, so no database or broker is needed.
 */
const inert: any = new Proxy(function () {}, {
  get: (_t, key) => (key === 'isLevelEnabled' ? () => false : key === 'adminToken' ? 'inert-token' : key === 'then' ? undefined : inert),
  apply: () => inert,
});

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

describe('/docs in a browser', function () {
  this.timeout(120_000);
  let server: Server;
  let base: string;
  let profile: string;
  let context: BrowserContext;

  before(async () => {
    server = createHttpApp(inert as ApiDeps).listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    profile = mkdtempSync(path.join(os.tmpdir(), 'docs-chromium-'));
    context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });
  after(async () => {
    await context?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
    await new Promise((resolve) => server?.close(resolve));
  });

  it('renders every operation of /openapi.json under the strict CSP, with nothing fetched from elsewhere', async () => {
    const page = context.pages()[0] ?? (await context.newPage());
    const problems: string[] = [];
    const foreign: string[] = [];
    page.on('console', (msg) => {
      if (msg.type() === 'error') problems.push(msg.text());
    });
    page.on('pageerror', (err) => problems.push(String(err)));
    page.on('request', (req) => {
      if (!req.url().startsWith(base) && !req.url().startsWith('data:')) foreign.push(req.url());
    });
    await page.goto(`${base}/docs`);
    await page.locator('.opblock').first().waitFor({ timeout: 30_000 });
    const operations = await page.locator('.opblock').count();
    const { body: doc } = await fetch(`${base}/openapi.json`).then(async (r) => ({ body: await r.json() }));
    const documented = Object.values(doc.paths as Record<string, object>).reduce((n, methods) => n + Object.keys(methods).length, 0);
    console.log(`      /docs shows ${operations} operations of ${documented}`);
    expect(operations).to.equal(documented);
    expect(await page.locator('.info .title').textContent()).to.include('seat-saga');
    expect(foreign, 'requests outside the service').to.deep.equal([]);
    expect(problems, 'console errors (CSP violations included)').to.deep.equal([]);
  });
});
