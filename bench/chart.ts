import { medianRow, medianRows, type Stored } from './report';
import { asyncAccepts, type Measured } from './support';

/**
 * bench/results.svg, written by hand (no charting dependency, nothing fetched): line charts of
 * throughput and p99 against concurrent clients (log-log), then panels of horizontal bars, each
 * scaled to its own largest value, every bar labelled with its figure, targets as dashed lines.
 * Only the sections measured so far are drawn.
 */

interface Bar {
  label: string;
  value: number;
  text: string;
  color: string;
}

interface Marker {
  value: number;
  label: string;
}

interface Series {
  label: string;
  color: string;
  points: Array<[x: number, y: number]>;
}

const WIDTH = 940;
const LABEL_WIDTH = 330;
const BAR_WIDTH = 380;
const ROW_HEIGHT = 24;
const COLORS = { path: '#4e79a7', baseline: '#9c9c9c', naive: '#e15759', lag: '#f28e2b', persisted: '#59a14f', async: '#76b7b2' };

export function renderChart(stored: Stored): string {
  const panels: Array<{ svg: string; height: number }> = [];
  if (stored.scaling) {
    const runs = stored.scaling.runs;
    const levels = runs[0].map((p) => p.clients);
    const series = (key: 'sync' | 'async' | 'naive' | 'livez', label: string, color: string, value: (m: Measured) => number): Series => ({
      label,
      color,
      points: levels.map((clients) => [clients, value(medianRow(runs.map((run) => run.find((p) => p.clients === clients)![key])))]),
    });
    const all = (value: (m: Measured) => number) => [
      series('livez', 'GET /livez', COLORS.baseline, value),
      series('async', 'async accept (role all)', COLORS.async, value),
      series('naive', 'naive single transaction', COLORS.naive, value),
      series('sync', 'sync order saga', COLORS.path, value),
    ];
    panels.push(
      lineChart(
        'Requests (sagas) per second against concurrent clients (log-log)',
        all((m) => m.requestsPerSecond),
        'req/s',
      ),
    );
    panels.push(
      lineChart(
        'p99 latency against concurrent clients, ms (log-log)',
        all((m) => Math.max(m.p99, 0.5)),
        'ms',
      ),
    );
  }
  if (stored.paths) {
    const rows = medianRows(stored.paths.runs.map((r) => r.rows));
    const livez = rows[0].requestsPerSecond;
    panels.push(
      panel(
        'Requests per second, and the ratio to GET /livez of the same run',
        rows.map((r) => ({
          label: r.name,
          value: r.requestsPerSecond,
          text: `${r.requestsPerSecond.toFixed(0)} req/s · ${(r.requestsPerSecond / livez).toFixed(2)} ×`,
          color: r.name.startsWith('GET /livez') ? COLORS.baseline : r.name.startsWith('naive') ? COLORS.naive : COLORS.path,
        })),
        [
          { value: 0.6 * livez, label: '0.6 × /livez' },
          { value: 0.9 * livez, label: '0.9 × /livez' },
        ],
      ),
    );
  }
  if (stored.history) {
    const runs = stored.history.runs;
    const bar = (label: string, m: Measured, color: string): Bar => ({
      label,
      value: m.requestsPerSecond,
      text: `${m.requestsPerSecond.toFixed(0)} req/s · p99 ${m.p99} ms`,
      color,
    });
    panels.push(
      panel(`The saga log's history (${runs[0].sagas.toLocaleString('en-US')} sagas): requests per second`, [
        bar('sync saga, empty log', medianRow(runs.map((r) => r.empty.sync)), COLORS.path),
        bar('sync saga, with the history', medianRow(runs.map((r) => r.history.sync)), COLORS.path),
        bar('sync saga, while the retention purge runs', medianRow(runs.map((r) => r.purging.sync)), COLORS.lag),
        bar('async accept, empty log', medianRow(runs.map((r) => r.empty.async)), COLORS.async),
        bar('async accept, with the history', medianRow(runs.map((r) => r.history.async)), COLORS.async),
      ]),
    );
  }
  const flashSales = stored.flash?.runs.at(-1);
  if (flashSales) {
    panels.push(
      panel(
        `Flash sale (${flashSales[0].requests} requests, ${flashSales[0].seats} seats): from the 202 to the commit, ms`,
        flashSales.flatMap((sale) => [
          { label: `${sale.deployment}: lag p50`, value: sale.lag.p50, text: `${sale.lag.p50.toFixed(0)} ms`, color: COLORS.lag },
          { label: `${sale.deployment}: lag p99`, value: sale.lag.p99, text: `${sale.lag.p99.toFixed(0)} ms`, color: COLORS.lag },
          { label: `${sale.deployment}: drain time`, value: sale.drainMs, text: `${sale.drainMs.toFixed(0)} ms (last 202 to last commit)`, color: COLORS.lag },
        ]),
      ),
    );
    const drain = stored.drain?.runs.at(-1);
    const accepts = stored.paths ? asyncAccepts(medianRows(stored.paths.runs.map((r) => r.rows))) : [];
    panels.push(
      panel('Orders per second: accepted, and persisted by the consumer', [
        ...flashSales.flatMap((sale) => [
          { label: `flash sale, ${sale.deployment}: accepted`, value: sale.acceptPerSecond, text: `${sale.acceptPerSecond.toFixed(0)}/s`, color: COLORS.path },
          {
            label: `flash sale, ${sale.deployment}: persisted`,
            value: sale.consumer.perSecond,
            text: `${sale.consumer.perSecond.toFixed(0)}/s`,
            color: COLORS.persisted,
          },
        ]),
        ...accepts.map((a) => ({
          label: `async accept (${a.deployment})`,
          value: a.requestsPerSecond,
          text: `${a.requestsPerSecond.toFixed(0)}/s${drain ? ` · consumer alone ${(drain.consumer.perSecond / a.requestsPerSecond).toFixed(2)} × this (target 2 ×)` : ''}`,
          color: COLORS.path,
        })),
        ...(drain
          ? [
              {
                label: `consumer alone (${drain.consumer.persisted} queued orders)`,
                value: drain.consumer.perSecond,
                text: `${drain.consumer.perSecond.toFixed(0)}/s`,
                color: COLORS.persisted,
              },
            ]
          : []),
      ]),
    );
  }
  let y = 10;
  const body = panels.map((p) => {
    const svg = `<g transform="translate(0 ${y})">${p.svg}</g>`;
    y += p.height;
    return svg;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    '<style>.title { font-weight: bold; font-size: 13px } .value { fill: #333 } .marker { fill: #666; font-size: 10px } .axis { fill: #555; font-size: 10px }</style>',
    `<rect width="${WIDTH}" height="${y}" fill="#fff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** A log-log line chart: x = clients, y = the figure, one labelled line per series, decade grid lines. */
function lineChart(title: string, series: Series[], unit: string): { svg: string; height: number } {
  const left = 70;
  const top = 30;
  const plotWidth = 560;
  const plotHeight = 220;
  const xs = series.flatMap((s) => s.points.map(([x]) => x));
  const ys = series.flatMap((s) => s.points.map(([, y]) => y)).filter((v) => v > 0);
  const [xMin, xMax] = [Math.min(...xs), Math.max(...xs)];
  const yMin = 10 ** Math.floor(Math.log10(Math.min(...ys)));
  const yMax = 10 ** Math.ceil(Math.log10(Math.max(...ys)));
  const x = (v: number) => left + ((Math.log10(v) - Math.log10(xMin)) / (Math.log10(xMax) - Math.log10(xMin) || 1)) * plotWidth;
  const y = (v: number) => top + plotHeight - ((Math.log10(Math.max(v, yMin)) - Math.log10(yMin)) / (Math.log10(yMax) - Math.log10(yMin) || 1)) * plotHeight;
  const parts = [`<text x="10" y="16" class="title">${escapeXml(title)}</text>`];
  for (let d = yMin; d <= yMax; d *= 10) {
    parts.push(
      `<line x1="${left}" y1="${y(d).toFixed(1)}" x2="${left + plotWidth}" y2="${y(d).toFixed(1)}" stroke="#e4e4e4"/>`,
      `<text x="${left - 6}" y="${(y(d) + 3).toFixed(1)}" text-anchor="end" class="axis">${d >= 1 ? d.toLocaleString('en-US') : d} ${unit}</text>`,
    );
  }
  for (const v of [...new Set(xs)].sort((a, b) => a - b)) {
    parts.push(
      `<line x1="${x(v).toFixed(1)}" y1="${top}" x2="${x(v).toFixed(1)}" y2="${top + plotHeight}" stroke="#f0f0f0"/>`,
      `<text x="${x(v).toFixed(1)}" y="${top + plotHeight + 14}" text-anchor="middle" class="axis">${v}</text>`,
    );
  }
  parts.push(`<text x="${left + plotWidth / 2}" y="${top + plotHeight + 28}" text-anchor="middle" class="axis">concurrent clients</text>`);
  series.forEach((s, i) => {
    const d = s.points.map(([px, py], j) => `${j ? 'L' : 'M'}${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const [px, py] of s.points)
      parts.push(
        `<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="3" fill="${s.color}"><title>${escapeXml(`${s.label}, ${px} clients: ${py.toFixed(0)} ${unit}`)}</title></circle>`,
      );
    const [lx, ly] = s.points[s.points.length - 1];
    const legendY = top + 10 + i * 18;
    parts.push(
      `<line x1="${left + plotWidth + 20}" y1="${legendY}" x2="${left + plotWidth + 40}" y2="${legendY}" stroke="${s.color}" stroke-width="2"/>`,
      `<text x="${left + plotWidth + 46}" y="${legendY + 4}">${escapeXml(`${s.label} (${ly.toFixed(0)} at ${lx})`)}</text>`,
    );
  });
  return { svg: parts.join(''), height: top + plotHeight + 44 };
}

/** One titled panel of bars scaled to its largest value, with dashed target lines; its SVG (from y = 0) and height. */
function panel(title: string, bars: Bar[], markers: Marker[] = []): { svg: string; height: number } {
  const max = Math.max(...bars.map((b) => b.value), ...markers.map((m) => m.value), 1);
  const x = (value: number) => LABEL_WIDTH + Math.max(1, (value / max) * BAR_WIDTH);
  const top = markers.length > 0 ? 40 : 26;
  const bottom = top + bars.length * ROW_HEIGHT;
  const parts = [`<text x="10" y="16" class="title">${escapeXml(title)}</text>`];
  bars.forEach((bar, i) => {
    const y = top + i * ROW_HEIGHT;
    parts.push(
      `<text x="${LABEL_WIDTH - 8}" y="${y + 14}" text-anchor="end">${escapeXml(bar.label)}</text>`,
      `<rect x="${LABEL_WIDTH}" y="${y + 3}" width="${(x(bar.value) - LABEL_WIDTH).toFixed(1)}" height="${ROW_HEIGHT - 7}" fill="${bar.color}"/>`,
      `<text x="${(x(bar.value) + 6).toFixed(1)}" y="${y + 14}" class="value">${escapeXml(bar.text)}</text>`,
    );
  });
  for (const marker of markers) {
    parts.push(
      `<line x1="${x(marker.value).toFixed(1)}" y1="${top - 4}" x2="${x(marker.value).toFixed(1)}" y2="${bottom}" stroke="#666" stroke-dasharray="4 3"/>`,
      `<text x="${x(marker.value).toFixed(1)}" y="${top - 8}" text-anchor="middle" class="marker">${escapeXml(marker.label)}</text>`,
    );
  }
  return { svg: parts.join(''), height: bottom + 18 };
}

const escapeXml = (text: string) => text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
