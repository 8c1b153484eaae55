import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import autocannon from 'autocannon';
import { hashPayPassword, payPasswordMatches } from '../src/users/users';
import { renderChart } from './chart';
import { drainAlone, flashSale, type FlashSale } from './flash-sale';
import { insertBuyers, startNaiveBaseline, startService, type BenchService } from './service';
import { acceptedSoFar, admin, asyncAccepts, cpuMeter, createShow, describeCpu, json, percentile, post, reservationOutcomes, waitFor, type Measured } from './support';

/**
 * `npm run bench`: every path measured in one run on one machine, each as a ratio to GET /livez
 * measured in the same run (these machines are noisy; ratios travel, absolute numbers do not),
 * then the flash sale and the order consumer alone. Settings: BENCH_DURATION (s, default 10),
 * BENCH_CONNECTIONS (default 50); the flash sale's BENCH_FLASH_SEATS (10000), BENCH_FLASH_REQUESTS
 * (50000), BENCH_FLASH_CONNECTIONS (200); BENCH_DRAIN_ORDERS (20000), the orders the consumer
 * drains alone. Writes bench/results.md and bench/results.svg.
 */
const DURATION = Number(process.env.BENCH_DURATION ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 50);
const WARM_UP = Math.min(2, DURATION);
const FLASH = {
  seats: Number(process.env.BENCH_FLASH_SEATS ?? 10_000),
  requests: Number(process.env.BENCH_FLASH_REQUESTS ?? 50_000),
  connections: Number(process.env.BENCH_FLASH_CONNECTIONS ?? 200),
};
const DRAIN_ORDERS = Number(process.env.BENCH_DRAIN_ORDERS ?? 20_000);
const FAILING_SAGAS = 200;
/** The most seats a show may have (rows × seatsPerRow). */
const MAX_SHOW_SEATS = 100_000;

/**
 * A short warm-up (JIT, pools; `warmUp` overrides how long), then the measured run. `options` may
 * set `amount` instead of a duration when each request consumes something prepared beforehand.
 */
async function load(name: string, options: autocannon.Options, warmUp: Partial<autocannon.Options> = { duration: WARM_UP }): Promise<Measured> {
  const settings = { connections: CONNECTIONS, pipelining: 1, duration: DURATION, ...options };
  await autocannon({ ...settings, ...warmUp });
  const errorCodes: Record<string, number> = {};
  const cpu = cpuMeter();
  const result = await autocannon({ ...settings, requests: settings.requests?.map((request) => countingErrors(request, errorCodes)) });
  const measured: Measured = {
    cpu: cpu(),
    name,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    errorCodes,
  };
  console.log(
    `${name}: ${measured.requestsPerSecond.toFixed(0)} req/s, p50 ${measured.p50} ms, p99 ${measured.p99} ms, non-2xx ${measured.non2xx} ${JSON.stringify(errorCodes)}, errors ${measured.errors}; cores: ${describeCpu(measured.cpu)}`,
  );
  return measured;
}

/** `request`, also counting its non-2xx answers into `counts` by status and error code. */
function countingErrors(request: autocannon.Request, counts: Record<string, number>): autocannon.Request {
  return {
    ...request,
    onResponse: (status, body, context, headers) => {
      if (status >= 300) {
        const key = `${status} ${/"code":"(\w+)"/.exec(body)?.[1] ?? '?'}`;
        counts[key] = (counts[key] ?? 0) + 1;
      }
      if (typeof request.onResponse === 'function') request.onResponse(status, body, context, headers);
    },
  };
}

async function showWithSeats(service: BenchService, rows: number, seatsPerRow: number): Promise<{ id: string; seatIds: string[] }> {
  const id = await createShow(service, rows, seatsPerRow);
  const seats = (await (await fetch(`${service.url}/api/shows/${id}/seats`)).json()) as Array<{ id: string }>;
  return { id, seatIds: seats.map((s) => s.id) };
}

/** POST /api/orders, one fresh seat per request, tokens round-robin. */
async function syncOrders(service: BenchService, tokens: string[]): Promise<Measured> {
  const show = await showWithSeats(service, 100, 1000);
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
 * POST /api/orders/async `{showId, quantity: 1}` to the API at `url`: accepted (202) once the seats
 * are reserved in Redis and the order message is confirmed by RabbitMQ. Every request comes from a
 * buyer who has not ordered for its show yet (a repeat within REPEAT_SUBMIT_WINDOW_MS is refused),
 * on shows that cannot sell out: `planned` requests at most. The service's consumer persists the
 * orders meanwhile; the next path is measured once that work is done.
 */
async function asyncOrders(service: BenchService, url: string, name: string, buyers: string[], planned: number): Promise<Measured> {
  const showIds: string[] = [];
  while (showIds.length * buyers.length < planned) showIds.push(await createShow(service, Math.ceil(buyers.length / 1000), 1000));
  let next = 0;
  const acceptedBefore = await acceptedSoFar(url);
  const measured = await load(name, {
    url,
    requests: [
      {
        method: 'POST',
        path: '/api/orders/async',
        setupRequest: (req) => {
          // Past `planned`, buyers would order again: 409 DUPLICATE_REQUEST in the row's non-2xx.
          const i = next++ % planned;
          return {
            ...req,
            headers: { ...json, Authorization: `Bearer ${buyers[i % buyers.length]}` },
            body: JSON.stringify({ showId: showIds[Math.floor(i / buyers.length)], quantity: 1 }),
          };
        },
      },
    ],
  });
  // The API's own count: the clients stop listening at the end of the run, some answers still on their way.
  const accepted = async () => (await acceptedSoFar(url)) - acceptedBefore;
  // Quiet again once every order is resolved and the expiry messages their commits wrote to the outbox are published.
  const unsent = async () => Number((await service.db('outbox').whereNull('sent_at').count({ n: '*' }))[0].n);
  await waitFor('every accepted async order resolved, the outbox empty', async () => (await reservationOutcomes(service, showIds)).resolved >= (await accepted()) && (await unsent()) === 0, 120_000);
  const { persisted, released } = await reservationOutcomes(service, showIds);
  measured.note = `${await accepted()} orders accepted (warm-up included); persisted by the role-all process: ${persisted}; released: ${describe(released)}`;
  return measured;
}

/** POSTs of one body, each request from the next buyer in turn. */
function sameBodyRotatingBuyers(path: string, body: string, tokens: string[]): autocannon.Request[] {
  let next = 0;
  return [
    {
      method: 'POST',
      path,
      setupRequest: (req) => ({ ...req, headers: { ...json, Authorization: `Bearer ${tokens[next++ % tokens.length]}` }, body }),
    },
  ];
}

/**
 * POST /api/orders/async on a sold-out show: 409 SOLD_OUT is the expected answer, mostly from the
 * process's sold-out cache (Redis is asked again every SOLD_OUT_CACHE_MS).
 */
async function soldOutRejections(service: BenchService, tokens: string[]): Promise<Measured> {
  const showId = await createShow(service, 1, 1);
  const body = JSON.stringify({ showId, quantity: 1 });
  const last = await post(`${service.url}/api/orders/async`, { showId, quantity: 1 }, { ...json, Authorization: `Bearer ${tokens[0]}` });
  if (last.status !== 202) throw new Error(`could not buy the last seat: ${last.status} ${JSON.stringify(last.body)}`);
  const measured = await load('POST /api/orders/async (sold out)', {
    url: service.url,
    requests: sameBodyRotatingBuyers('/api/orders/async', body, tokens),
  });
  const allSoldOut = measured.non2xx === measured.total && Object.keys(measured.errorCodes).join() === '409 SOLD_OUT';
  measured.note = allSoldOut
    ? `all ${measured.total} answers 409 SOLD_OUT, as expected`
    : `FAIL: expected only 409 SOLD_OUT, got ${JSON.stringify(measured.errorCodes)} in ${measured.total} answers`;
  if (!allSoldOut) console.log(measured.note);
  return measured;
}

/**
 * The naive baseline (bench/naive-server.ts): the same request, one transaction per order on the
 * show's stock row, which never runs out during the run.
 */
async function naiveOrders(tokens: string[]): Promise<Measured> {
  const naive = await startNaiveBaseline(1_000_000_000);
  try {
    const body = JSON.stringify({ showId: naive.showId, quantity: 1 });
    const measured = await load('naive: 1 transaction, SELECT … FOR UPDATE', {
      url: naive.url,
      requests: sameBodyRotatingBuyers('/api/orders', body, tokens),
    });
    measured.note =
      'bench/naive-server.ts, its own process and database: the same request (`{showId, quantity}`, the same HMAC bearer check, zod ' +
      'validation) answered by one MySQL transaction per order: `SELECT available … FOR UPDATE` on the show\'s stock row, `UPDATE`, `INSERT` the order, `COMMIT`';
    return measured;
  } finally {
    await naive.stop();
  }
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
  const show = await showWithSeats(service, 20, 50);
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
    const [token] = await insertBuyers(service, 1);
    const show = await showWithSeats(service, 10, 50);
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

/**
 * 200 sagas failing at order_add (after its effect, so two listeners undo it), sent by
 * `clients` concurrent clients: time from the failure to COMPENSATED.
 */
async function compensationLatency(service: BenchService, tokens: string[], clients: number) {
  const show = await showWithSeats(service, 20, 20);
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

interface Results {
  rows: Measured[];
  compensations: Array<Awaited<ReturnType<typeof compensationLatency>>>;
  expiry: Awaited<ReturnType<typeof expiryLateness>>;
  argon2PerSecond: number;
  flashSales: FlashSale[];
  drain: Awaited<ReturnType<typeof drainAlone>>;
}

interface Target {
  target: string;
  measured: string;
  pass: boolean;
  /** How far from the target, when missed. */
  shortBy?: string;
}

/** The issue's targets, each as a ratio of this run (or an exact count); the async accept ones for each async accept row. */
function targets({ rows, flashSales, drain }: Results): Target[] {
  const rate = (prefix: string) => rows.find((r) => r.name.startsWith(prefix))!.requestsPerSecond;
  const livez = rate('GET /livez');
  const ratio = (target: string, measured: number, required: number): Target => ({
    target,
    measured: `${measured.toFixed(2)} ×`,
    pass: measured >= required,
    ...(measured < required ? { shortBy: `${(100 * (1 - measured / required)).toFixed(0)}% short of ${required} ×` } : {}),
  });
  const exactly = (target: string, measured: number, required: number): Target => ({
    target,
    measured: String(measured),
    pass: measured === required,
    ...(measured !== required ? { shortBy: `${measured > required ? '+' : ''}${measured - required}` } : {}),
  });
  const accepts = asyncAccepts(rows);
  return [
    ...accepts.map((a) => ratio(`async accept ≥ 0.6 × /livez (${a.deployment})`, a.requestsPerSecond / livez, 0.6)),
    // Accepting while no consumer shares the two cores: the orders wait in RabbitMQ (the consumer-alone phase's first half).
    ratio('async accept ≥ 0.6 × /livez (API process, no consumer running)', drain.acceptPerSecond / livez, 0.6),
    ratio('sold-out rejections ≥ 0.9 × /livez', rate('POST /api/orders/async (sold out)') / livez, 0.9),
    ...accepts.map((a) => ratio(`async accept ≥ 5 × naive baseline (${a.deployment})`, a.requestsPerSecond / rate('naive'), 5)),
    ratio('async accept ≥ 5 × naive baseline (API process, no consumer running)', drain.acceptPerSecond / rate('naive'), 5),
    ...accepts.map((a) => ratio(`consumer alone drains ≥ 2 × async accept (${a.deployment})`, drain.consumer.perSecond / a.requestsPerSecond, 2)),
    ...flashSales.flatMap((sale) => [
      exactly(`flash sale, ${sale.deployment}: sold exactly ${sale.seats} seats`, sale.sold, sale.seats),
      exactly(`flash sale, ${sale.deployment}: seats sold twice`, sale.soldTwice, 0),
      exactly(`flash sale, ${sale.deployment}: stale drops`, sale.staleDrops, 0),
    ]),
  ];
}

function report(results: Results) {
  const { rows, compensations, expiry, argon2PerSecond, flashSales, drain } = results;
  const pay = rows.find((r) => r.name.startsWith('POST /api/orders/:id/pay'));
  const baseline = rows[0].requestsPerSecond;
  const checked = targets(results);
  const count = (n: number) => n.toLocaleString('en-US');
  const lines = [
    '# seat-saga benchmark results',
    '',
    `Measured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${os.cpus()[0]?.model.trim()}, ` +
      `${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}; service, its databases and the load generator on the same machine; ` +
      `autocannon, ${CONNECTIONS} connections, one request per connection at a time, ${DURATION} s per path after a ${WARM_UP} s warm-up.`,
    '',
    'Absolute numbers depend on the machine; the ratio to `GET /livez` (the process alone, no dependency) measured in the same run is the figure to compare.',
    '',
    '![requests per second of each path, flash-sale persistence and drain rates](results.svg)',
    '',
    `| path | req/s | ratio to /livez | p50 ms | p99 ms | requests | non-2xx | errors | cores busy during the run (of ${os.cpus().length}) |`,
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
    ...rows.map(
      (r) =>
        `| ${r.name} | ${r.requestsPerSecond.toFixed(0)} | ${(r.requestsPerSecond / baseline).toFixed(3)} | ${r.p50} | ${r.p99} | ${r.total} | ${r.non2xx} | ${r.errors} | ${describeCpu(r.cpu)} |`,
    ),
    '',
    `Cores busy: CPU time each group of processes used during the measured run, from /proc (1.00 = one core all the time; this machine has ${os.cpus().length}). ` +
      '"seat-saga" is every process of the service under test (API and consumer alike), "load generator" this benchmark\'s autocannon.',
    '',
    ...rows.filter((r) => r.note).map((r) => `- ${r.name}: ${r.note}.`),
    ...(pay
      ? [
          `- The pay path verifies the pay password with argon2id (19 MiB, 2 passes) on every request, by design. ` +
            `argon2id verifications alone, in one process on this machine: ${argon2PerSecond.toFixed(0)}/s; ` +
            `the pay saga reaches ${((pay.requestsPerSecond / argon2PerSecond) * 100).toFixed(0)}% of that ceiling.`,
        ]
      : []),
    '',
    '## Targets',
    '',
    '| target | measured | result |',
    '| --- | ---: | --- |',
    ...checked.map((t) => `| ${t.target} | ${t.measured} | ${t.pass ? 'pass' : `**miss**: ${t.shortBy}`} |`),
    '',
    '## Flash sale',
    '',
    `A fresh service, one show of ${count(FLASH.seats)} seats, ${count(FLASH.requests)} POST /api/orders/async \`{showId, quantity: 1}\`, each from a ` +
      `different buyer, fired by ${FLASH.connections} connections as fast as they are answered, without warm-up; once with the contract's roles in ` +
      'two processes (one API, one worker), once in one process (role all, as `npm start` runs). Then, once every accepted order is resolved, ' +
      'from the database (`reservations`, `seat_holds`, `order_seats`): stale drops are the reservations released as stale (what ' +
      'the workers\' seat_saga_async_orders_stale_dropped_total counts); lag is from the reservation (the 202) to the insert of its outcome in the persisting transaction; drain time from the last ' +
      'reservation to the last commit; the accept rate counts 202s from the first to the last, as the clients saw them; the consumer rate, ' +
      'orders persisted per second from its first commit to its last.',
    '',
    '| deployment | 202 accepted | 409 SOLD_OUT | other answers | sold (seat holds) | sold twice | stale drops | released | lag p50 ms | lag p99 ms | lag max ms | accept rate /s | drain time ms | consumer rate /s |',
    '| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...flashSales.map(
      (sale) =>
        `| ${sale.deployment} | ${count(sale.accepted)} | ${count(sale.soldOut)} | ${describe(sale.others)} | ${count(sale.sold)} | ${sale.soldTwice} | ` +
        `${sale.staleDrops} | ${describe(sale.released)} | ${sale.lag.p50.toFixed(0)} | ${sale.lag.p99.toFixed(0)} | ${sale.lag.max.toFixed(0)} | ` +
        `${sale.acceptPerSecond.toFixed(0)} | ${sale.drainMs.toFixed(0)} | ${sale.consumer.perSecond.toFixed(0)} |`,
    ),
    '',
    'In a sale the consumer can only persist what arrives, so its rate there is bounded by the accept rate ' +
      `(${flashSales.map((sale) => `${(sale.consumer.perSecond / sale.acceptPerSecond).toFixed(2)} × with ${sale.deployment}`).join(', ')}). ` +
      'Its own speed is measured next.',
    '',
    '## The consumer alone',
    '',
    `${count(DRAIN_ORDERS)} async orders accepted by an API process with no consumer anywhere (ORDER_MAX_QUEUE_DELAY_MS=600000, so that none goes stale), ` +
      `from ${CONNECTIONS} connections; then one worker process started on the same database and namespace, timed from its first commit to its last.`,
    '',
    `| orders | persisted | consumer rate /s | accept rate of that API process /s | ${asyncAccepts(rows).map((a) => `× async accept (${a.deployment})`).join(' | ')} |`,
    `| ---: | ---: | ---: | ---: | ${asyncAccepts(rows).map(() => '---:').join(' | ')} |`,
    `| ${count(DRAIN_ORDERS)} | ${count(drain.consumer.persisted)} | ${drain.consumer.perSecond.toFixed(0)} | ${drain.acceptPerSecond.toFixed(0)} | ` +
      `${asyncAccepts(rows).map((a) => (drain.consumer.perSecond / a.requestsPerSecond).toFixed(2)).join(' | ')} |`,
    '',
    `Cores busy while that API process accepted with no consumer running: ${describeCpu(drain.acceptCpu)}. ` +
      `While the worker drained (from its start): ${describeCpu(drain.drainCpu)}.`,
    '',
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
    `| ${expiry.count} | ${expiry.p50.toFixed(1)} | ${expiry.p99.toFixed(1)} | ${expiry.max.toFixed(1)} | ${describe(expiry.byTrigger)} |`,
    '',
  ];
  const markdown = lines.join('\n');
  writeFileSync(path.join(__dirname, 'results.md'), markdown);
  writeFileSync(path.join(__dirname, 'results.svg'), renderChart({ rows, flashSales, consumerAlone: { orders: DRAIN_ORDERS, perSecond: drain.consumer.perSecond } }));
  console.log(`\n${markdown}\nwrote bench/results.md and bench/results.svg`);
  for (const t of checked.filter((t) => !t.pass)) console.log(`FAIL: ${t.target}: ${t.measured} (${t.shortBy})`);
  for (const r of rows.filter((r) => !r.name.endsWith('(sold out)') && r.non2xx + r.errors > 0)) {
    console.log(`FAIL: ${r.name}: ${r.non2xx} non-2xx ${JSON.stringify(r.errorCodes)}, ${r.errors} errors`);
  }
}

/** `{a: 1, b: 2}` as "a 1, b 2"; "none" when empty. */
const describe = (counts: Record<string, number>) => Object.entries(counts).map(([k, n]) => `${k} ${n}`).join(', ') || 'none';

async function main() {
  const service = await startService('main');
  let results: Omit<Results, 'flashSales' | 'drain'>;
  try {
    const tokens = await insertBuyers(service, CONNECTIONS);
    const rows: Measured[] = [];
    const livez = await load('GET /livez', { url: `${service.url}/livez` });
    rows.push(livez);
    rows.push(await syncOrders(service, tokens));
    // Enough buyers and seats that none orders twice for a show, whatever the rate (/livez's bounds it).
    const planned = Math.ceil(livez.requestsPerSecond * (DURATION + WARM_UP) * 1.25);
    const buyers = await insertBuyers(service, Math.min(planned, MAX_SHOW_SEATS));
    rows.push(await asyncOrders(service, service.url, 'POST /api/orders/async (accept, role all)', buyers, planned));
    // The contract's scaled deployment: the API in its own process, the consumer in another (here the role-all one).
    const api = await service.spawn('api');
    rows.push(await asyncOrders(service, api.url!, 'POST /api/orders/async (accept, API process)', buyers, planned));
    await api.stop();
    rows.push(await soldOutRejections(service, tokens));
    rows.push(await pays(service, tokens));
    const compensations = [await compensationLatency(service, tokens, 1), await compensationLatency(service, tokens, 20)];
    await service.stop();
    rows.push(await naiveOrders(tokens));
    const argon2PerSecond = await argon2Ceiling();
    const expiry = await expiryLateness(200);
    results = { rows, compensations, expiry, argon2PerSecond };
  } finally {
    await service.stop();
  }
  const flashSales: FlashSale[] = [];
  for (const deployment of ['API process + worker process', 'one process (role all)'] as const) {
    console.log(`flash sale, ${deployment}: ${FLASH.requests} requests for ${FLASH.seats} seats from ${FLASH.connections} connections`);
    flashSales.push(await flashSale(FLASH.seats, FLASH.requests, FLASH.connections, deployment));
  }
  console.log(`the consumer alone: ${DRAIN_ORDERS} orders`);
  const drain = await drainAlone(DRAIN_ORDERS, CONNECTIONS);
  report({ ...results, flashSales, drain });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
