import type { App } from '../../src/app';
import { isCluster, type RedisClient } from '../../src/db/redis';

/**
 * A flash sale against one show, with a fault injected part-way: the load, its per-second record
 * and what the record says about the fault (dip, recovery). Shared by the failover drills
 * (test/cluster/drills.test.ts, which check the invariants afterwards) and the cluster benchmark.
 */
export interface SaleOptions {
  /** Requests in all; each from its own buyer (one order per buyer and show), one seat each. */
  requests: number;
  /** Requests in flight at once. */
  connections: number;
  /** Fires once this many orders were accepted (the fault), with the sale's elapsed time. */
  faultAfterAccepted?: number;
  fault?: () => Promise<void>;
  /** Fires this long after the fault began (the node comes back), without stopping the load. */
  restoreAfterMs?: number;
  restore?: () => Promise<void>;
}

export interface SaleRecord {
  requests: number;
  /** Order ids answered 202. */
  accepted: string[];
  /** Answers by status and error code: `202`, `409 SOLD_OUT`, `503 UNAVAILABLE`, `fetch failed`… */
  answers: Record<string, number>;
  /** When each 202 arrived, ms since the sale began. */
  acceptedAtMs: number[];
  durationMs: number;
  faultAtMs: number | null;
  /** When the fault's node was back (restore resolved), ms since the sale began. */
  restoredAtMs: number | null;
}

export async function runSale(baseUrl: string, showId: string, buyers: Array<{ auth: Record<string, string> }>, options: SaleOptions): Promise<SaleRecord> {
  const record: SaleRecord = { requests: options.requests, accepted: [], answers: {}, acceptedAtMs: [], durationMs: 0, faultAtMs: null, restoredAtMs: null };
  const started = Date.now();
  const body = JSON.stringify({ showId, quantity: 1 });
  const pending: Array<Promise<void>> = [];
  let faultFired = false;
  const maybeFault = () => {
    if (faultFired || !options.fault || record.accepted.length < (options.faultAfterAccepted ?? 0)) return;
    faultFired = true;
    record.faultAtMs = Date.now() - started;
    const restore = options.restore;
    pending.push(
      options.fault().then(async () => {
        if (!restore) return;
        await new Promise((resolve) => setTimeout(resolve, options.restoreAfterMs ?? 10_000));
        await restore();
        record.restoredAtMs = Date.now() - started;
      }),
    );
  };
  let next = 0;
  const count = (key: string) => (record.answers[key] = (record.answers[key] ?? 0) + 1);
  const worker = async () => {
    while (next < options.requests) {
      const buyer = buyers[next % buyers.length];
      next += 1;
      try {
        const res = await fetch(`${baseUrl}/api/orders/async`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', ...buyer.auth },
          body,
          signal: AbortSignal.timeout(60_000),
        });
        const reply = (await res.json().catch(() => ({}))) as { orderId?: string; error?: { code?: string } };
        if (res.status === 202 && reply.orderId) {
          record.accepted.push(reply.orderId);
          record.acceptedAtMs.push(Date.now() - started);
          count('202');
          maybeFault();
        } else {
          count(`${res.status} ${reply.error?.code ?? ''}`.trim());
        }
      } catch (err) {
        count((err as Error).name === 'TimeoutError' ? 'client timeout (60 s)' : 'fetch failed');
      }
    }
  };
  await Promise.all(Array.from({ length: options.connections }, worker));
  record.durationMs = Date.now() - started;
  await Promise.all(pending);
  return record;
}

export interface FaultFigures {
  /** Accepted orders/s over the 2 s before the fault. */
  beforePerSecond: number;
  /** The lowest accepted orders/s of any 1 s window from the fault until recovery (or sell-out). */
  dipPerSecond: number;
  /** From the fault until a 1 s window is back at 80% of the rate before, once it had fallen below; 0 if it never fell; null if it never came back before the sale ended. */
  recoveryMs: number | null;
}

/** What the per-second record of a sale says about its fault. */
export function faultFigures(record: SaleRecord, seats: number): FaultFigures | null {
  if (record.faultAtMs === null) return null;
  const at = record.faultAtMs;
  const times = record.acceptedAtMs;
  const inWindow = (from: number, to: number) => times.filter((t) => t >= from && t < to).length;
  const beforePerSecond = inWindow(Math.max(0, at - 2_000), at) / (Math.min(2_000, at) / 1_000 || 1);
  // The sale ends at sell-out (the last seat accepted) or when the requests ran out.
  const end = times.length >= seats ? times[times.length - 1] : record.durationMs;
  const threshold = 0.8 * beforePerSecond;
  let dip = Infinity;
  let fell = false;
  let recoveryMs: number | null = null;
  for (let from = at; from + 1_000 <= end; from += 100) {
    const rate = inWindow(from, from + 1_000);
    dip = Math.min(dip, rate);
    if (rate < threshold) fell = true;
    else if (fell) {
      recoveryMs = from + 1_000 - at;
      break;
    }
  }
  if (!fell) recoveryMs = 0;
  return { beforePerSecond: Math.round(beforePerSecond), dipPerSecond: dip === Infinity ? 0 : dip, recoveryMs };
}

/** The Redis Cluster master that holds a key's slot, as `host:port` (the single Redis: its own address). */
export async function masterOfKey(redis: RedisClient, key: string): Promise<string> {
  if (!isCluster(redis)) return `${redis.options.host}:${redis.options.port}`;
  const slot = Number(await redis.cluster('KEYSLOT', key));
  const range = (await redis.cluster('SLOTS')).find(([from, to]) => slot >= from && slot <= to);
  const master = range?.[2];
  if (!master) throw new Error(`no master serves slot ${slot}`);
  return `${master[0]}:${master[1]}`;
}

/** The RabbitMQ node (its AMQP URL's port) the app's connections are on, from the management API of a node that answers. */
export async function rabbitNodeOfApp(app: App, managementUrls: string[]): Promise<string> {
  const auth = `Basic ${Buffer.from('guest:guest').toString('base64')}`;
  for (const base of managementUrls) {
    const res = await fetch(`${base}/api/connections?columns=node,client_properties.connection_name`, { headers: { Authorization: auth } }).catch(() => null);
    if (!res?.ok) continue;
    const connections = (await res.json()) as Array<{ node: string; client_properties?: { connection_name?: string } }>;
    const mine = connections.find((c) => c.client_properties?.connection_name?.startsWith(`${app.config.NAMESPACE} `));
    if (mine) return mine.node;
  }
  throw new Error(`no management API of ${managementUrls.join(', ')} lists a connection of ${app.config.NAMESPACE}`);
}
