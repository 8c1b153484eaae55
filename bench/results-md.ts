import { describe, median } from './load';
import { earlierTargets, medianRow, medianRows, sagaCostTargets, targetRow, type Stored } from './report';
import { asyncAccepts, describeCpu, type Measured } from './support';

/** bench/results.md from bench/results.json: every section measured so far, each with its own date and settings. */
export function renderMarkdown(stored: Stored): string {
  const count = (n: number) => n.toLocaleString('en-US');
  const runsNote = (s?: { runs: unknown[]; measuredAt: string; settings: Record<string, unknown> }) =>
    s
      ? `_Measured ${s.measuredAt.slice(0, 16).replace('T', ' ')} UTC, ${s.runs.length} run${s.runs.length > 1 ? 's (medians)' : ''}; ${Object.entries(
          s.settings,
        )
          .map(([k, v]) => `${k}=${v}`)
          .join(', ')}._`
      : '';
  const rps = (r: Measured) => `${r.requestsPerSecond.toFixed(0)}${r.runsPerSecond ? ` (${r.runsPerSecond.join(', ')})` : ''}`;
  const machine = Object.values(stored).find((s) => s)?.machine ?? '';
  const lines: string[] = [
    '# seat-saga benchmark results',
    '',
    `Measured by \`npm run bench\` (sections: \`BENCH_SECTIONS=paths,scaling,… npm run bench\`, or \`npm run bench -- scaling\`; runs: \`BENCH_RUNS=3\`) on ${machine}; ` +
      'service, its databases and the load generator on the same machine; autocannon, one request per connection at a time. ' +
      'Absolute numbers depend on the machine; ratios between paths measured in the same run are the figures to compare. ' +
      "With several runs, every figure is the median of the runs (each run's req/s in parentheses), and a target's ratio is worked out in each run, then its median taken.",
    '',
    '![throughput and p99 latency against concurrent clients; requests per second of each path; flash-sale persistence and drain rates](results.svg)',
    '',
    '## Targets: a saga at the cost of one transaction',
    '',
    '| target | measured | result |',
    '| --- | ---: | --- |',
    ...sagaCostTargets(stored).map(targetRow),
    '',
  ];

  const paths = stored.paths;
  if (paths) {
    const rows = medianRows(paths.runs.map((r) => r.rows));
    const livez = rows[0].requestsPerSecond;
    const argon2 = median(paths.runs.map((r) => r.argon2PerSecond));
    const pay = rows.find((r) => r.name.startsWith('POST /api/orders/:id/pay'));
    lines.push(
      '## Paths',
      '',
      runsNote(paths),
      '',
      '| path | req/s | ratio to /livez | p50 ms | p99 ms | requests | non-2xx | errors | cores busy during the run |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |',
      ...rows.map(
        (r) =>
          `| ${r.name} | ${rps(r)} | ${(r.requestsPerSecond / livez).toFixed(3)} | ${r.p50} | ${r.p99} | ${r.total} | ${r.non2xx} | ${r.errors} | ${describeCpu(r.cpu)} |`,
      ),
      '',
      'Cores busy: CPU time each group of processes used during the measured run, from /proc (1.00 = one core all the time). ' +
        '"seat-saga" is every process of the service under test (API and consumer alike), "load generator" this benchmark\'s autocannon.',
      '',
      ...rows.filter((r) => r.note).map((r) => `- ${r.name}: ${r.note}.`),
      '- naive: bench/naive-server.ts, its own process and database: the same request (`{showId, quantity}`, the same HMAC bearer check, zod ' +
        "validation) answered by one MySQL transaction per order: `SELECT available … FOR UPDATE` on the show's stock row, `UPDATE`, `INSERT` the order, `COMMIT`.",
      ...(pay
        ? [
            '- The pay path verifies the pay password with argon2id (19 MiB, 2 passes) on every request, by design. ' +
              `argon2id verifications alone, in one process on this machine: ${argon2.toFixed(0)}/s; the pay saga reaches ${((pay.requestsPerSecond / argon2) * 100).toFixed(0)}% of that ceiling.`,
          ]
        : []),
      '',
    );
  }

  const scaling = stored.scaling;
  if (scaling) {
    const levels = scaling.runs[0].map((p) => p.clients);
    const point = (clients: number, key: 'livez' | 'sync' | 'async' | 'naive') =>
      medianRow(scaling.runs.map((run) => run.find((p) => p.clients === clients)![key]));
    const ratioAt = (clients: number, a: 'sync' | 'async', b: 'naive' | 'livez') =>
      median(scaling.runs.map((run) => run.find((p) => p.clients === clients)!).map((p) => p[a].requestsPerSecond / p[b].requestsPerSecond));
    lines.push(
      '## Scaling with concurrent clients',
      '',
      runsNote(scaling),
      '',
      'The same four paths at each number of concurrent clients (a fresh service for the three seat-saga paths, the naive baseline in its own process): sagas (or requests) per second, p50 and p99 latency.',
      '',
      '| clients | path | req/s | p50 ms | p99 ms | non-2xx | errors |',
      '| ---: | --- | ---: | ---: | ---: | ---: | ---: |',
      ...levels.flatMap((clients) =>
        (['sync', 'async', 'naive', 'livez'] as const).map((key) => {
          const r = point(clients, key);
          return `| ${clients} | ${r.name} | ${rps(r)} | ${r.p50} | ${r.p99} | ${r.non2xx} | ${r.errors} |`;
        }),
      ),
      '',
      '| clients | sync saga ÷ naive (target 1.0) | async accept ÷ naive (target 5) | async accept ÷ /livez (target 0.6) |',
      '| ---: | ---: | ---: | ---: |',
      ...levels.map(
        (c) => `| ${c} | ${ratioAt(c, 'sync', 'naive').toFixed(2)} | ${ratioAt(c, 'async', 'naive').toFixed(2)} | ${ratioAt(c, 'async', 'livez').toFixed(2)} |`,
      ),
      '',
    );
  }

  const history = stored.history;
  if (history) {
    const h = history.runs[0];
    const m = (f: (r: typeof h) => Measured) => medianRow(history.runs.map(f));
    const ratio = (f: (r: typeof h) => number) => median(history.runs.map(f)).toFixed(2);
    lines.push(
      '## History: an empty saga log against a million sagas',
      '',
      runsNote(history),
      '',
      `The sync and async paths on a fresh service, then again once ${count(h.sagas)} ended sagas and their ${count(h.steps)} steps are in its log ` +
        `(bench/seed-sagas.ts --steps, a busy sale's mix, ended 31 to 61 days ago; seeded in ${h.seedSeconds.toFixed(0)} s, then ANALYZE TABLE), ` +
        'then the sync path once more while the retention purge (src/retention/saga-retention.ts, SAGA_RETENTION_DAYS=30, its default batches of 500 sagas ' +
        "and 100 ms pauses, run in the load generator's process with its own 2 connections) deletes that history.",
      '',
      '| path | empty log req/s | p50 ms | p99 ms | with the history req/s | p50 ms | p99 ms | history ÷ empty |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...(['sync', 'async'] as const).map((key) => {
        const e = m((r) => r.empty[key]);
        const w = m((r) => r.history[key]);
        return `| ${e.name.replace(/, empty saga log$/, '')} | ${rps(e)} | ${e.p50} | ${e.p99} | ${rps(w)} | ${w.p50} | ${w.p99} | ${ratio((r) => r.history[key].requestsPerSecond / r.empty[key].requestsPerSecond)} |`;
      }),
      '',
      '| sync order saga over the history | req/s | p50 ms | p99 ms | ÷ without the purge | sagas purged meanwhile | purged /s | rows purged | slowest batch ms |',
      '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      (() => {
        const w = m((r) => r.history.sync);
        const p = m((r) => r.purging.sync);
        const last = history.runs.at(-1)!.purging;
        return [
          `| without the purge | ${rps(w)} | ${w.p50} | ${w.p99} | 1.00 | | | | |`,
          `| while the purge runs | ${rps(p)} | ${p.p50} | ${p.p99} | ${ratio((r) => r.purging.sync.requestsPerSecond / r.history.sync.requestsPerSecond)} | ${count(last.sagasPurged)} | ${last.sagasPerSecond.toFixed(0)} | ${count(last.rowsPurged)} | ${last.slowestBatchMs} |`,
        ].join('\n');
      })(),
      '',
    );
  }

  const compensation = stored.compensation;
  if (compensation) {
    const byClients = compensation.runs[0].map((c) => c.clients);
    const of = (clients: number) => compensation.runs.map((run) => run.find((c) => c.clients === clients)!);
    const p99Ratio = median(compensation.runs.map((run) => run.find((c) => c.clients === 20)!.p99 / run.find((c) => c.clients === 1)!.p99));
    lines.push(
      '## Compensation latency',
      '',
      runsNote(compensation),
      '',
      'Order sagas failing at `order.order_add.after` (the worst case: seat-release and order-delete both undo), on a service of their own with ENABLE_FAILPOINTS=1: ' +
        "time from the failure recorded in the saga log (the FAILED step's finished_at) to the saga COMPENSATED (its finished_at), both instants from the database clock.",
      '',
      '| failing sagas | concurrent clients | p50 ms | p99 ms | max ms |',
      '| ---: | ---: | ---: | ---: | ---: |',
      ...byClients.map((clients) => {
        const runs = of(clients);
        return `| ${runs[0].count} | ${clients} | ${median(runs.map((c) => c.p50)).toFixed(1)} | ${median(runs.map((c) => c.p99)).toFixed(1)} | ${median(runs.map((c) => c.max)).toFixed(1)} |`;
      }),
      '',
      `p99 at 20 clients ÷ p99 at 1 client: ${p99Ratio.toFixed(2)} × (target ≤ 1.5 ×).`,
      '',
    );
  }

  lines.push('## Earlier targets', '', '| target | measured | result |', '| --- | ---: | --- |', ...earlierTargets(stored).map(targetRow), '');

  const flash = stored.flash;
  if (flash) {
    const sales = flash.runs.at(-1)!;
    lines.push(
      '## Flash sale',
      '',
      runsNote(flash),
      '',
      `A fresh service, one show of ${count(sales[0].seats)} seats, ${count(sales[0].requests)} POST /api/orders/async \`{showId, quantity: 1}\`, each from a ` +
        `different buyer, fired by ${sales[0].connections} connections as fast as they are answered, without warm-up; once with the contract's roles in ` +
        'two processes (one API, one worker), once in one process (role all, as `npm start` runs). Then, once every accepted order is resolved, ' +
        'from the database (`reservations`, `seat_holds`, `order_seats`): stale drops are the reservations released as stale; lag is from the reservation (the 202) ' +
        'to the insert of its outcome in the persisting transaction; drain time from the last reservation to the last commit; the accept rate counts 202s from the ' +
        'first to the last, as the clients saw them; the consumer rate, orders persisted per second from its first commit to its last. (The last run.)',
      '',
      '| deployment | 202 accepted | 409 SOLD_OUT | other answers | sold (seat holds) | sold twice | stale drops | released | lag p50 ms | lag p99 ms | lag max ms | accept rate /s | drain time ms | consumer rate /s |',
      '| --- | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...sales.map(
        (s) =>
          `| ${s.deployment} | ${count(s.accepted)} | ${count(s.soldOut)} | ${describe(s.others)} | ${count(s.sold)} | ${s.soldTwice} | ${s.staleDrops} | ${describe(s.released)} | ` +
          `${s.lag.p50.toFixed(0)} | ${s.lag.p99.toFixed(0)} | ${s.lag.max.toFixed(0)} | ${s.acceptPerSecond.toFixed(0)} | ${s.drainMs.toFixed(0)} | ${s.consumer.perSecond.toFixed(0)} |`,
      ),
      '',
    );
  }

  const drain = stored.drain;
  if (drain) {
    const d = drain.runs.at(-1)!;
    const accepts = stored.paths ? asyncAccepts(medianRows(stored.paths.runs.map((r) => r.rows))) : [];
    lines.push(
      '## The consumer alone',
      '',
      runsNote(drain),
      '',
      `${count(d.consumer.persisted)} async orders accepted by an API process with no consumer anywhere (ORDER_MAX_QUEUE_DELAY_MS=600000, so that none goes stale); ` +
        'then one worker process started on the same database and namespace, timed from its first commit to its last. (The last run.)',
      '',
      `| persisted | consumer rate /s | accept rate of that API process /s | ${accepts.map((a) => `× async accept (${a.deployment})`).join(' | ')} |`,
      `| ---: | ---: | ---: | ${accepts.map(() => '---:').join(' | ')} |`,
      `| ${count(d.consumer.persisted)} | ${d.consumer.perSecond.toFixed(0)} | ${d.acceptPerSecond.toFixed(0)} | ${accepts.map((a) => (d.consumer.perSecond / a.requestsPerSecond).toFixed(2)).join(' | ')} |`,
      '',
      `Cores busy while that API process accepted with no consumer running: ${describeCpu(d.acceptCpu)}. While the worker drained (from its start): ${describeCpu(d.drainCpu)}.`,
      '',
    );
  }

  const expiry = stored.expiry;
  if (expiry) {
    const e = expiry.runs.at(-1)!;
    lines.push(
      '## Unpaid-order expiry',
      '',
      runsNote(expiry),
      '',
      `${e.count} orders left unpaid in a service with PAYMENT_WINDOW_MS=2000 and every trigger on: time from each order's ` +
        'deadline (`expires_at`) to its seats released (the seat-release record of its expiry), both instants from the database clock. (The last run.)',
      '',
      '| orders | p50 ms | p99 ms | max ms | expired by |',
      '| ---: | ---: | ---: | ---: | --- |',
      `| ${e.count} | ${e.p50.toFixed(1)} | ${e.p99.toFixed(1)} | ${e.max.toFixed(1)} | ${describe(e.byTrigger)} |`,
      '',
    );
  }
  return lines.join('\n');
}
