import type { drainAlone, FlashSale } from './flash-sale';
import { median, NAIVE_NAME } from './load';
import type { CompensationLatency, ExpiryLateness } from './paths';
import type { HistoryResult, ScalingPoint } from './scaling';
import { asyncAccepts, type Measured } from './support';

/**
 * What bench/run.ts keeps in bench/results.json, section by section (a section run again replaces
 * its own entry only), and the figures bench/results.md and results.svg are made of: with several
 * runs, each figure is the median of the runs and each target ratio is worked out per run (both
 * sides from the same run), then its median and range across runs are shown.
 */
export interface SectionData {
  paths: { rows: Measured[]; argon2PerSecond: number };
  scaling: ScalingPoint[];
  history: HistoryResult;
  compensation: CompensationLatency[];
  expiry: ExpiryLateness;
  flash: FlashSale[];
  drain: Awaited<ReturnType<typeof drainAlone>>;
}
export type SectionName = keyof SectionData;
export const SECTIONS: SectionName[] = ['paths', 'scaling', 'history', 'compensation', 'expiry', 'flash', 'drain'];

export interface StoredSection<K extends SectionName> {
  measuredAt: string;
  machine: string;
  settings: Record<string, unknown>;
  runs: Array<SectionData[K]>;
}
export type Stored = { [K in SectionName]?: StoredSection<K> };

/** One row per name: the median req/s, p50 and p99 of the runs; the rest from the run of median req/s. */
export function medianRows(runs: Measured[][]): Measured[] {
  return runs[0].map((first) => medianRow(runs.map((rows) => rows.find((r) => r.name === first.name && r.connections === first.connections) ?? first)));
}

export function medianRow(runs: Measured[]): Measured {
  const byRate = [...runs].sort((a, b) => a.requestsPerSecond - b.requestsPerSecond);
  return {
    ...byRate[Math.floor((byRate.length - 1) / 2)],
    requestsPerSecond: median(runs.map((r) => r.requestsPerSecond)),
    p50: median(runs.map((r) => r.p50)),
    p99: median(runs.map((r) => r.p99)),
    runsPerSecond: runs.length > 1 ? runs.map((r) => Math.round(r.requestsPerSecond)) : undefined,
  };
}

export interface Target {
  target: string;
  /** e.g. "0.23 ×" (median of the runs), with the runs' range when there are several. */
  measured: string;
  pass: boolean | null;
  shortBy?: string;
}

const fmt = (x: number) => x.toFixed(2);

/** A ratio that must be at least (or, with atMost, at most) `required`, from each run's own figures. */
export function ratioTarget(target: string, perRun: number[], required: number, atMost = false): Target {
  if (perRun.length === 0) return { target, measured: 'not measured', pass: null };
  const m = median(perRun);
  const pass = atMost ? m <= required : m >= required;
  const range = perRun.length > 1 ? ` (runs: ${perRun.map(fmt).join(', ')})` : '';
  const shortBy = atMost ? `${(100 * (m / required - 1)).toFixed(0)}% over ${required} ×` : `${(100 * (1 - m / required)).toFixed(0)}% short of ${required} ×`;
  return { target, measured: `${fmt(m)} ×${range}`, pass, ...(pass ? {} : { shortBy }) };
}

export function exactTarget(target: string, measured: number, required: number): Target {
  return {
    target,
    measured: String(measured),
    pass: measured === required,
    ...(measured !== required ? { shortBy: `${measured > required ? '+' : ''}${measured - required}` } : {}),
  };
}

const rate = (rows: Measured[], prefix: string) => rows.find((r) => r.name.startsWith(prefix))?.requestsPerSecond ?? NaN;

/** The five targets of "A saga at the cost of one transaction", each worked out per run. */
export function sagaCostTargets(stored: Stored): Target[] {
  const paths = stored.paths?.runs ?? [];
  const each = (f: (run: SectionData['paths']) => number) => paths.map(f).filter((x) => Number.isFinite(x));
  const compensation = (stored.compensation?.runs ?? []).map((run) => {
    const one = run.find((c) => c.clients === 1);
    const twenty = run.find((c) => c.clients === 20);
    return one && twenty ? twenty.p99 / one.p99 : NaN;
  });
  return [
    ratioTarget(
      'sync 4-step order saga ≥ 1.0 × the naive single transaction (50 clients)',
      each((r) => rate(r.rows, 'POST /api/orders (sync saga)') / rate(r.rows, NAIVE_NAME)),
      1.0,
    ),
    ratioTarget(
      'async accept ≥ 5 × the naive single transaction (role all, 50 clients)',
      each((r) => rate(r.rows, 'POST /api/orders/async (accept, role all)') / rate(r.rows, NAIVE_NAME)),
      5,
    ),
    ratioTarget(
      'async accept ≥ 0.6 × GET /livez (role all, 50 clients)',
      each((r) => rate(r.rows, 'POST /api/orders/async (accept, role all)') / rate(r.rows, 'GET /livez')),
      0.6,
    ),
    ratioTarget(
      'pay saga ≥ 0.9 × the argon2id verify ceiling',
      each((r) => rate(r.rows, 'POST /api/orders/:id/pay') / r.argon2PerSecond),
      0.9,
    ),
    ratioTarget(
      'SAGA_FAILED → COMPENSATED p99 at 20 clients ≤ 1.5 × its 1-client p99',
      compensation.filter((x) => Number.isFinite(x)),
      1.5,
      true,
    ),
  ];
}

/** The targets of earlier issues, kept in the report (async paths, sold-out, the consumer alone, the flash sale). */
export function earlierTargets(stored: Stored): Target[] {
  const paths = stored.paths?.runs ?? [];
  const drain = stored.drain?.runs.at(-1);
  const flash = stored.flash?.runs.at(-1) ?? [];
  const deployments = paths.length ? asyncAccepts(paths[0].rows).map((a) => a.deployment) : [];
  const acceptOf = (rows: Measured[], deployment: string) => asyncAccepts(rows).find((a) => a.deployment === deployment)!.requestsPerSecond;
  return [
    ...deployments.map((d) =>
      ratioTarget(
        `async accept ≥ 0.6 × /livez (${d})`,
        paths.map((r) => acceptOf(r.rows, d) / rate(r.rows, 'GET /livez')),
        0.6,
      ),
    ),
    ...(drain && paths.length
      ? [
          ratioTarget(
            'async accept ≥ 0.6 × /livez (API process, no consumer running)',
            paths.map((r) => drain.acceptPerSecond / rate(r.rows, 'GET /livez')),
            0.6,
          ),
        ]
      : []),
    ...(paths.length
      ? [
          ratioTarget(
            'sold-out rejections ≥ 0.9 × /livez',
            paths.map((r) => rate(r.rows, 'POST /api/orders/async (sold out)') / rate(r.rows, 'GET /livez')),
            0.9,
          ),
        ]
      : []),
    ...deployments.map((d) =>
      ratioTarget(
        `async accept ≥ 5 × naive baseline (${d})`,
        paths.map((r) => acceptOf(r.rows, d) / rate(r.rows, NAIVE_NAME)),
        5,
      ),
    ),
    ...(drain
      ? deployments.map((d) =>
          ratioTarget(
            `consumer alone drains ≥ 2 × async accept (${d})`,
            paths.map((r) => drain.consumer.perSecond / acceptOf(r.rows, d)),
            2,
          ),
        )
      : []),
    ...flash.flatMap((sale) => [
      exactTarget(`flash sale, ${sale.deployment}: sold exactly ${sale.seats} seats`, sale.sold, sale.seats),
      exactTarget(`flash sale, ${sale.deployment}: seats sold twice`, sale.soldTwice, 0),
      exactTarget(`flash sale, ${sale.deployment}: stale drops`, sale.staleDrops, 0),
    ]),
  ];
}

export const targetRow = (t: Target) => `| ${t.target} | ${t.measured} | ${t.pass === null ? 'not measured' : t.pass ? 'pass' : `**miss**: ${t.shortBy}`} |`;
