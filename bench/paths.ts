import { hashPayPassword, payPasswordMatches } from '../src/users/users';
import { DEFAULT_LOAD, load, sameBodyRotatingBuyers, showWithSeats } from './load';
import { insertBuyers, startService, type BenchService } from './service';
import { admin, createShow, json, percentile, post, type Measured } from './support';

/** The paths measured once each at the headline load (the "paths" section) and the latency sections (compensation, expiry). */

const FAILING_SAGAS = Number(process.env.BENCH_FAILING_SAGAS ?? 200);

/**
 * POST /api/orders/async on a sold-out show: 409 SOLD_OUT is the expected answer, mostly from the
 * process's sold-out cache (Redis is asked again every SOLD_OUT_CACHE_MS).
 */
export async function soldOutRejections(service: BenchService, tokens: string[]): Promise<Measured> {
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
 * POST /api/orders/:id/pay: each request pays its own pending order (placed beforehand), buyers
 * round-robin. The pay saga verifies the argon2id pay password (OWASP's minimum: 19 MiB, 2
 * passes) on every pay, by design: that bounds this path.
 */
export async function pays(service: BenchService, tokens: string[]): Promise<Measured> {
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
      return {
        ...req,
        path: `/api/orders/${order.id}/pay`,
        headers: { ...json, Authorization: `Bearer ${order.token}` },
        body: JSON.stringify({ payPassword: 'bench-pass' }),
      };
    },
  };
  // Warm-up on the first 200 orders, then the measured run on the rest (each order paid once).
  return load('POST /api/orders/:id/pay (pay saga)', { url: service.url, amount: orders.length - 200, requests: [request] }, DEFAULT_LOAD, { amount: 200 });
}

/**
 * Unpaid orders in a service whose payment window is 2 s: how late after its deadline each
 * order's seats came back (the seat-release of its expiry, database clock), and which trigger
 * expired it.
 */
export async function expiryLateness(count: number) {
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
    console.log(
      `expiry: seats back after the deadline over ${result.count} orders: p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, max ${result.max.toFixed(1)} ms; expired by ${JSON.stringify(byTrigger)}`,
    );
    return result;
  } finally {
    await service.stop();
  }
}

/**
 * What bounds the pay path: argon2id verifications per second in one process (the service's hash
 * parameters, libuv's four threads), measured while the service is idle.
 */
export async function argon2Ceiling(seconds = 5): Promise<number> {
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
export async function compensationLatency(service: BenchService, tokens: string[], clients: number) {
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
        const reply = await post(
          `${service.url}/api/orders`,
          { showId: show.id, seatIds: [show.seatIds[n]] },
          { ...json, Authorization: `Bearer ${tokens[n % tokens.length]}` },
        );
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
  console.log(
    `SAGA_FAILED -> COMPENSATED over ${result.count} sagas from ${clients} client(s): p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms, max ${result.max.toFixed(1)} ms`,
  );
  return result;
}

export type CompensationLatency = Awaited<ReturnType<typeof compensationLatency>>;
export type ExpiryLateness = Awaited<ReturnType<typeof expiryLateness>>;

/** The compensation section: its own service, FAILING_SAGAS failing sagas from 1 client, then from 20. */
export async function compensationSection(): Promise<CompensationLatency[]> {
  const service = await startService('compensation');
  try {
    const tokens = await insertBuyers(service, 20);
    return [await compensationLatency(service, tokens, 1), await compensationLatency(service, tokens, 20)];
  } finally {
    await service.stop();
  }
}
