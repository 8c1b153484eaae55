import autocannon from 'autocannon';
import type { BenchService } from './service';
import { acceptedSoFar, cpuMeter, createShow, describeCpu, json, reservationOutcomes, waitFor, type Measured } from './support';

/**
 * The load the benchmark's sections share: autocannon runs of one path, and the request
 * generators of the paths (sync order saga, async accept, the naive baseline).
 */

export interface LoadSettings {
  connections: number;
  /** Seconds of the measured run. */
  duration: number;
  /** Seconds of warm-up before it (JIT, pools). */
  warmUp: number;
}

/** BENCH_DURATION (s, default 10) and BENCH_CONNECTIONS (default 50): the headline paths' load. */
export const DEFAULT_LOAD: LoadSettings = {
  connections: Number(process.env.BENCH_CONNECTIONS ?? 50),
  duration: Number(process.env.BENCH_DURATION ?? 10),
  warmUp: Math.min(2, Number(process.env.BENCH_DURATION ?? 10)),
};

/**
 * A short warm-up (`warmUp` overrides how long), then the measured run. `options` may set
 * `amount` instead of a duration when each request consumes something prepared beforehand.
 */
export async function load(
  name: string,
  options: autocannon.Options,
  settings: LoadSettings = DEFAULT_LOAD,
  warmUp?: Partial<autocannon.Options>,
): Promise<Measured> {
  const base = { connections: settings.connections, pipelining: 1, duration: settings.duration, ...options };
  if (warmUp || settings.warmUp > 0) await autocannon({ ...base, ...(warmUp ?? { duration: settings.warmUp }) });
  const errorCodes: Record<string, number> = {};
  const cpu = cpuMeter();
  const result = await autocannon({ ...base, requests: base.requests?.map((request) => countingErrors(request, errorCodes)) });
  const measured: Measured = {
    cpu: cpu(),
    name,
    connections: base.connections,
    requestsPerSecond: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    errorCodes,
  };
  console.log(
    `${name} [${base.connections} conn]: ${measured.requestsPerSecond.toFixed(0)} req/s, p50 ${measured.p50} ms, p99 ${measured.p99} ms, non-2xx ${measured.non2xx} ${JSON.stringify(errorCodes)}, errors ${measured.errors}; cores: ${describeCpu(measured.cpu)}`,
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

export async function showWithSeats(service: BenchService, rows: number, seatsPerRow: number): Promise<{ id: string; seatIds: string[] }> {
  const id = await createShow(service, rows, seatsPerRow);
  const seats = (await (await fetch(`${service.url}/api/shows/${id}/seats`)).json()) as Array<{ id: string }>;
  return { id, seatIds: seats.map((s) => s.id) };
}

/** Free seats to order one at a time, a new 100,000-seat show whenever one runs out. */
export class SeatSource {
  private show: { id: string; seatIds: string[] } | null = null;
  private next = 0;
  constructor(private readonly service: BenchService) {}

  /** Makes sure `count` more seats are there before a run (setupRequest cannot wait for a show). */
  async reserve(count: number): Promise<void> {
    if (count > 100_000) throw new Error(`at most 100,000 seats per run, not ${count}`);
    if (!this.show || this.show.seatIds.length - this.next < count) {
      this.show = await showWithSeats(this.service, 100, 1000);
      this.next = 0;
    }
  }

  take(): { showId: string; seatId: string } {
    const show = this.show!;
    const seatId = show.seatIds[this.next++ % show.seatIds.length];
    return { showId: show.id, seatId };
  }
}

/** POST /api/orders, one fresh seat per request, tokens round-robin. `expectedRate` bounds the seats needed. */
export async function syncOrders(
  service: BenchService,
  tokens: string[],
  seats: SeatSource,
  settings: LoadSettings = DEFAULT_LOAD,
  name = 'POST /api/orders (sync saga)',
  expectedRate = 2_000,
): Promise<Measured> {
  await seats.reserve(Math.min(100_000, Math.ceil(expectedRate * (settings.duration + settings.warmUp) * 1.5)));
  let next = 0;
  return load(
    name,
    {
      url: service.url,
      requests: [
        {
          method: 'POST',
          path: '/api/orders',
          setupRequest: (req) => {
            const { showId, seatId } = seats.take();
            return {
              ...req,
              headers: { ...json, Authorization: `Bearer ${tokens[next++ % tokens.length]}` },
              body: JSON.stringify({ showId, seatIds: [seatId] }),
            };
          },
        },
      ],
    },
    settings,
  );
}

/**
 * POST /api/orders/async `{showId, quantity: 1}` to the API at `url`: accepted (202) once the seats
 * are reserved in Redis and the order message is confirmed by RabbitMQ. Every request comes from a
 * buyer who has not ordered for its show yet (a repeat within REPEAT_SUBMIT_WINDOW_MS is refused),
 * on shows that cannot sell out: `planned` requests at most. The service's consumer persists the
 * orders meanwhile; the next path is measured once that work is done.
 */
export async function asyncOrders(
  service: BenchService,
  url: string,
  name: string,
  buyers: string[],
  planned: number,
  settings: LoadSettings = DEFAULT_LOAD,
): Promise<Measured> {
  const showIds: string[] = [];
  while (showIds.length * buyers.length < planned) showIds.push(await createShow(service, Math.ceil(buyers.length / 1000), 1000));
  let next = 0;
  const acceptedBefore = await acceptedSoFar(url);
  const measured = await load(
    name,
    {
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
    },
    settings,
  );
  // The API's own count: the clients stop listening at the end of the run, some answers still on their way.
  const accepted = async () => (await acceptedSoFar(url)) - acceptedBefore;
  // Quiet again once every order is resolved and the expiry messages their commits wrote to the outbox are published.
  const unsent = async () => Number((await service.db('outbox').whereNull('sent_at').count({ n: '*' }))[0].n);
  await waitFor(
    'every accepted async order resolved, the outbox empty',
    async () => (await reservationOutcomes(service, showIds)).resolved >= (await accepted()) && (await unsent()) === 0,
    180_000,
  );
  const { persisted, released } = await reservationOutcomes(service, showIds);
  measured.note = `${await accepted()} orders accepted (warm-up included); persisted by the role-all process: ${persisted}; released: ${describe(released)}`;
  return measured;
}

/** POSTs of one body, each request from the next buyer in turn. */
export function sameBodyRotatingBuyers(path: string, body: string, tokens: string[]): autocannon.Request[] {
  let next = 0;
  return [{ method: 'POST', path, setupRequest: (req) => ({ ...req, headers: { ...json, Authorization: `Bearer ${tokens[next++ % tokens.length]}` }, body }) }];
}

export const NAIVE_NAME = 'naive: 1 transaction, SELECT … FOR UPDATE';

/** The naive baseline's POST /api/orders at `url` (bench/naive-server.ts, started by the caller). */
export function naiveOrders(naive: { url: string; showId: string }, tokens: string[], settings: LoadSettings = DEFAULT_LOAD): Promise<Measured> {
  const body = JSON.stringify({ showId: naive.showId, quantity: 1 });
  return load(NAIVE_NAME, { url: naive.url, requests: sameBodyRotatingBuyers('/api/orders', body, tokens) }, settings);
}

/** `{a: 1, b: 2}` as "a 1, b 2"; "none" when empty. */
export const describe = (counts: Record<string, number>) =>
  Object.entries(counts)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ') || 'none';

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[(sorted.length - 1) / 2] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
};
