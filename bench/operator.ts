import { execSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import amqp from 'amqplib';
import type { Knex } from 'knex';
import { operatorSchemas } from '../src/api/routes/operator';
import { topologyOf } from '../src/app';
import { loadConfig } from '../src/config';
import type { DeadLetterLog } from '../src/operator/dead-letters';
import { SagaQueries } from '../src/operator/saga-queries';
import { snowflakeFloor } from '../src/support/ids';
import { systemClock } from '../src/support/time';
import { seedSagas, type SeedResult } from './seed-sagas';
import { insertBuyers, startService, type BenchService } from './service';
import { admin, createShow, json, percentile, post, waitFor } from './support';

/**
 * `npm run bench:operator` (under the services lock: `flock /tmp/seat-saga-services.lock npm run
 * bench:operator`): the figures of the operator console, written to bench/operator.md.
 *
 * 1. The built service (dist/main.js, own database and namespace) over BENCH_OPERATOR_SAGAS
 *    (1,000,000) sagas seeded by bench/seed-sagas.ts; GET /api/admin/sagas latency, p50/p99 over
 *    BENCH_OPERATOR_REQUESTS (300) sequential requests per filter (latency, not throughput), and
 *    GET /api/admin/sagas/stats, each as a ratio to GET /livez measured the same way in the same
 *    run. The SQL of each filter is the one SagaQueries builds (captured from knex, with the
 *    route's own schema parsing the query string) and goes through MariaDB's ANALYZE (EXPLAIN
 *    plus the rows really read).
 * 2. BENCH_OPERATOR_DEAD_LETTERS (1,000) real order sagas failed at order.order_add.after whose
 *    seat-release compensation was dead-lettered (listener.seat-release.before throwing,
 *    MAX_DELIVERIES=2, RETRY_DELAYS_MS=50); the failpoint off, POST /api/admin/dead-letters/redrive
 *    {listener: 'seat-release'} is timed, then the time until every one of them is COMPENSATED,
 *    and exactly-once is checked from the database and the broker.
 *
 * The service runs with SAGA_STALE_MS and COMPENSATION_STALE_MS at one day, so that the sweeper
 * leaves the seeded RUNNING / COMPENSATING sagas (recent, fake payloads) and the dead letters alone.
 */

const SAGAS = Number(process.env.BENCH_OPERATOR_SAGAS ?? 1_000_000);
const REQUESTS = Number(process.env.BENCH_OPERATOR_REQUESTS ?? 300);
const DEAD_LETTERS = Number(process.env.BENCH_OPERATOR_DEAD_LETTERS ?? 1_000);
const WARM_UP = 20;
const DEEP_PAGES = 50;
/** Also timed: the page after this many pages of 50, reached with a cursor made from the database. */
const FAR_PAGE = 1_000;
const DAY_MS = 86_400_000;

interface Latency {
  name: string;
  query: string;
  requests: number;
  first: number;
  p50: number;
  p99: number;
  max: number;
  /** Items per page, on average. */
  items: number;
  note?: string;
}

interface Plan {
  name: string;
  query: string;
  sql: string;
  rows: Array<Record<string, unknown>>;
  /** Handler_read_* of the session while the statement ran: index entries and rows really read. */
  reads: number;
}

/** `count` sequential GETs of the URLs `next` gives (after WARM_UP unmeasured ones); each body goes to `seen`. */
async function measure(
  service: BenchService,
  name: string,
  query: string,
  next: () => string,
  count = REQUESTS,
  options: { headers?: Record<string, string>; seen?: (body: any) => void; warmUp?: number; note?: string } = {},
): Promise<Latency> {
  const headers = options.headers ?? admin;
  const once = async () => {
    const url = `${service.url}${next()}`;
    const started = performance.now();
    const res = await fetch(url, { headers });
    const body = await res.json();
    const ms = performance.now() - started;
    if (res.status !== 200) throw new Error(`${url}: ${res.status} ${JSON.stringify(body)}`);
    options.seen?.(body);
    return { ms, items: Array.isArray(body?.items) ? body.items.length : 0 };
  };
  const first = (await once()).ms;
  for (let i = 1; i < (options.warmUp ?? WARM_UP); i++) await once();
  const times: number[] = [];
  let items = 0;
  for (let i = 0; i < count; i++) {
    const r = await once();
    times.push(r.ms);
    items += r.items;
  }
  times.sort((a, b) => a - b);
  const result = {
    name,
    query,
    requests: count,
    first,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    max: times.at(-1)!,
    items: items / count,
    note: options.note,
  };
  console.log(
    `${name}: p50 ${result.p50.toFixed(2)} ms, p99 ${result.p99.toFixed(2)} ms, max ${result.max.toFixed(1)} ms, first ${first.toFixed(1)} ms, ${result.items.toFixed(1)} items/page`,
  );
  return result;
}

/** The SQL that SagaQueries issues for `run`, from knex's query events (with bindings). */
async function capture(db: Knex, run: () => Promise<unknown>): Promise<Array<{ sql: string; bindings: readonly unknown[] }>> {
  const seen: Array<{ sql: string; bindings: readonly unknown[] }> = [];
  const listener = (q: { sql: string; bindings?: readonly unknown[] }) => seen.push({ sql: q.sql, bindings: q.bindings ?? [] });
  db.on('query', listener);
  try {
    await run();
  } finally {
    db.removeListener('query', listener);
  }
  return seen;
}

/** MariaDB's ANALYZE (the plan, and the rows each table really read); EXPLAIN elsewhere. */
async function analyze(db: Knex, mariadb: boolean, sql: string, bindings: readonly unknown[]): Promise<Array<Record<string, unknown>>> {
  const [rows] = await db.raw(`${mariadb ? 'ANALYZE' : 'EXPLAIN'} ${sql}`, bindings as any[]);
  return rows;
}

/**
 * Index entries and rows the statement reads (the session's Handler_read_* counters around it,
 * on one connection, less what SHOW STATUS itself adds). ANALYZE's r_rows counts what an
 * index_merge hands on, not what it read: this counts both.
 */
async function handlerReads(db: Knex, sql: string, bindings: readonly unknown[]): Promise<number> {
  return db.transaction(async (trx) => {
    const read = async () =>
      ((await trx.raw("SHOW SESSION STATUS LIKE 'Handler_read%'"))[0] as Array<{ Value: string }>).reduce((sum, row) => sum + Number(row.Value), 0);
    const a = await read();
    const b = await read();
    await trx.raw(sql, bindings as any[]);
    const c = await read();
    return c - b - (b - a);
  });
}

/** The route's own parsing of a query string, then the SQL SagaQueries builds for it. */
async function planOfSearch(db: Knex, queries: SagaQueries, mariadb: boolean, name: string, query: string): Promise<Plan> {
  const filter = operatorSchemas.sagaSearch.parse(Object.fromEntries(new URLSearchParams(query)));
  const [q] = await capture(db, () => queries.search(filter));
  const sql = db.raw(q.sql, q.bindings as any[]).toString();
  return { name, query, sql, rows: await analyze(db, mariadb, q.sql, q.bindings), reads: await handlerReads(db, q.sql, q.bindings) };
}

/** `n` existing (orderId, userId) pairs, from sagas at random points of the seeded span. */
async function samples(db: Knex, seeded: SeedResult, n: number): Promise<Array<{ orderId: string; userId: string }>> {
  const out: Array<{ orderId: string; userId: string }> = [];
  for (let i = 0; i < n; i++) {
    const at = seeded.startMs + Math.random() * (seeded.endMs - seeded.startMs);
    const row = await db('sagas').where('id', '>=', snowflakeFloor(at)).orderBy('id').first('order_id', 'user_id');
    if (row) out.push({ orderId: row.order_id, userId: row.user_id });
  }
  return out;
}

async function searchLatencies(service: BenchService, seeded: SeedResult) {
  const db = service.db;
  const pairs = await samples(db, seeded, 200);
  let k = 0;
  const rotate = <T>(list: T[]) => list[k++ % list.length];
  const hour = () => {
    const from = seeded.startMs + 3_600_000 + Math.floor(Math.random() * (seeded.endMs - seeded.startMs - 2 * 3_600_000));
    return `since=${new Date(from).toISOString()}&until=${new Date(from + 3_600_000).toISOString()}`;
  };
  const search = (query: string) => `/api/admin/sagas${query ? `?${query}` : ''}`;

  const livez = () => measure(service, 'GET /livez (baseline)', '', () => '/livez', REQUESTS, { headers: {} });
  const baseline = await livez();
  const rows: Latency[] = [];
  const fixed = async (name: string, query: string) => rows.push(await measure(service, name, query, () => search(query)));
  await fixed('no filter', '');
  await fixed('status', 'status=COMPENSATED');
  await fixed('status, a rare one', 'status=COMPENSATING');
  await fixed('type', 'type=pay');
  await fixed('tag (failed_tag)', 'tag=order_add_cancel');
  rows.push(await measure(service, 'orderId (200 different, existing)', 'orderId=<existing>', () => search(`orderId=${rotate(pairs).orderId}`)));
  rows.push(await measure(service, 'userId (200 different, existing)', 'userId=<existing>', () => search(`userId=${rotate(pairs).userId}`)));
  rows.push(await measure(service, 'since/until, a 1-hour window (a different one each time)', 'since=…&until=… (1 h)', () => search(hour())));
  await fixed('status + type', 'status=COMPENSATED&type=pay');
  await fixed('userId + status + type', `userId=${pairs[0].userId}&status=COMPLETED&type=order`);
  await fixed('tag + 1-hour window', `tag=order_cancel&${hour()}`);

  // Deep pages: walks of DEEP_PAGES pages following nextCursor, from the top again after each.
  const deep = async (name: string, filter: string) => {
    let cursor: string | null = null;
    let page = 0;
    let deepest: string | null = null;
    const pageTimes: number[] = [];
    const result = await measure(
      service,
      name,
      `${filter ? `${filter}&` : ''}cursor=… (pages 1–${DEEP_PAGES})`,
      () => {
        if (page === DEEP_PAGES) {
          page = 0;
          cursor = null;
        }
        page++;
        return search([filter, cursor ? `cursor=${cursor}` : ''].filter(Boolean).join('&'));
      },
      Math.ceil(REQUESTS / DEEP_PAGES) * DEEP_PAGES,
      {
        warmUp: DEEP_PAGES,
        seen: (body) => {
          if (page === DEEP_PAGES - 1) deepest = body.nextCursor; // the cursor of page 50
          cursor = body.nextCursor;
        },
      },
    );
    // Page 50 alone, timed again, to show the depth costs nothing.
    for (let i = 0; i < 20; i++) {
      const started = performance.now();
      const res = await fetch(`${service.url}${search([filter, `cursor=${deepest}`].filter(Boolean).join('&'))}`, { headers: admin });
      await res.json();
      pageTimes.push(performance.now() - started);
    }
    pageTimes.sort((a, b) => a - b);
    result.note = `page ${DEEP_PAGES} alone: p50 ${percentile(pageTimes, 50).toFixed(2)} ms over 20`;
    rows.push(result);
    return deepest as string | null;
  };
  const deepCursor = await deep(`deep pages, no filter (${DEEP_PAGES} pages a walk)`, '');
  const deepCompensatedCursor = await deep(`deep pages, status=COMPENSATED (${DEEP_PAGES} pages a walk)`, 'status=COMPENSATED');

  // Page 1,001 (50,000 sagas down), its cursor made from the database as the API makes them.
  const farCursors: Record<string, string> = {};
  for (const [label, filter, where] of [
    ['no filter', '', {}],
    ['status=COMPENSATED', 'status=COMPENSATED', { status: 'COMPENSATED' }],
    ['type=pay', 'type=pay', { type: 'pay' }],
    ['tag=order_cancel', 'tag=order_cancel', { failed_tag: 'order_cancel' }],
  ] as const) {
    const row = await db('sagas')
      .where(where)
      .orderBy('id', 'desc')
      .offset(FAR_PAGE * 50 - 1)
      .first('id');
    if (!row) continue;
    const cursor = Buffer.from(`saga:${row.id}`).toString('base64url');
    farCursors[label] = `${filter ? `${filter}&` : ''}cursor=${cursor}`;
    rows.push(
      await measure(
        service,
        `page ${n(FAR_PAGE + 1)}, ${label}`,
        `${filter ? `${filter}&` : ''}cursor=… (${n(FAR_PAGE * 50)} down)`,
        () => search(farCursors[label]),
        50,
        { warmUp: 5 },
      ),
    );
  }

  // Combinations that match (almost) nothing although each filter alone matches many: the worst case.
  const worst: Latency[] = [];
  for (const [name, query] of [
    ['type + tag that never go together', 'type=order&tag=pay_check_cancel'],
    ['status + tag that never go together', 'status=COMPLETED&tag=order_cancel'],
    ['status + type that never go together', 'status=COMPLETED&type=expiry'],
  ] as const) {
    worst.push(await measure(service, name, query, () => search(query), 30, { warmUp: 3 }));
  }

  const stats = await measure(service, 'GET /api/admin/sagas/stats', '', () => '/api/admin/sagas/stats', Math.min(REQUESTS, 100), { warmUp: 5 });
  const overview = await measure(service, 'GET /api/admin/overview (console counters)', '', () => '/api/admin/overview', Math.min(REQUESTS, 100), {
    warmUp: 5,
  });
  const statsBody = await (await fetch(`${service.url}/api/admin/sagas/stats`, { headers: admin })).json();
  const baselineAfter = await livez();
  return { baseline, baselineAfter, rows, worst, stats, overview, statsBody, deepCursor, deepCompensatedCursor, farCursors, pairs, hour };
}

async function plans(service: BenchService, search: Awaited<ReturnType<typeof searchLatencies>>) {
  const db = service.db;
  const [[{ version }]] = await db.raw('SELECT VERSION() AS version');
  const mariadb = /mariadb/i.test(version);
  const queries = new SagaQueries(db, {
    listenersFor: () => [],
    deadLetters: {} as DeadLetterLog, // search and stats do not read it
    staleMs: { running: DAY_MS, compensating: DAY_MS },
    clock: systemClock,
  });
  const p = search.pairs[0];
  const cases: Array<[string, string]> = [
    ['no filter', ''],
    ['status', 'status=COMPENSATED'],
    ['status, a rare one', 'status=COMPENSATING'],
    ['type', 'type=pay'],
    ['tag', 'tag=order_add_cancel'],
    ['orderId', `orderId=${p.orderId}`],
    ['userId', `userId=${p.userId}`],
    ['1-hour window', search.hour()],
    ['status + type', 'status=COMPENSATED&type=pay'],
    ['userId + status + type', `userId=${p.userId}&status=COMPLETED&type=order`],
    ['tag + 1-hour window', `tag=order_cancel&${search.hour()}`],
    [`page ${DEEP_PAGES}, no filter`, `cursor=${search.deepCursor}`],
    [`page ${DEEP_PAGES}, status=COMPENSATED`, `status=COMPENSATED&cursor=${search.deepCompensatedCursor}`],
    ...Object.entries(search.farCursors).map(([label, query]): [string, string] => [`page ${n(FAR_PAGE + 1)}, ${label}`, query]),
    ['worst: type + tag never together', 'type=order&tag=pay_check_cancel'],
    ['worst: status + tag never together', 'status=COMPLETED&tag=order_cancel'],
    ['worst: status + type never together', 'status=COMPLETED&type=expiry'],
  ];
  const out: Plan[] = [];
  for (const [name, query] of cases) out.push(await planOfSearch(db, queries, mariadb, name, query));
  const statsSql = await capture(db, () => queries.stats());
  for (const [i, q] of statsSql.entries()) {
    out.push({
      name: `stats ${i + 1}`,
      query: '',
      sql: db.raw(q.sql, q.bindings as any[]).toString(),
      rows: await analyze(db, mariadb, q.sql, q.bindings),
      reads: await handlerReads(db, q.sql, q.bindings),
    });
  }
  return { version: String(version), mariadb, plans: out };
}

/** `n` order sagas failed at order_add.after whose seat-release compensation is in the DLQ; then the redrive. */
async function redrive(service: BenchService) {
  const topology = topologyOf(loadConfig(service.env));
  const seatRelease = topology.listenerQueues['seat-release']!;
  const orderDelete = topology.listenerQueues['order-delete']!;
  const conn = await amqp.connect(service.env.AMQP_URL);
  const channel = await conn.createChannel();
  const depth = async (queue: string) => (await channel.checkQueue(queue)).messageCount;
  try {
    const failpoint = async (name: string, action: 'throw' | 'off') => {
      const res = await fetch(`${service.url}/api/admin/failpoints/${name}`, { method: 'PUT', headers: admin, body: JSON.stringify({ action }) });
      if (res.status !== 200) throw new Error(`failpoint ${name}: ${res.status}`);
    };
    const tokens = await insertBuyers(service, 50);
    const perRow = 100;
    const showId = await createShow(service, Math.ceil(DEAD_LETTERS / perRow), perRow);
    const seats = ((await (await fetch(`${service.url}/api/shows/${showId}/seats`)).json()) as Array<{ id: string }>).map((s) => s.id);

    await failpoint('listener.seat-release.before', 'throw');
    await failpoint('order.order_add.after', 'throw');
    const produceStarted = Date.now();
    const sagaIds: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < DEAD_LETTERS) {
          const n = next++;
          const reply = await post(
            `${service.url}/api/orders`,
            { showId, seatIds: [seats[n]] },
            { ...json, Authorization: `Bearer ${tokens[n % tokens.length]}` },
          );
          if (reply.status !== 500 || reply.body.error?.code !== 'SAGA_FAILED')
            throw new Error(`expected SAGA_FAILED, got ${reply.status} ${JSON.stringify(reply.body)}`);
          sagaIds.push(reply.body.error.details.sagaId);
        }
      }),
    );
    await failpoint('order.order_add.after', 'off');
    const count = async (query: Knex.QueryBuilder) => Number((await query.count({ n: '*' }))[0].n);
    const db = service.db;
    await waitFor(
      `${DEAD_LETTERS} seat-release dead letters`,
      async () =>
        (await count(db('dead_letters').whereIn('saga_id', sagaIds).where({ listener: 'seat-release' }).whereNull('resolved_at'))) === DEAD_LETTERS &&
        (await depth(seatRelease.deadLetterQueue)) === DEAD_LETTERS,
      180_000,
    );
    await waitFor(
      'order-delete done for all of them',
      async () => (await count(db('saga_compensations').whereIn('saga_id', sagaIds).where({ listener: 'order-delete' }))) === DEAD_LETTERS,
      60_000,
    );
    const produceMs = Date.now() - produceStarted;
    const before = {
      compensating: await count(db('sagas').whereIn('id', sagaIds).where({ status: 'COMPENSATING' })),
      dlq: await depth(seatRelease.deadLetterQueue),
      heldSeats: await count(db('seat_holds').where({ show_id: showId })),
      failedDeliveries: await count(db('compensation_attempts').whereIn('saga_id', sagaIds).where({ listener: 'seat-release', outcome: 'failed' })),
      listed: ((await (await fetch(`${service.url}/api/admin/dead-letters?listener=seat-release`, { headers: admin })).json()) as unknown[]).length,
    };
    console.log(`dead letters ready after ${(produceMs / 1000).toFixed(1)} s: ${JSON.stringify(before)}`);

    await failpoint('listener.seat-release.before', 'off');
    const [[{ dbStart }]] = await db.raw('SELECT NOW(3) AS dbStart');
    const started = performance.now();
    const requests: Array<{ ms: number; status: number; body: unknown }> = [];
    // One request should take all of them; more only if it did not (reported).
    for (let i = 0; i < 10; i++) {
      const t = performance.now();
      const res = await fetch(`${service.url}/api/admin/dead-letters/redrive`, {
        method: 'POST',
        headers: admin,
        body: JSON.stringify({ listener: 'seat-release' }),
        signal: AbortSignal.timeout(300_000),
      });
      const body = await res.json();
      requests.push({ ms: performance.now() - t, status: res.status, body });
      console.log(`POST /api/admin/dead-letters/redrive: ${res.status} ${JSON.stringify(body)} in ${(performance.now() - t).toFixed(0)} ms`);
      if (res.status !== 200) throw new Error(`redrive answered ${res.status}`);
      if ((await depth(seatRelease.deadLetterQueue)) === 0) break;
    }
    await waitFor(
      'every redriven saga COMPENSATED',
      async () => (await count(db('sagas').whereIn('id', sagaIds).where({ status: 'COMPENSATED' }))) === DEAD_LETTERS,
      300_000,
    );
    const allCompensatedMs = performance.now() - started;
    const [[{ lastMs }]] = await db.raw('SELECT TIMESTAMPDIFF(MICROSECOND, ?, MAX(finished_at)) / 1000 AS lastMs FROM sagas WHERE id IN (?)', [
      dbStart,
      sagaIds,
    ]);
    // Late or duplicate deliveries would show now: let the queues drain.
    await waitFor('the seat-release queue drained', async () => (await depth(seatRelease.name)) === 0, 60_000);
    await new Promise((resolve) => setTimeout(resolve, 3_000));

    const orderIds: string[] = await db('sagas').whereIn('id', sagaIds).pluck('order_id');
    const attempts: Array<{ outcome: string; n: number }> = await db('compensation_attempts')
      .whereIn('saga_id', sagaIds)
      .where({ listener: 'seat-release' })
      .groupBy('outcome')
      .select('outcome', db.raw('COUNT(*) AS n'));
    const resolutions: Array<{ resolution: string | null; n: number }> = await db('dead_letters')
      .whereIn('saga_id', sagaIds)
      .groupBy('resolution')
      .select('resolution', db.raw('COUNT(*) AS n'));
    const show = (await (await fetch(`${service.url}/api/shows/${showId}`)).json()) as { seatsTotal: number; seatsAvailable: number };
    const checks = {
      sagas: sagaIds.length,
      compensated: await count(db('sagas').whereIn('id', sagaIds).where({ status: 'COMPENSATED', compensations_pending: 0 })),
      seatReleaseRows: await count(db('saga_compensations').whereIn('saga_id', sagaIds).where({ listener: 'seat-release' })),
      seatReleaseSagas: Number(
        (await db('saga_compensations').whereIn('saga_id', sagaIds).where({ listener: 'seat-release' }).countDistinct({ n: 'saga_id' }))[0].n,
      ),
      orderDeleteRows: await count(db('saga_compensations').whereIn('saga_id', sagaIds).where({ listener: 'order-delete' })),
      attempts: Object.fromEntries(attempts.map((a) => [a.outcome, Number(a.n)])),
      seatsStillHeld: await count(db('seat_holds').whereIn('order_id', orderIds)),
      ordersLeft: await count(db('orders').whereIn('id', orderIds)),
      show: { seatsTotal: show.seatsTotal, seatsAvailable: show.seatsAvailable },
      dlq: { [seatRelease.deadLetterQueue]: await depth(seatRelease.deadLetterQueue), [orderDelete.deadLetterQueue]: await depth(orderDelete.deadLetterQueue) },
      deadLetters: Object.fromEntries(resolutions.map((r) => [r.resolution ?? 'open', Number(r.n)])),
      openDeadLettersListed: ((await (await fetch(`${service.url}/api/admin/dead-letters?listener=seat-release`, { headers: admin })).json()) as unknown[])
        .length,
    };
    const exactlyOnce =
      checks.compensated === DEAD_LETTERS &&
      checks.seatReleaseRows === DEAD_LETTERS &&
      checks.seatReleaseSagas === DEAD_LETTERS &&
      (checks.attempts.done ?? 0) + (checks.attempts.noop ?? 0) === DEAD_LETTERS &&
      checks.seatsStillHeld === 0 &&
      checks.ordersLeft === 0 &&
      show.seatsAvailable === show.seatsTotal &&
      Object.values(checks.dlq).every((d) => d === 0) &&
      !('open' in checks.deadLetters) &&
      checks.openDeadLettersListed === 0;
    console.log(
      `redrive: all ${DEAD_LETTERS} COMPENSATED ${allCompensatedMs.toFixed(0)} ms after the first request; checks ${JSON.stringify(checks)}; exactly once: ${exactlyOnce}`,
    );
    return { produceMs, before, requests, allCompensatedMs, lastFinishedMs: Number(lastMs), checks, exactlyOnce };
  } finally {
    await channel.close().catch(() => undefined);
    await conn.close().catch(() => undefined);
  }
}

const f = (ms: number) => (ms < 10 ? ms.toFixed(2) : ms < 100 ? ms.toFixed(1) : ms.toFixed(0));
const n = (x: number) => x.toLocaleString('en-US');
const cell = (v: unknown) => (v === null || v === undefined ? '' : String(v).replace(/\|/g, '\\|'));

function report(r: {
  seeded: SeedResult;
  analyzeMs: number;
  settleMs: number;
  sizes: { rows: number; dataMb: number; indexMb: number };
  bufferPoolMb: number;
  search: Awaited<ReturnType<typeof searchLatencies>>;
  explain: Awaited<ReturnType<typeof plans>>;
  redrive: Awaited<ReturnType<typeof redrive>>;
}): string {
  const { search, explain, redrive: rd, seeded } = r;
  const base = search.baseline;
  const ratio = (x: Latency) => `${(x.p50 / base.p50).toFixed(1)} × / ${(x.p99 / base.p99).toFixed(1)} ×`;
  const row = (x: Latency) =>
    `| ${x.name} | \`${cell(x.query) || '—'}\` | ${x.requests} | ${f(x.p50)} | ${f(x.p99)} | ${ratio(x)} | ${f(x.first)} | ${x.items.toFixed(1)} | ${cell(x.note)} |`;
  const head =
    '| filter | query | requests | p50 ms | p99 ms | ratio to /livez (p50 / p99) | first request ms | items/page | note |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |';
  let commit = 'unknown';
  try {
    commit = execSync('git rev-parse --short HEAD', { cwd: path.join(__dirname, '..') })
      .toString()
      .trim();
    if (
      execSync('git status --porcelain src migrations', { cwd: path.join(__dirname, '..') })
        .toString()
        .trim()
    )
      commit += ' (with uncommitted changes under src/)';
  } catch {
    /* not a checkout */
  }
  const cpus = os.cpus();
  const lines: string[] = [];
  lines.push('# Operator console benchmark');
  lines.push('');
  lines.push(
    `Measured by \`npm run bench:operator\` (\`flock /tmp/seat-saga-services.lock npm run bench:operator\`) on ${new Date().toISOString().slice(0, 10)}, commit ${commit}: ${cpus.length} × ${cpus[0]?.model.trim() ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${explain.version} (innodb_buffer_pool_size ${r.bufferPoolMb} MiB, the server's default); the service (dist/main.js, role all), MariaDB, Redis, RabbitMQ and this load generator on the same machine.`,
  );
  lines.push('');
  lines.push(
    `Every request is sent alone (one at a time, ${REQUESTS} measured per row after ${WARM_UP} unmeasured): these are latencies, not throughput. Ratios are to \`GET /livez\` (the process alone) measured the same way in the same run; absolute numbers on a shared machine mean little. Pages are the default \`limit\` (50).`,
  );
  lines.push('');
  // What the run says, computed from it: the slow rows and the plans that read more than a page.
  const all = [...search.rows, ...search.worst, search.stats];
  const slow = all.filter((x) => x.p50 > 10 * base.p50);
  const fast = search.rows.filter((x) => x.p50 <= 10 * base.p50);
  const heavy = explain.plans.filter((p) => p.reads > 10 * 51);
  lines.push('## Summary');
  lines.push('');
  lines.push(
    `- Within 10 × \`/livez\` at p50 (${f(10 * base.p50)} ms): ${fast.length} of the ${search.rows.length} search rows (${fast.map((x) => x.name).join('; ')}).`,
  );
  lines.push(
    `- Slower than that: ${slow.length ? slow.map((x) => `**${x.name}** \`${x.query || '—'}\` p50 ${f(x.p50)} ms (${(x.p50 / base.p50).toFixed(0)} ×)`).join('; ') : 'none'}.`,
  );
  lines.push(
    `- Plans that read more than 10 pages' worth (510 entries) for one page: ${heavy.length ? heavy.map((p) => `${p.name} (${n(p.reads)}: ${cell(p.rows[0]?.type)} on ${cell(p.rows[0]?.key)})`).join('; ') : 'none'}.`,
  );
  // What the plans show, when they show it (each paragraph only if this run's plans have it).
  const refDeep = explain.plans.filter((p) => p.query.includes('cursor=') && p.rows[0]?.type === 'ref' && p.reads > 10 * 51);
  const merges = explain.plans.filter((p) => p.rows[0]?.type === 'index_merge' && p.reads > 10 * 51);
  const fullStats = explain.plans.filter((p) => p.name.startsWith('stats') && p.reads > 100_000);
  if (refDeep.length) {
    lines.push(
      `- **Deep pages of an equality filter are not keyset pages on this server**: for ${refDeep.map((p) => `\`${p.name}\``).join(', ')} the optimizer reads the \`(column, id)\` index by \`ref\` on the column alone and filters \`id < cursor\` row by row, so page *k* reads about *k* × 50 entries (${refDeep.map((p) => n(p.reads)).join(', ')}) instead of 51: the cost grows with the depth. The same statement with \`FORCE INDEX (sagas_status_id)\` (or \`sagas_type_id\`) reads 51 by \`range\` on \`(column, id)\` (checked by hand on a copy of this data set: 50,052 → 51 entries, 508 → 0.8 ms cold).`,
    );
  }
  if (merges.length) {
    lines.push(
      `- **Two equality filters take an index_merge intersection**: ${merges.map((p) => `\`${p.name}\` ${n(p.reads)}`).join(', ')} entries read — both ranges read in full, intersected, then sorted (\`Using filesort\`) for 51 rows; \`r_rows\` shows only what the intersection kept. Without it (\`SET STATEMENT optimizer_switch='index_merge_intersection=off' FOR …\`, or \`FORCE INDEX\` of one \`(column, id)\` index) \`status=COMPENSATED&type=pay\` reads 2,981 entries (3.6 ms) by walking one index backwards and testing the other column (checked by hand on a copy of this data set); combinations that match nothing still walk to the end of one index, which only a composite index (e.g. \`(status, type, id)\`, with the intersection off: MariaDB intersected it with \`sagas_status_id\` too) would avoid.`,
    );
  }
  if (fullStats.length) {
    lines.push(
      `- **Stats count the whole table on every request**: ${fullStats.map((p) => `\`\` ${p.sql} \`\` reads ${n(p.reads)} index entries`).join('; ')}: its latency grows with the saga log.`,
    );
  }
  lines.push(
    `- Redrive of ${n(DEAD_LETTERS)} dead letters: ${rd.requests.length} request(s), the first ${f(rd.requests[0].ms)} ms; all COMPENSATED after ${f(rd.allCompensatedMs)} ms; exactly once: ${rd.exactlyOnce ? 'yes' : '**no**'}.`,
  );
  lines.push('');
  lines.push('## The data');
  lines.push('');
  lines.push(
    `${n(seeded.rows)} sagas seeded by \`bench/seed-sagas.ts\` in ${(seeded.ms / 1000).toFixed(1)} s (**${n(Math.round(seeded.rowsPerSecond))} rows/s**, multi-row INSERTs of 5,000 rows, one transaction each, into the schema of the service's own migrations, with its 8 secondary indexes), then \`ANALYZE TABLE sagas\` (${(r.analyzeMs / 1000).toFixed(1)} s) and a wait for InnoDB's dirty pages to be written (${(r.settleMs / 1000).toFixed(1)} s). Table: ${r.sizes.dataMb} MiB of data and ${r.sizes.indexMb} MiB of indexes (the buffer pool is ${r.bufferPoolMb} MiB). The span is the 30 days before the run; ~50,000 users (a fifth of the sagas from the 4% who buy most).`,
  );
  lines.push('');
  lines.push(
    `- by status: ${Object.entries(seeded.byStatus)
      .map(([k, v]) => `${k} ${n(v)} (${((100 * v) / seeded.rows).toFixed(1)} %)`)
      .join(', ')}`,
  );
  lines.push(
    `- by type: ${Object.entries(seeded.byType)
      .map(([k, v]) => `${k} ${n(v)}`)
      .join(', ')}`,
  );
  lines.push(
    `- by failed tag: ${Object.entries(seeded.byTag)
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${n(v)}`)
      .join(', ')}`,
  );
  lines.push('');
  lines.push('## GET /api/admin/sagas');
  lines.push('');
  lines.push(head);
  lines.push(row(base));
  for (const x of search.rows) lines.push(row(x));
  lines.push(row({ ...search.baselineAfter, name: 'GET /livez again, at the end' }));
  lines.push('');
  lines.push(
    '"first request": the first one of its row, before the warm-up (its index pages may not have been read yet). orderId, userId and the 1-hour windows rotate over 200 existing orders / users and random windows, so those rows do not read the same pages again and again.',
  );
  lines.push('');
  lines.push(
    '**Worst case** — filters that each match many sagas but never together: no index holds both columns, so the query walks one index (the optimizer picks the smaller) and reads each row to test the other column, to the end of the index:',
  );
  lines.push('');
  lines.push(head);
  for (const x of search.worst) lines.push(row(x));
  lines.push('');
  lines.push('## GET /api/admin/sagas/stats and the console counters');
  lines.push('');
  lines.push(head);
  lines.push(row(search.stats));
  lines.push(row(search.overview));
  lines.push('');
  lines.push(
    `Its answer over the seeded table: \`${JSON.stringify({ byStatus: search.statsBody.byStatus, byType: search.statsBody.byType, stuck: search.statsBody.stuck })}\` (stuck is 0 here: the bench's stale bounds are one day, so that the sweeper leaves the seeded in-flight sagas alone).`,
  );
  lines.push('');
  lines.push('## The plans');
  lines.push('');
  lines.push(
    `The SQL is the one \`SagaQueries\` builds, captured from knex after the route's own schema parsed the query string; ${explain.mariadb ? "MariaDB's `ANALYZE` runs it and shows the plan (`rows`: the optimizer's estimate) and what the chosen access handed on (`r_rows`)" : '`EXPLAIN` shows the plan'}. **entries read**: the session's \`Handler_read_*\` counters around one execution of it (index entries and rows really read, whatever the access method; for an index_merge, \`r_rows\` shows what the intersection kept, not the two ranges it read).`,
  );
  lines.push('');
  lines.push(`| case | key | type | rows (estimate) | ${explain.mariadb ? 'r_rows | r_filtered % | ' : ''}**entries read** | Extra | SQL |`);
  lines.push(`| --- | --- | --- | ---: | ${explain.mariadb ? '---: | ---: | ' : ''}---: | --- | --- |`);
  for (const p of explain.plans) {
    for (const pr of p.rows) {
      lines.push(
        `| ${p.name} | ${cell(pr.key)} | ${cell(pr.type)} | ${cell(pr.rows)} | ${explain.mariadb ? `${cell(pr.r_rows)} | ${cell(pr.r_filtered)} | ` : ''}**${n(p.reads)}** | ${cell(pr.Extra)} | \`\` ${cell(p.sql.replace(/^select `id`, `type`, `status`, `failed_tag`, `order_id`, `user_id`, `created_at`, `finished_at` from/, 'select … from'))} \`\` |`,
      );
    }
  }
  lines.push('');
  lines.push(`## Redrive of ${n(DEAD_LETTERS)} dead letters`);
  lines.push('');
  lines.push(
    `${n(DEAD_LETTERS)} real order sagas (one seat each, 8 clients) failed at \`order.order_add.after\` while \`listener.seat-release.before\` threw on every delivery (MAX_DELIVERIES=2, RETRY_DELAYS_MS=50): order-delete undid its part, seat-release's message went to \`${'<ns>'}.compensation.seat-release.dlq\` after 2 deliveries, the saga waited COMPENSATING with its seat held. Ready after ${(rd.produceMs / 1000).toFixed(1)} s: ${rd.before.compensating} sagas COMPENSATING, ${rd.before.dlq} messages in the DLQ, ${rd.before.heldSeats} seats held, ${rd.before.failedDeliveries} failed deliveries recorded; \`GET /api/admin/dead-letters?listener=seat-release\` listed ${rd.before.listed} of them. Then the failpoint off, and:`,
  );
  lines.push('');
  lines.push('| | |');
  lines.push('| --- | --- |');
  rd.requests.forEach((q, i) =>
    lines.push(
      `| \`POST /api/admin/dead-letters/redrive {"listener":"seat-release"}\`${rd.requests.length > 1 ? ` (request ${i + 1})` : ''} | **${f(q.ms)} ms**, ${q.status} \`${JSON.stringify(q.body)}\` |`,
    ),
  );
  lines.push(`| from the first request to all ${n(DEAD_LETTERS)} sagas COMPENSATED (polled every 100 ms) | **${f(rd.allCompensatedMs)} ms** |`);
  lines.push(`| the same from the database's clock (last finished_at) | ${f(rd.lastFinishedMs)} ms |`);
  lines.push('');
  const c = rd.checks;
  lines.push(`Exactly once (counted ${'3 s'} after the work queue drained): **${rd.exactlyOnce ? 'yes' : 'NO'}**`);
  lines.push('');
  lines.push(`- sagas COMPENSATED with no compensation pending: ${c.compensated} of ${c.sagas}`);
  lines.push(
    `- saga_compensations rows for seat-release: ${c.seatReleaseRows} (distinct sagas: ${c.seatReleaseSagas}); for order-delete: ${c.orderDeleteRows}`,
  );
  lines.push(`- seat-release deliveries recorded (compensation_attempts by outcome): ${JSON.stringify(c.attempts)}`);
  lines.push(
    `- seats still held by those orders: ${c.seatsStillHeld}; orders left: ${c.ordersLeft}; the show: ${c.show.seatsAvailable} of ${c.show.seatsTotal} seats available`,
  );
  lines.push(
    `- DLQ depths (amqplib checkQueue): ${Object.entries(c.dlq)
      .map(([q, d]) => `${q.replace(/^.*?\.compensation\./, '….compensation.')} ${d}`)
      .join(', ')}`,
  );
  lines.push(
    `- dead_letters rows of those sagas by resolution: ${JSON.stringify(c.deadLetters)}; open seat-release dead letters listed by GET /api/admin/dead-letters: ${c.openDeadLettersListed}`,
  );
  lines.push('');
  return `${lines.join('\n')}\n`;
}

async function main(): Promise<void> {
  const service = await startService('operator', {
    SAGA_STALE_MS: String(DAY_MS),
    COMPENSATION_STALE_MS: String(DAY_MS),
    MAX_DELIVERIES: '2',
    RETRY_DELAYS_MS: '50',
  });
  try {
    const db = service.db;
    console.log(`seeding ${n(SAGAS)} sagas`);
    const seeded = await seedSagas(db, { count: SAGAS });
    let t = Date.now();
    await db.raw('ANALYZE TABLE sagas');
    const analyzeMs = Date.now() - t;
    const [[size]] = await db.raw(
      "SELECT TABLE_ROWS AS rows_, DATA_LENGTH AS d, INDEX_LENGTH AS i FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'sagas'",
    );
    const [[{ pool }]] = await db.raw('SELECT @@innodb_buffer_pool_size AS pool');
    const sizes = { rows: Number(size.rows_), dataMb: Math.round(Number(size.d) / 2 ** 20), indexMb: Math.round(Number(size.i) / 2 ** 20) };
    // Let MariaDB write out what the seeding left dirty before anything is timed.
    t = Date.now();
    const dirty = async () => Number((await db.raw("SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'"))[0][0].Value);
    while ((await dirty()) > 500 && Date.now() - t < 90_000) await new Promise((resolve) => setTimeout(resolve, 500));
    const settleMs = Date.now() - t;
    console.log(`settled (dirty pages written) in ${(settleMs / 1000).toFixed(1)} s`);
    t = Date.now();
    const search = await searchLatencies(service, seeded);
    console.log(`search latencies in ${((Date.now() - t) / 1000).toFixed(0)} s`);
    const explain = await plans(service, search);
    const rd = await redrive(service);
    const markdown = report({ seeded, analyzeMs, settleMs, sizes, bufferPoolMb: Math.round(Number(pool) / 2 ** 20), search, explain, redrive: rd });
    writeFileSync(path.join(__dirname, 'operator.md'), markdown);
    console.log('wrote bench/operator.md');
  } finally {
    await service.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
