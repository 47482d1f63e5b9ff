/**
 * The sweep plot: throughput vs concurrency (or vs offered load, once rows carry it) on the left
 * axis, p50/p99 latency on a second (log) axis, the PEAK marked; one panel per op. Built as a
 * Vega-Lite spec and rendered to SVG headless by Vega (no browser, no canvas, no native build).
 * vega and vega-lite (~19 MB) are optional dependencies, loaded only when a plot is drawn: a
 * store-only install (`npm install --omit=optional`) has neither, and then a plot is a clear
 * ERR_PLOT_UNAVAILABLE while the JSON and Markdown are still written.
 */
import type { TopLevelSpec } from 'vega-lite';
import { PeercacheError } from '../../errors.js';
import { humanCount, iecBytes } from './format.js';
import { peakTies } from './peak.js';
import { latencyPer } from './render.js';
import { SMOKE_LABEL, type Report, type Row } from './types.js';

/**
 * A labelled point on a panel's throughput line. PEAK comes from the rows; an SLO peak or a knee
 * (once the report has them) is one more marker: `markers(report)` in PlotOptions.
 */
export interface PlotMarker {
  /** The panel (row.op, or row.path when op is empty). */
  series: string;
  /** The x value it marks (threads, or the offered load). */
  x: number;
  label: string;
}

export interface PlotOptions {
  /** Extra markers besides PEAK (SLO peak, knee). */
  markers?: (report: Report) => PlotMarker[];
  /** Panel width in px (default 560). */
  width?: number;
}

/** One sweep: the rows of one op over more than one x value. */
export interface SweepSeries {
  series: string;
  rows: Row[];
}

const seriesOf = (row: Row): string => row.op || row.path;

/** An open-loop row's offered load (pages/s), when the row records one; else the sweep is closed-loop. */
function offeredLoad(row: Row): number | undefined {
  const v = row.extra?.offered_pages_per_s;
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}

/** The report's sweeps (rows of the sweep phase, grouped by op, at least two x values each). */
export function sweeps(report: Report): SweepSeries[] {
  const groups = new Map<string, Row[]>();
  for (const row of report.results) {
    if (row.phase !== 'sweep' || !row.ok) continue;
    const key = seriesOf(row);
    groups.set(key, [...(groups.get(key) ?? []), row]);
  }
  const openLoop = (rows: Row[]) => rows.every((r) => offeredLoad(r) !== undefined);
  return [...groups]
    .map(([series, rows]) => ({ series, rows: [...rows].sort((a, b) => xOfRow(a, openLoop(rows)) - xOfRow(b, openLoop(rows))) }))
    // Two x values make a sweep; an interrupted run plots what it measured, a single point too.
    .filter((s) => new Set(s.rows.map((r) => xOfRow(r, openLoop(s.rows)))).size >= 2 || s.rows.some((r) => r.aborted));
}

function xOfRow(row: Row, openLoop: boolean, perProcess = 1): number {
  return openLoop ? offeredLoad(row)! : row.threads / perProcess;
}

/** drive --processes N: each row's threads are N × the concurrency asked for; the axis shows what was asked. */
function processesOf(report: Report): number {
  const n = report.meta.processes;
  return report.meta.mode === 'dist' && typeof n === 'number' && Number.isInteger(n) && n > 1 ? n : 1;
}

const COLORS = { 'pages/s': '#1f77b4', 'p50 µs': '#2ca02c', 'p99 µs': '#d62728' } as const;

function panel(report: Report, s: SweepSeries, markers: PlotMarker[], width: number): Record<string, unknown> {
  const openLoop = s.rows.every((r) => offeredLoad(r) !== undefined);
  const procs = processesOf(report);
  const xOf = (row: Row, open: boolean) => xOfRow(row, open, procs);
  const xTitle = openLoop ? 'offered load (pages/s)' : procs > 1 ? `concurrency per process (× ${procs} driver processes)` : 'concurrency (workers)';
  const xs = s.rows.map((r) => xOf(r, openLoop));
  const hasCi = s.rows.some((r) => r.pages_per_s_ci95 !== null && r.pages_per_s_ci95 !== undefined);
  const yTitle = hasCi ? 'throughput (pages/s; bars: 95% CI)' : 'throughput (pages/s)';
  const values = s.rows.flatMap((r) => {
    const x = xOf(r, openLoop);
    const ci = r.pages_per_s_ci95;
    return [
      { x, metric: 'pages/s', value: r.pages_per_s, ...(ci ? { lo: ci[0], hi: ci[1] } : {}) },
      ...(r.lat_us_p50 !== null ? [{ x, metric: 'p50 µs', value: r.lat_us_p50 }] : []),
      ...(r.lat_us_p99 !== null ? [{ x, metric: 'p99 µs', value: r.lat_us_p99 }] : []),
    ];
  });
  const peak = s.rows.find((r) => r.peak);
  const ties = peak ? peakTies(report.results).get(peak) : undefined;
  const tieText = peak && ties ? ` (≈ ${ties.map((r) => `x${xOf(r, openLoop)}`).join(', ')} within noise)` : '';
  const marked = [
    ...(peak ? [{ x: xOf(peak, openLoop), value: peak.pages_per_s, label: `PEAK ${humanCount(peak.pages_per_s)} pages/s${tieText}` }] : []),
    ...s.rows.filter((r) => r.slo_peak === true).map((r) => ({ x: xOf(r, openLoop), value: r.pages_per_s, label: `SLO-PEAK p99 ${r.lat_us_p99} µs${typeof report.meta.slo_p99_us === 'number' ? ` ≤ ${report.meta.slo_p99_us}` : ''}` })),
    ...s.rows.filter((r) => r.knee === true).map((r) => ({ x: xOf(r, openLoop), value: r.pages_per_s, label: 'knee' })),
    ...markers
      .filter((m) => m.series === s.series)
      .map((m) => ({ x: m.x, value: s.rows.find((r) => xOf(r, openLoop) === m.x)?.pages_per_s ?? null, label: m.label }))
      .filter((m) => m.value !== null),
  ];
  // One label per point: PEAK, SLO-PEAK and knee on the same row read as one line.
  const byX = new Map<number, { x: number; value: number | null; label: string }>();
  for (const m of marked) {
    const cur = byX.get(m.x);
    byX.set(m.x, cur ? { ...cur, label: `${cur.label} · ${m.label}` } : m);
  }
  // A label on the right half of the panel ends at its point (it ran into the right axis), one on the left starts there.
  const xsSorted = [...new Set(xs)].sort((a, b) => a - b);
  const marks = [...byX.values()].map((m) => ({ ...m, side: xsSorted.indexOf(m.x) >= xsSorted.length / 2 ? 'right' : 'left' }));
  const first = s.rows[0];
  const layout = typeof report.meta.layout === 'string' ? ` (${report.meta.layout})` : '';
  const x = {
    field: 'x',
    type: 'quantitative',
    title: xTitle,
    scale: openLoop ? { type: 'linear', zero: false } : { type: 'log', base: 2 },
    axis: openLoop ? {} : { values: xs, format: 'd' },
  };
  const color = {
    field: 'metric',
    type: 'nominal',
    title: null,
    scale: { domain: Object.keys(COLORS), range: Object.values(COLORS) },
    legend: { orient: 'top' },
  };
  return {
    title: {
      text: `${s.series}: ${iecBytes(first.block_size)} pages${layout}, batch ${first.batch_size}, ${report.meta.protocol}${report.meta.smoke ? ` (${SMOKE_LABEL})` : ''}`,
      anchor: 'start',
    },
    width,
    height: 240,
    data: { values },
    layer: [
      {
        layer: [
          {
            transform: [{ filter: "datum.metric === 'pages/s'" }],
            mark: { type: 'line', point: true, strokeWidth: 2.5 },
            encoding: { x, y: { field: 'value', type: 'quantitative', title: yTitle, axis: { format: '~s', titleColor: COLORS['pages/s'] } }, color },
          },
          // The 95% CI of each repeated row (--repeat): the noise a reader must see beside the line.
          ...(hasCi
            ? [
                {
                  transform: [{ filter: "datum.metric === 'pages/s' && isValid(datum.lo)" }],
                  mark: { type: 'errorbar', ticks: { size: 8 }, color: COLORS['pages/s'] },
                  // The same title as the line's: Vega-Lite joins a layer's differing titles ("…, lo").
                  encoding: { x, y: { field: 'lo', type: 'quantitative', title: yTitle }, y2: { field: 'hi' } },
                },
              ]
            : []),
          ...(marks.length
            ? [
                {
                  data: { values: marks },
                  layer: [
                    { mark: { type: 'point', shape: 'diamond', size: 160, filled: true, color: '#000' }, encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'value', type: 'quantitative' } } },
                    ...(['left', 'right'] as const).map((side) => ({
                      transform: [{ filter: `datum.side === '${side}'` }],
                      mark: { type: 'text', dy: -14, dx: side === 'left' ? 6 : -6, align: side === 'left' ? 'left' : 'right', fontWeight: 'bold', fontSize: 12 },
                      encoding: { x: { field: 'x', type: 'quantitative' }, y: { field: 'value', type: 'quantitative' }, text: { field: 'label' } },
                    })),
                  ],
                },
              ]
            : []),
        ],
      },
      {
        transform: [{ filter: "datum.metric !== 'pages/s'" }],
        mark: { type: 'line', point: true, strokeDash: [6, 3] },
        encoding: {
          x,
          y: { field: 'value', type: 'quantitative', title: `latency µs (per ${latencyPer(first)})`, scale: { type: 'log' }, axis: { orient: 'right', format: '~s', grid: false } },
          color,
        },
      },
    ],
    resolve: { scale: { y: 'independent' } },
  };
}

/** The Vega-Lite spec of the report's sweeps, or undefined when the report has none. */
export function plotSpec(report: Report, opts: PlotOptions = {}): TopLevelSpec | undefined {
  const all = sweeps(report);
  if (!all.length) return undefined;
  const markers = opts.markers?.(report) ?? [];
  const panels = all.map((s) => panel(report, s, markers, opts.width ?? 560));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    background: 'white',
    padding: 12,
    config: { font: 'sans-serif', view: { stroke: '#ccc' } },
    vconcat: panels,
    spacing: 36,
  } as unknown as TopLevelSpec;
}

/** Loads the optional renderers; a missing one is ERR_PLOT_UNAVAILABLE saying how to add them. */
async function loadRenderers(): Promise<{ compile: typeof import('vega-lite').compile; parse: typeof import('vega').parse; View: typeof import('vega').View }> {
  try {
    const [{ compile }, { parse, View }] = await Promise.all([import('vega-lite'), import('vega')]);
    return { compile, parse, View };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ERR_MODULE_NOT_FOUND') throw e;
    throw new PeercacheError(
      'ERR_PLOT_UNAVAILABLE',
      'plots need the optional packages vega and vega-lite, which are not installed (npm install vega vega-lite); the report is written without its SVG',
      { cause: e },
    );
  }
}

/** The report's sweep plot as an SVG document, or undefined when the report has no sweep. */
export async function plotReport(report: Report, opts: PlotOptions = {}): Promise<string | undefined> {
  const spec = plotSpec(report, opts);
  if (!spec) return undefined;
  const { compile, parse, View } = await loadRenderers();
  const view = new View(parse(compile(spec).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
