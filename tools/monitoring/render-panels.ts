// Renders a dashboard's panels to PNG from a real Prometheus: each panel's queries run as Grafana would
// run them (query_range over the window, variables at All), drawn as a time series chart with the
// panel's title, unit and legend (SVG, rasterized by resvg). Not Grafana's renderer: a faithful plot of
// the same queries, so docs/ can show what the dashboards show.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import { grafanaToPromQL } from './dashboards.js';

interface PanelJson {
  title: string;
  targets: Array<{ expr: string; legendFormat: string }>;
  fieldConfig: { defaults: { unit: string; custom?: { drawStyle?: string } } };
}

interface Series {
  name: string;
  points: Array<[number, number]>;
}

export interface RenderOptions {
  prometheus: string;
  uid: string;
  /** Seconds since the epoch. */
  start: number;
  end: number;
  outDir: string;
  dashboardsDir?: string;
}

const WIDTH = 900;
const HEIGHT = 340;
const PLOT = { left: 72, right: 20, top: 44, bottom: 96 };
const PALETTE = ['#7eb26d', '#eab839', '#6ed0e0', '#ef843c', '#e24d42', '#1f78c1', '#ba43a9', '#705da0', '#508642', '#cca300'];

async function queryRange(url: string, expr: string, start: number, end: number, step: number): Promise<Array<{ metric: Record<string, string>; values: Array<[number, string]> }>> {
  const q = `${url}/api/v1/query_range?query=${encodeURIComponent(expr)}&start=${start}&end=${end}&step=${step}`;
  const body = (await (await fetch(q)).json()) as { status: string; error?: string; data: { result: Array<{ metric: Record<string, string>; values: Array<[number, string]> }> } };
  if (body.status !== 'success') throw new Error(`query_range ${expr}: ${body.error}`);
  return body.data.result;
}

const legend = (format: string, labels: Record<string, string>): string => format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_, k: string) => labels[k] ?? '');

/** Readable tick values for [min, max]: 1, 2 or 5 times a power of ten apart. */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) max = min + 1;
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let v = Math.floor(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** A value in a Grafana unit, short. */
export function formatValue(v: number, unit: string): string {
  const short = (x: number): string => {
    const a = Math.abs(x);
    if (a >= 1e6) return `${(x / 1e6).toPrecision(3)}M`;
    if (a >= 1e3) return `${(x / 1e3).toPrecision(3)}k`;
    return Number(x.toPrecision(3)).toString();
  };
  if (unit === 'percentunit') return `${Number((v * 100).toPrecision(3))}%`;
  if (unit === 's') return v !== 0 && Math.abs(v) < 1 ? `${Number((v * 1000).toPrecision(3))} ms` : `${short(v)} s`;
  if (unit === 'reqps') return `${short(v)} req/s`;
  if (unit === 'ops') return `${short(v)} ops/s`;
  if (unit.startsWith('suffix:')) return `${short(v)}${unit.slice('suffix:'.length)}`;
  return short(v);
}

const escapeXml = (s: string): string => s.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

export function panelSvg(title: string, unit: string, bars: boolean, series: Series[], start: number, end: number): string {
  const w = WIDTH - PLOT.left - PLOT.right;
  const h = HEIGHT - PLOT.top - PLOT.bottom;
  const values = series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite);
  const top = Math.max(0, ...values);
  // An all-zero panel still gets a readable axis.
  const ticks = niceTicks(Math.min(0, ...values), top > 0 ? top : 1);
  const [lo, hi] = [ticks[0]!, ticks[ticks.length - 1]!];
  const x = (t: number) => PLOT.left + ((t - start) / (end - start)) * w;
  const y = (v: number) => PLOT.top + h - ((v - lo) / (hi - lo)) * h;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif">`,
    `<rect width="100%" height="100%" fill="#181b1f"/>`,
    `<text x="${PLOT.left}" y="26" font-size="15" fill="#d8d9da">${escapeXml(title)}</text>`,
  ];
  for (const t of ticks) {
    out.push(`<line x1="${PLOT.left}" x2="${PLOT.left + w}" y1="${y(t)}" y2="${y(t)}" stroke="#2c3235"/>`);
    out.push(`<text x="${PLOT.left - 6}" y="${y(t) + 4}" font-size="11" fill="#9fa7b3" text-anchor="end">${escapeXml(formatValue(t, unit))}</text>`);
  }
  const timeTicks = niceTicks(start, end, 6).filter((t) => t >= start && t <= end);
  for (const t of timeTicks) {
    const label = new Date(t * 1000).toISOString().slice(11, 19);
    out.push(`<text x="${x(t)}" y="${PLOT.top + h + 16}" font-size="11" fill="#9fa7b3" text-anchor="middle">${label}</text>`);
  }
  series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!;
    const pts = s.points.filter((p) => Number.isFinite(p[1]));
    if (bars) {
      const bw = Math.max(2, w / Math.max(60, pts.length * series.length) );
      for (const [t, v] of pts) if (v !== 0) out.push(`<rect x="${x(t) - bw / 2 + i * bw}" y="${y(Math.max(v, 0))}" width="${bw}" height="${Math.abs(y(v) - y(0))}" fill="${color}"/>`);
    } else if (pts.length > 0) {
      out.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6" points="${pts.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`);
    }
  });
  // Legend: up to three rows below the axis.
  let lx = PLOT.left;
  let ly = PLOT.top + h + 38;
  series.forEach((s, i) => {
    const label = s.name.length > 48 ? `${s.name.slice(0, 45)}…` : s.name;
    const width = 18 + label.length * 6.6;
    if (lx + width > WIDTH - PLOT.right) {
      lx = PLOT.left;
      ly += 18;
    }
    if (ly > HEIGHT - 6) return;
    out.push(`<rect x="${lx}" y="${ly - 8}" width="12" height="4" fill="${PALETTE[i % PALETTE.length]}"/>`);
    out.push(`<text x="${lx + 16}" y="${ly - 2}" font-size="11" fill="#d8d9da">${escapeXml(label)}</text>`);
    lx += width + 14;
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Renders every panel of dashboard `uid`; returns the PNG files written. */
export async function renderDashboardPngs(o: RenderOptions): Promise<string[]> {
  const dir = o.dashboardsDir ?? 'charts/jamba-operator/dashboards';
  const dashboard = JSON.parse(readFileSync(path.join(dir, `${o.uid}.json`), 'utf8')) as { panels: PanelJson[] };
  const step = Math.max(1, Math.round((o.end - o.start) / 240));
  // Grafana's $__rate_interval is at least four scrape intervals; these scrapes are 1 s apart.
  const rateInterval = `${Math.max(15, 4 * step)}s`;
  mkdirSync(o.outDir, { recursive: true });
  const written: string[] = [];
  for (const [i, panel] of dashboard.panels.entries()) {
    const series: Series[] = [];
    for (const t of panel.targets) {
      for (const r of await queryRange(o.prometheus, grafanaToPromQL(t.expr, rateInterval), o.start, o.end, step)) {
        series.push({ name: legend(t.legendFormat, r.metric), points: r.values.map(([ts, v]) => [ts, Number(v)]) });
      }
    }
    const svg = panelSvg(panel.title, panel.fieldConfig.defaults.unit, panel.fieldConfig.defaults.custom?.drawStyle === 'bars', series, o.start, o.end);
    const png = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' }, background: '#181b1f' }).render().asPng();
    const slug = panel.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    const file = path.join(o.outDir, `${o.uid}-${String(i + 1).padStart(2, '0')}-${slug}.png`);
    writeFileSync(file, png);
    written.push(file);
  }
  return written;
}
