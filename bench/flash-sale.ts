import autocannon from 'autocannon';
import { insertBuyers, startService, type BenchService } from './service';
import { cpuMeter, createShow, json, percentile, reservationOutcomes, waitFor, type CpuSplit } from './support';

/** How the service runs in the sale: the contract's roles in two processes, or everything in one. */
export type Deployment = 'API process + worker process' | 'one process (role all)';

/** What the flash sale sold, refused and dropped, and how persistence kept up. */
export interface FlashSale {
  deployment: Deployment;
  seats: number;
  requests: number;
  connections: number;
  accepted: number;
  soldOut: number;
  /** Every other answer, by status and error code. */
  others: Record<string, number>;
  /** Seat holds of the show in the database. */
  sold: number;
  /** Seats in more than one order. */
  soldTwice: number;
  /** Reservations released as stale (queued longer than ORDER_MAX_QUEUE_DELAY_MS): what the worker's stale-drop counter counts. */
  staleDrops: number;
  /** Reservations released, by reason. */
  released: Record<string, number>;
  /** Time from the 202 to the persisting transaction, over the persisted orders. */
  lag: { p50: number; p99: number; max: number };
  /** 202s per second, from the first 202 to the last, as the clients saw them. */
  acceptPerSecond: number;
  /** From the last reservation to the last commit. */
  drainMs: number;
  consumer: Persisting;
}

/** The consumer at work, from the database's record of each reservation's outcome. */
interface Persisting {
  persisted: number;
  /** Orders persisted per second between the first and the last commit (the first batch's excluded: it took no time to count). */
  perSecond: number;
}

/**
 * The flash sale of the issue: a fresh service in `deployment`, one show, every request from a
 * different buyer asking for one seat, all fired by `connections` clients as fast as they are
 * answered, without warm-up. Afterwards, once every accepted order is resolved, from the database:
 * what was sold (exactly the seats, none twice), what was dropped (stale drops are the reservations
 * released as stale, what a worker's stale-drop counter counts), how long persistence lagged behind the 202s and
 * how fast the consumer drained. In the sale the consumer's rate is bounded by the rate orders
 * arrive at: drainAlone measures its own.
 */
export async function flashSale(seats: number, requests: number, connections: number, deployment: Deployment): Promise<FlashSale> {
  const inOneProcess = deployment === 'one process (role all)';
  const service = await startService(inOneProcess ? 'flash-all' : 'flash', {}, inOneProcess ? 'all' : 'api');
  try {
    if (!inOneProcess) await service.spawn('worker');
    const buyers = await insertBuyers(service, requests);
    const showId = await createShow(service, ...grid(seats));
    const answers = await fire(service, showId, buyers, connections);
    const accepted = answers.counts['202'] ?? 0;
    await waitFor('every accepted order persisted or released', async () => (await reservationOutcomes(service, [showId])).resolved >= accepted, 180_000);

    const db = service.db;
    const [[sold], [orderSeats], [last], lags, consumer, { released }] = await Promise.all([
      db('seat_holds').where({ show_id: showId }).count({ n: '*' }),
      db('order_seats')
        .join('orders', 'orders.id', 'order_seats.order_id')
        .where('orders.show_id', showId)
        .select(db.raw('COUNT(*) AS n, COUNT(DISTINCT order_seats.seat_id) AS distinctSeats')),
      db('reservations').where({ show_id: showId }).select(db.raw('TIMESTAMPDIFF(MICROSECOND, MAX(reserved_at), MAX(resolved_at)) / 1000 AS ms')),
      lagsOf(service, showId),
      persisting(service, showId),
      reservationOutcomes(service, [showId]),
    ]);
    return {
      deployment,
      seats,
      requests,
      connections,
      accepted,
      soldOut: answers.counts['409 SOLD_OUT'] ?? 0,
      others: Object.fromEntries(Object.entries(answers.counts).filter(([answer]) => answer !== '202' && answer !== '409 SOLD_OUT')),
      sold: Number(sold.n),
      soldTwice: Number(orderSeats.n) - Number(orderSeats.distinctSeats),
      staleDrops: released.stale ?? 0,
      released,
      lag: { p50: percentile(lags, 50), p99: percentile(lags, 99), max: lags.at(-1)! },
      acceptPerSecond: accepted / ((answers.lastAccepted - answers.firstAccepted) / 1000),
      drainMs: Number(last.ms),
      consumer,
    };
  } finally {
    await service.stop();
  }
}

/**
 * The consumer alone: `orders` accepted by an API process with no worker (messages may wait
 * 10 minutes), then one worker started on the same database and namespace, timed until all are
 * persisted. Also returns the accept rate of that API-only process.
 */
export async function drainAlone(
  orders: number,
  connections: number,
): Promise<{ consumer: Persisting; acceptPerSecond: number; acceptCpu: CpuSplit; drainCpu: CpuSplit }> {
  const service = await startService('drain', { ORDER_MAX_QUEUE_DELAY_MS: '600000', RESERVATION_RECONCILE_AFTER_MS: '700000' }, 'api');
  try {
    const buyers = await insertBuyers(service, orders);
    const showId = await createShow(service, ...grid(orders));
    const accepting = cpuMeter();
    const answers = await fire(service, showId, buyers, connections);
    const acceptCpu = accepting();
    if (answers.counts['202'] !== orders) throw new Error(`the drain run needs ${orders} accepted orders, got ${JSON.stringify(answers.counts)}`);
    await service.spawn('worker');
    // From the worker's start: its start-up (a second or two) is in the figure, the idle after the last commit mostly not.
    const draining = cpuMeter();
    await waitFor('the worker persisting every order', async () => (await reservationOutcomes(service, [showId])).resolved >= orders, 300_000);
    const drainCpu = draining();
    const consumer = await persisting(service, showId);
    if (consumer.persisted !== orders) throw new Error(`the worker persisted ${consumer.persisted} of ${orders} orders`);
    return { consumer, acceptPerSecond: orders / ((answers.lastAccepted - answers.firstAccepted) / 1000), acceptCpu, drainCpu };
  } finally {
    await service.stop();
  }
}

/** Rows × seats per row (at most 1,000 each) for a show of `seats` seats. */
function grid(seats: number): [rows: number, seatsPerRow: number] {
  const seatsPerRow = 100;
  if (seats % seatsPerRow !== 0 || seats / seatsPerRow > 1_000) throw new Error(`a bench show has a multiple of 100 seats, at most 100,000: not ${seats}`);
  return [seats / seatsPerRow, seatsPerRow];
}

/** One POST /api/orders/async `{showId, quantity: 1}` per buyer; answers by status and error code. */
async function fire(service: BenchService, showId: string, buyers: string[], connections: number) {
  const counts: Record<string, number> = {};
  let firstAccepted = 0;
  let lastAccepted = 0;
  let next = 0;
  const body = JSON.stringify({ showId, quantity: 1 });
  await autocannon({
    url: service.url,
    connections,
    pipelining: 1,
    amount: buyers.length,
    requests: [
      {
        method: 'POST',
        path: '/api/orders/async',
        setupRequest: (req) => ({ ...req, headers: { ...json, Authorization: `Bearer ${buyers[next++]}` }, body }),
        onResponse: (status, answer) => {
          const key = status < 300 ? String(status) : `${status} ${/"code":"(\w+)"/.exec(answer)?.[1] ?? '?'}`;
          counts[key] = (counts[key] ?? 0) + 1;
          if (status === 202) {
            lastAccepted = Date.now();
            firstAccepted ||= lastAccepted;
          }
        },
      },
    ],
  });
  console.log(`  ${buyers.length} requests from ${connections} connections: ${JSON.stringify(counts)}`);
  return { counts, firstAccepted, lastAccepted };
}

async function lagsOf(service: BenchService, showId: string): Promise<number[]> {
  const rows: Array<{ ms: string }> = await service
    .db('reservations')
    .where({ show_id: showId, outcome: 'PERSISTED' })
    .select(service.db.raw('TIMESTAMPDIFF(MICROSECOND, reserved_at, resolved_at) / 1000 AS ms'));
  return rows.map((r) => Number(r.ms)).sort((a, b) => a - b);
}

async function persisting(service: BenchService, showId: string): Promise<Persisting> {
  const persisted = service.db('reservations').where({ show_id: showId, outcome: 'PERSISTED' });
  const span = await persisted
    .clone()
    .first(service.db.raw('COUNT(*) AS n, MIN(resolved_at) AS first, TIMESTAMPDIFF(MICROSECOND, MIN(resolved_at), MAX(resolved_at)) / 1e6 AS seconds'));
  const [{ n: afterFirst }] = await persisted.clone().where('resolved_at', '>', span.first).count({ n: '*' });
  return { persisted: Number(span.n), perSecond: Number(afterFirst) / Number(span.seconds) };
}
