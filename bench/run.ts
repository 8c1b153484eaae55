import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { hashPayPassword, payPasswordMatches } from '../src/users/users';
import { ADMIN_TOKEN, startService, type BenchService } from './service';

/**
 * `npm run bench`: every path measured in one run on one machine, each as a ratio to GET /livez
 * measured in the same run (these machines are noisy; ratios travel, absolute numbers do not).
 * Settings: BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 50). Writes
 * bench/results.md.
 */
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const FAILING_SAGAS = 200;

interface Measured {
  name: string;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  total: number;
  non2xx: number;
  errors: number;
}

const json = { 'Content-Type': 'application/json' };
const admin = { ...json, 'X-Admin-Token': ADMIN_TOKEN };

async function post(url: string, body: unknown, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
}

/**
 * A short warm-up (JIT, pools; `warmUp` overrides how long), then the measured run. `options` may
 * set `amount` instead of a duration when each request consumes something prepared beforehand.
 */
async function load(name: string, options: autocannon.Options, warmUp: Partial<autocannon.Options> = { duration: Math.min(2, DURATION) }): Promise<Measured> {
  await autocannon({ ...options, ...warmUp });
  const result = await autocannon({ connections: CONNECTIONS, pipelining: 1, duration: DURATION, ...options });
  const measured = {
    name,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
  };
  console.log(`${name}: ${measured.requestsPerSecond.toFixed(0)} req/s, p50 ${measured.p50} ms, p99 ${measured.p99} ms, non-2xx ${measured.non2xx}, errors ${measured.errors}`);
  return measured;
}

async function createBuyers(service: BenchService, n: number): Promise<string[]> {
  const tokens: string[] = [];
  for (let i = 0; i < n; i++) tokens.push((await post(`${service.url}/api/users`, { name: `buyer-${i}`, payPassword: 'bench-pass' }, json)).body.token);
  return tokens;
}

async function createShow(service: BenchService, rows: number, seatsPerRow: number): Promise<{ id: string; seatIds: string[] }> {
  const show = (await post(`${service.url}/api/admin/shows`, { title: 'Bench', startsAt: '2030-01-01T20:00:00Z', priceCents: 1000, rows, seatsPerRow }, admin)).body;
  const seats = (await (await fetch(`${service.url}/api/shows/${show.id}/seats`)).json()) as Array<{ id: string }>;
  return { id: show.id, seatIds: seats.map((s) => s.id) };
}

/** POST /api/orders, one fresh seat per request, tokens round-robin. */
async function syncOrders(service: BenchService, tokens: string[]): Promise<Measured> {
  const show = await createShow(service, 100, 1000);
  let next = 0;
  return load('POST /api/orders (sync saga)', {
    url: service.url,
    requests: [
      {
        method: 'POST',
        path: '/api/orders',
        setupRequest: (req) => {
          const i = next++;
          return {
            ...req,
            headers: { ...json, Authorization: `Bearer ${tokens[i % tokens.length]}` },
            body: JSON.stringify({ showId: show.id, seatIds: [show.seatIds[i % show.seatIds.length]] }),
          };
        },
      },
    ],
  });
}

/**
 * POST /api/orders/:id/pay: each request pays its own pending order (placed beforehand), buyers
 * round-robin. The pay saga verifies the argon2id pay password (OWASP's minimum: 19 MiB, 2
 * passes) on every pay, by design: that bounds this path.
 */
async function pays(service: BenchService, tokens: string[]): Promise<Measured> {
  for (const token of tokens) {
    const me = (await (await fetch(`${service.url}/api/users/me`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { id: string };
    await post(`${service.url}/api/admin/users/${me.id}/credits`, { amountCents: 100_000_000 }, admin);
  }
  const show = await createShow(service, 20, 50);
  const orders: Array<{ id: string; token: string }> = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (next < show.seatIds.length) {
        const n = next++;
        const token = tokens[n % tokens.length];
        const reply = await post(`${service.url}/api/orders`, { showId: show.id, seatIds: [show.seatIds[n]] }, { ...json, Authorization: `Bearer ${token}` });
        if (reply.status !== 201) throw new Error(`order failed: ${reply.status} ${JSON.stringify(reply.body)}`);
        orders.push({ id: reply.body.id, token });
      }
    }),
  );
  let i = 0;
  const request = {
    method: 'POST' as const,
    setupRequest: (req: any) => {
      const order = orders[i++ % orders.length];
      return { ...req, path: `/api/orders/${order.id}/pay`, headers: { ...json, Authorization: `Bearer ${order.token}` }, body: JSON.stringify({ payPassword: 'bench-pass' }) };
    },
  };
  // Warm-up on the first 200 orders, then the measured run on the rest (each order paid once).
  return load('POST /api/orders/:id/pay (pay saga)', { url: service.url, amount: orders.length - 200, requests: [request] }, { amount: 200 });
}

/**
 * Unpaid orders in a service whose payment window is 2 s: how late after its deadline each
 * order's seats came back (the seat-release of its expiry, database clock), and which trigger
 * expired it.
 */
async function expiryLateness(count: number) {
  const service = await startService('expiry', { PAYMENT_WINDOW_MS: '2000' });
  try {
    const [token] = await createBuyers(service, 1);
    const show = await createShow(service, 10, 50);
    let next = 0;
    const orderIds: string[] = [];
    // Orders placed over ~2 s by 5 clients, so deadlines spread out as in real traffic.
    await Promise.all(
      Array.from({ length: 5 }, async () => {
        while (next < count) {
          const n = next++;
          const reply = await post(`${service.url}/api/orders`, { showId: show.id, seatIds: [show.seatIds[n]] }, { ...json, Authorization: `Bearer ${token}` });
          if (reply.status !== 201) throw new Error(`order failed: ${reply.status}`);
          orderIds.push(reply.body.id);
          await new Promise((resolve) => setTimeout(resolve, 2_000 / (count / 5)));
        }
      }),
    );
    const deadline = Date.now() + 60_000;
    for (;;) {
      const [{ n }] = await service.db('seat_holds').where({ show_id: show.id }).count({ n: '*' });
      if (Number(n) === 0) break;
      if (Date.now() > deadline) throw new Error(`${n} seats still held 60 s after the deadlines`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const rows: Array<{ ms: number }> = await service
      .db('orders')
      .join('sagas', function () {
        this.on('sagas.order_id', '=', 'orders.id').andOn('sagas.type', '=', service.db.raw('?', ['expiry']));
      })
      .join('saga_compensations', 'saga_compensations.saga_id', 'sagas.id')
      .whereIn('orders.id', orderIds)
      .select(service.db.raw('TIMESTAMPDIFF(MICROSECOND, orders.expires_at, saga_compensations.at) / 1000 AS ms'));
    const sorted = rows.map((r) => Number(r.ms)).sort((a, b) => a - b);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    const byTrigger: Record<string, number> = {};
    for (const match of metrics.matchAll(/^seat_saga_orders_expired_total\{trigger="([\w-]+)"\} (\d+)/gm)) byTrigger[match[1]] = Number(match[2]);
    const result = { count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1)!, byTrigger };
    console.log(`expiry: seats back after the deadline over ${result.count} orders: p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, max ${result.max.toFixed(1)} ms; expired by ${JSON.stringify(byTrigger)}`);
    return result;
  } finally {
    await service.stop();
  }
}

/**
 * What bounds the pay path: argon2id verifications per second in one process (the service's hash
 * parameters, libuv's four threads), measured while the service is idle.
 */
async function argon2Ceiling(seconds = 5): Promise<number> {
  const hash = await hashPayPassword('bench-pass');
  let done = 0;
  const until = Date.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (Date.now() < until) {
        await payPasswordMatches(hash, 'bench-pass');
        done++;
      }
    }),
  );
  const perSecond = done / seconds;
  console.log(`argon2id verify (service parameters), one process: ${perSecond.toFixed(0)}/s`);
  return perSecond;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/**
 * 200 sagas failing at order_add (after its effect, so two listeners undo it), sent by
 * `clients` concurrent clients: time from the failure to COMPENSATED.
 */
async function compensationLatency(service: BenchService, tokens: string[], clients: number) {
  const show = await createShow(service, 20, 20);
  // No count: requests of the previous phase may still be finishing and would consume hits.
  const setFailpoint = async (action: 'throw' | 'off') => {
    const res = await fetch(`${service.url}/api/admin/failpoints/order.order_add.after`, { method: 'PUT', headers: admin, body: JSON.stringify({ action }) });
    if (res.status !== 200) throw new Error(`could not set the failpoint: ${res.status}`);
  };
  await setFailpoint('throw');
  const sagaIds: string[] = [];
  let i = 0;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      while (i < FAILING_SAGAS) {
        const n = i++;
        const reply = await post(`${service.url}/api/orders`, { showId: show.id, seatIds: [show.seatIds[n]] }, { ...json, Authorization: `Bearer ${tokens[n % tokens.length]}` });
        if (reply.status !== 500) throw new Error(`expected SAGA_FAILED, got ${reply.status} ${JSON.stringify(reply.body)}`);
        sagaIds.push(reply.body.error.details.sagaId);
      }
    }),
  );
  await setFailpoint('off');
  const deadline = Date.now() + 60_000;
  for (;;) {
    const [{ n }] = await service.db('sagas').whereIn('id', sagaIds).whereNot('status', 'COMPENSATED').count({ n: '*' });
    if (Number(n) === 0) break;
    if (Date.now() > deadline) throw new Error(`${n} sagas not compensated after 60 s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  // Both instants from the database's clock: the failure recorded on the step, the saga's end.
  const rows: Array<{ ms: number }> = await service
    .db('sagas')
    .join('saga_steps', function () {
      this.on('saga_steps.saga_id', '=', 'sagas.id').andOn('saga_steps.status', '=', service.db.raw('?', ['FAILED']));
    })
    .whereIn('sagas.id', sagaIds)
    .select(service.db.raw('TIMESTAMPDIFF(MICROSECOND, saga_steps.finished_at, sagas.finished_at) / 1000 AS ms'));
  const sorted = rows.map((r) => Number(r.ms)).sort((a, b) => a - b);
  const result = { clients, count: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted.at(-1)! };
  console.log(`SAGA_FAILED -> COMPENSATED over ${result.count} sagas from ${clients} client(s): p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, max ${result.max.toFixed(1)} ms`);
  return result;
}

function report(
  rows: Measured[],
  compensations: Array<Awaited<ReturnType<typeof compensationLatency>>>,
  expiry: Awaited<ReturnType<typeof expiryLateness>>,
  argon2PerSecond: number,
) {
  const pay = rows.find((r) => r.name.startsWith('POST /api/orders/:id/pay'));
  const baseline = rows[0].requestsPerSecond;
  const lines = [
    '# seat-saga benchmark results',
    '',
    `Measured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; service and load generator on the same machine; ` +
      `autocannon, ${CONNECTIONS} connections, one request per connection at a time, ${DURATION} s per path after a warm-up.`,
    '',
    'Absolute numbers depend on the machine; the ratio to `GET /livez` (the process alone, no dependency) measured in the same run is the figure to compare.',
    '',
    '| path | req/s | ratio to /livez | p50 ms | p99 ms | requests | non-2xx | errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.requestsPerSecond.toFixed(0)} | ${(r.requestsPerSecond / baseline).toFixed(3)} | ${r.p50} | ${r.p99} | ${r.total} | ${r.non2xx} | ${r.errors} |`,
    ),
    '',
    ...(pay
      ? [
          `The pay path verifies the pay password with argon2id (19 MiB, 2 passes) on every request, by design. ` +
            `argon2id verifications alone, in one process on this machine: ${argon2PerSecond.toFixed(0)}/s; ` +
            `the pay saga reaches ${((pay.requestsPerSecond / argon2PerSecond) * 100).toFixed(0)}% of that ceiling.`,
          '',
        ]
      : []),
    '## Compensation latency',
    '',
    `Order sagas failing at \`order.order_add.after\` (the worst case: seat-release and order-delete both undo): ` +
      'time from the failure recorded in the saga log to the saga COMPENSATED, both instants read from the database clock.',
    '',
    '| failing sagas | concurrent clients | p50 ms | p99 ms | max ms |',
    '| ---: | ---: | ---: | ---: | ---: |',
    ...compensations.map((c) => `| ${c.count} | ${c.clients} | ${c.p50.toFixed(1)} | ${c.p99.toFixed(1)} | ${c.max.toFixed(1)} |`),
    '',
    '## Unpaid-order expiry',
    '',
    `${expiry.count} orders left unpaid in a service with PAYMENT_WINDOW_MS=2000 and every trigger on: time from each order's ` +
      'deadline (`expires_at`) to its seats released (the seat-release record of its expiry), both instants from the database clock.',
    '',
    '| orders | p50 ms | p99 ms | max ms | expired by |',
    '| ---: | ---: | ---: | ---: | --- |',
    `| ${expiry.count} | ${expiry.p50.toFixed(1)} | ${expiry.p99.toFixed(1)} | ${expiry.max.toFixed(1)} | ${Object.entries(expiry.byTrigger).map(([t, n]) => `${t} ${n}`).join(', ')} |`,
    '',
  ];
  const file = path.join(__dirname, 'results.md');
  writeFileSync(file, lines.join('\n'));
  console.log(`\nwrote ${file}`);
  for (const r of rows) console.log(`${r.name.padEnd(32)} ${(r.requestsPerSecond / baseline).toFixed(3)} × /livez`);
}

async function main() {
  const service = await startService('main');
  try {
    const tokens = await createBuyers(service, CONNECTIONS);
    const rows: Measured[] = [];
    rows.push(await load('GET /livez', { url: `${service.url}/livez` }));
    rows.push(await syncOrders(service, tokens));
    rows.push(await pays(service, tokens));
    const compensations = [await compensationLatency(service, tokens, 1), await compensationLatency(service, tokens, 20)];
    await service.stop();
    const argon2PerSecond = await argon2Ceiling();
    const expiry = await expiryLateness(200);
    report(rows, compensations, expiry, argon2PerSecond);
  } finally {
    await service.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
