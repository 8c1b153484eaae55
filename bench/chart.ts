import type { FlashSale } from './flash-sale';
import { asyncAccepts, type Measured } from './support';

/**
 * bench/results.svg, written by hand (no charting dependency): panels of horizontal bars, each
 * scaled to its own largest value, every bar labelled with its figure, targets as dashed lines.
 */
export interface ChartInput {
  rows: Measured[];
  flashSales: FlashSale[];
  /** The consumer alone on `orders` queued orders. */
  consumerAlone: { orders: number; perSecond: number };
}

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

const WIDTH = 940;
const LABEL_WIDTH = 330;
const BAR_WIDTH = 380;
const ROW_HEIGHT = 24;
const COLORS = { path: '#4e79a7', baseline: '#9c9c9c', naive: '#e15759', lag: '#f28e2b', persisted: '#59a14f' };

export function renderChart({ rows, flashSales, consumerAlone }: ChartInput): string {
  const livez = rows[0].requestsPerSecond;
  const panels = [
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
    panel(
      `Flash sale (${flashSales[0].requests} requests, ${flashSales[0].seats} seats): from the 202 to the commit, ms`,
      flashSales.flatMap((sale) => [
        { label: `${sale.deployment}: lag p50`, value: sale.lag.p50, text: `${sale.lag.p50.toFixed(0)} ms`, color: COLORS.lag },
        { label: `${sale.deployment}: lag p99`, value: sale.lag.p99, text: `${sale.lag.p99.toFixed(0)} ms`, color: COLORS.lag },
        { label: `${sale.deployment}: drain time`, value: sale.drainMs, text: `${sale.drainMs.toFixed(0)} ms (last 202 to last commit)`, color: COLORS.lag },
      ]),
    ),
    panel('Orders per second: accepted, and persisted by the consumer', [
      ...flashSales.flatMap((sale) => [
        { label: `flash sale, ${sale.deployment}: accepted`, value: sale.acceptPerSecond, text: `${sale.acceptPerSecond.toFixed(0)}/s`, color: COLORS.path },
        { label: `flash sale, ${sale.deployment}: persisted`, value: sale.consumer.perSecond, text: `${sale.consumer.perSecond.toFixed(0)}/s`, color: COLORS.persisted },
      ]),
      ...asyncAccepts(rows).map((a) => ({
        label: `async accept (${a.deployment})`,
        value: a.requestsPerSecond,
        text: `${a.requestsPerSecond.toFixed(0)}/s · consumer alone ${(consumerAlone.perSecond / a.requestsPerSecond).toFixed(2)} × this (target 2 ×)`,
        color: COLORS.path,
      })),
      { label: `consumer alone (${consumerAlone.orders} queued orders)`, value: consumerAlone.perSecond, text: `${consumerAlone.perSecond.toFixed(0)}/s`, color: COLORS.persisted },
    ]),
  ];
  let y = 10;
  const body = panels.map((p) => {
    const svg = `<g transform="translate(0 ${y})">${p.svg}</g>`;
    y += p.height;
    return svg;
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${y}" viewBox="0 0 ${WIDTH} ${y}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    '<style>.title { font-weight: bold; font-size: 13px } .value { fill: #333 } .marker { fill: #666; font-size: 10px }</style>',
    `<rect width="${WIDTH}" height="${y}" fill="#fff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
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
