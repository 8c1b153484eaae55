import { readdirSync, readFileSync } from 'node:fs';
import { ADMIN_TOKEN, type BenchService } from './service';

/** What the benchmark's phases share: a measured path, and small helpers. */

export interface Measured {
  name: string;
  /** Concurrent clients (autocannon connections, one request each at a time). */
  connections?: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  total: number;
  non2xx: number;
  errors: number;
  /** Non-2xx answers by status and error code, e.g. {"409 SOLD_OUT": 120000}. */
  errorCodes: Record<string, number>;
  /** With several runs: each run's req/s (the figures above are their medians). */
  runsPerSecond?: number[];
  /** What else the reader should know about this path's run. */
  note?: string;
  /** Cores busy during the measured run, by process group (what bounds the path). */
  cpu?: CpuSplit;
}

/** Cores used by each group of processes over an interval (1.0 = one core all the time). */
export type CpuSplit = Record<string, number>;

const GROUPS: Record<string, string> = { 'beam.smp': 'RabbitMQ', mariadbd: 'MariaDB', mysqld: 'MySQL', 'redis-server': 'Redis' };
const TICKS_PER_SECOND = 100; // USER_HZ on Linux

/**
 * CPU time so far (in clock ticks) of the service's Node processes, this load generator and the
 * services on this machine, from /proc (Linux; empty elsewhere).
 */
function cpuTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return ticks;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // gone meanwhile
    }
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const group = comm === 'node' ? (Number(pid) === process.pid ? 'load generator' : 'seat-saga') : GROUPS[comm];
    if (!group) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    ticks.set(group, (ticks.get(group) ?? 0) + Number(fields[11]) + Number(fields[12])); // utime + stime
  }
  return ticks;
}

/** Starts measuring; the returned function ends it and gives the cores each group used meanwhile. */
export function cpuMeter(): () => CpuSplit {
  const before = cpuTicks();
  const started = Date.now();
  return () => {
    const seconds = (Date.now() - started) / 1000;
    const split: CpuSplit = {};
    for (const [group, ticks] of cpuTicks()) {
      const used = (ticks - (before.get(group) ?? 0)) / TICKS_PER_SECOND / seconds;
      if (used >= 0.005) split[group] = used;
    }
    return split;
  };
}

/** "seat-saga 1.02, RabbitMQ 0.31, …", busiest first. */
export function describeCpu(split: CpuSplit | undefined): string {
  if (!split || Object.keys(split).length === 0) return 'n/a';
  return Object.entries(split)
    .sort((a, b) => b[1] - a[1])
    .map(([group, cores]) => `${group} ${cores.toFixed(2)}`)
    .join(', ');
}

/** The async accept rows, with the deployment each was measured in (the parenthesis of its name). */
export function asyncAccepts(rows: Measured[]): Array<Measured & { deployment: string }> {
  return rows.filter((r) => r.name.startsWith('POST /api/orders/async (accept')).map((r) => ({ ...r, deployment: /\(accept, (.*)\)/.exec(r.name)![1] }));
}

export const json = { 'Content-Type': 'application/json' };
export const admin = { ...json, 'X-Admin-Token': ADMIN_TOKEN };

export async function post(url: string, body: unknown, headers: Record<string, string>) {
  const res = await fetch(url, { method: 'POST', headers, body: JSON.stringify(body) });
  return { status: res.status, body: await res.json() };
}

/** A new show of rows × seatsPerRow seats; its id. */
export async function createShow(service: BenchService, rows: number, seatsPerRow: number): Promise<string> {
  const reply = await post(`${service.url}/api/admin/shows`, { title: 'Bench', startsAt: '2030-01-01T20:00:00Z', priceCents: 1000, rows, seatsPerRow }, admin);
  if (reply.status !== 201) throw new Error(`could not create a show: ${reply.status} ${JSON.stringify(reply.body)}`);
  return reply.body.id;
}

export const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/** Polls `done` every 100 ms until it is true; throws `what` after `timeoutMs`. */
export async function waitFor(what: string, done: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  for (const deadline = Date.now() + timeoutMs; !(await done());) {
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** How many POST /api/orders/async the API process at `url` has answered 202 so far, by its own count. */
export async function acceptedSoFar(url: string): Promise<number> {
  const metrics = await (await fetch(`${url}/metrics`)).text();
  return Number(/^seat_saga_async_order_requests_total\{outcome="accepted"\} (\d+)$/m.exec(metrics)?.[1] ?? 0);
}

/** How the async reservations of these shows ended, from the database: persisted, or released by reason (stale, …). */
export async function reservationOutcomes(service: BenchService, showIds: string[]) {
  const rows: Array<{ outcome: 'PERSISTED' | 'RELEASED'; reason: string | null; n: number }> = await service
    .db('reservations')
    .whereIn('show_id', showIds)
    .groupBy('outcome', 'reason')
    .select('outcome', 'reason', service.db.raw('COUNT(*) AS n'));
  const released: Record<string, number> = {};
  for (const row of rows) if (row.outcome === 'RELEASED') released[row.reason ?? '?'] = Number(row.n);
  const persisted = Number(rows.find((row) => row.outcome === 'PERSISTED')?.n ?? 0);
  return { persisted, released, resolved: rows.reduce((sum, row) => sum + Number(row.n), 0) };
}
