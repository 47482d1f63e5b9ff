/**
 * Two runs row by row (`peercache-bench report a.json b.json`): ratios b/a of throughput and of
 * p50/p99, and whether the throughput difference is within the noise. With the repeats'
 * confidence intervals (a `<field>_ci95` on the row or in `extra`: [lo, hi] or a half-width) two
 * rows are within the noise when their intervals overlap; without them, when the ratio is within
 * ±threshold (default 5%), which the output says.
 */
import { fixed, humanCount, iecBytes, round } from './format.js';
import { differingFields, ReportInputError } from './load.js';
import { CONFIG_FIELDS, keyText, rowsByKey, type RowKey } from './match.js';
import type { Report, Row } from './types.js';

export type NoiseBasis = 'ci95' | 'threshold';

export interface DiffRow {
  key: RowKey;
  a: Row | null;
  b: Row | null;
  /** What the throughput figure is: pages/s for HiCache ops, ops/s otherwise. */
  unit: 'pages/s' | 'ops/s';
  a_throughput: number | null;
  b_throughput: number | null;
  /** b / a, 4 dp; null when either side is missing or zero. */
  throughput_ratio: number | null;
  p50_ratio: number | null;
  p99_ratio: number | null;
  /** null when a side is missing. */
  within_noise: boolean | null;
  noise_basis: NoiseBasis | null;
}

export interface ReportDiff {
  a: string;
  b: string;
  /** Configuration fields that differ between the runs ("page_size (131072 vs 16384)"). */
  config_differs: string[];
  threshold: number;
  rows: DiffRow[];
}

const throughputOf = (row: Row): number => (row.pages > 0 || row.op === 'exists' || row.op === 'get' || row.op === 'set' ? row.pages_per_s : row.ops_per_s);

function ratio(b: number | null | undefined, a: number | null | undefined): number | null {
  if (a === null || a === undefined || b === null || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || a === 0) return null;
  return round(b / a, 4);
}

/** A row's 95% interval of `field`, when the run recorded one. */
export function interval(row: Row, field: string): [number, number] | null {
  const bag = row as unknown as Record<string, unknown>;
  const raw = bag[`${field}_ci95`] ?? row.extra?.[`${field}_ci95`];
  const value = bag[field];
  if (Array.isArray(raw) && raw.length === 2 && raw.every((x) => typeof x === 'number' && Number.isFinite(x))) return [raw[0] as number, raw[1] as number];
  if (typeof raw === 'number' && Number.isFinite(raw) && typeof value === 'number') return [value - raw, value + raw];
  const lo = row.extra?.[`${field}_ci95_lo`];
  const hi = row.extra?.[`${field}_ci95_hi`];
  if (typeof lo === 'number' && typeof hi === 'number') return [lo, hi];
  return null;
}

function noise(a: Row, b: Row, threshold: number): { within: boolean; basis: NoiseBasis } {
  // Throughput's interval, in whichever field the run recorded (GB/s is proportional to pages/s).
  for (const field of [a.pages > 0 || a.op !== '' ? 'pages_per_s' : 'ops_per_s', 'throughput_gbps']) {
    const ia = interval(a, field);
    const ib = interval(b, field);
    if (ia && ib) return { within: ia[0] <= ib[1] && ib[0] <= ia[1], basis: 'ci95' };
  }
  const r = ratio(throughputOf(b), throughputOf(a));
  return { within: r !== null && Math.abs(r - 1) <= threshold, basis: 'threshold' };
}

/** Matches rows on op/threads/batch/page/layout; rows of one side only are kept with the other null. */
export function diffReports(a: Report, b: Report, names: { a: string; b: string }, opts: { threshold?: number } = {}): ReportDiff {
  const threshold = opts.threshold ?? 0.05;
  const ka = rowsByKey(a);
  const kb = rowsByKey(b);
  const config = differingFields(a.meta, b.meta, CONFIG_FIELDS);
  const matched = [...ka.keys()].filter((k) => kb.has(k));
  if (!matched.length) {
    throw new ReportInputError(
      `${names.a} and ${names.b} have no row in common (matched on op/threads/batch/page/layout)` +
        (config.length ? `; they differ in ${config.join(', ')}` : ''),
    );
  }
  const keys = [...ka.keys(), ...[...kb.keys()].filter((k) => !ka.has(k))];
  const rows = keys.map((k): DiffRow => {
    const ra = ka.get(k)?.row ?? null;
    const rb = kb.get(k)?.row ?? null;
    const key = (ka.get(k) ?? kb.get(k))!.key;
    const any = (ra ?? rb)!;
    const ok = (r: Row | null): r is Row => r !== null && r.ok;
    const n = ok(ra) && ok(rb) ? noise(ra, rb, threshold) : null;
    return {
      key,
      a: ra,
      b: rb,
      unit: any.pages > 0 || any.op !== '' ? 'pages/s' : 'ops/s',
      a_throughput: ok(ra) ? throughputOf(ra) : null,
      b_throughput: ok(rb) ? throughputOf(rb) : null,
      throughput_ratio: ok(ra) && ok(rb) ? ratio(throughputOf(rb), throughputOf(ra)) : null,
      p50_ratio: ok(ra) && ok(rb) ? ratio(rb.lat_us_p50, ra.lat_us_p50) : null,
      p99_ratio: ok(ra) && ok(rb) ? ratio(rb.lat_us_p99, ra.lat_us_p99) : null,
      within_noise: n ? n.within : null,
      noise_basis: n ? n.basis : null,
    };
  });
  return { a: names.a, b: names.b, config_differs: config, threshold, rows };
}

const x = (r: number | null): string => (r === null ? '-' : `×${r.toFixed(2)}`);

/** The noise cell: "≈" within the noise, "" outside it, "only A"/"only B" for unmatched rows. */
function noiseCell(d: DiffRow): string {
  if (!d.a) return 'only in B';
  if (!d.b) return 'only in A';
  if (d.within_noise === null) return 'failed';
  return d.within_noise ? '≈ noise' : '';
}

const DIFF_HEADERS = ['op', 'layout', 'page', 'batch', 'threads', 'A thr', 'B thr', 'B/A thr', 'A p50 µs', 'B p50 µs', 'B/A p50', 'A p99 µs', 'B p99 µs', 'B/A p99', 'noise'];

function diffCells(d: DiffRow): string[] {
  const k = d.key;
  const label = k.phase === 'latency-baseline' ? `${k.op} (latency)` : k.op;
  return [
    label, k.layout, iecBytes(k.page), String(k.batch), String(k.threads),
    d.a_throughput === null ? '-' : humanCount(d.a_throughput), d.b_throughput === null ? '-' : humanCount(d.b_throughput), x(d.throughput_ratio),
    fixed(d.a?.lat_us_p50, 1), fixed(d.b?.lat_us_p50, 1), x(d.p50_ratio),
    fixed(d.a?.lat_us_p99, 1), fixed(d.b?.lat_us_p99, 1), x(d.p99_ratio),
    noiseCell(d),
  ];
}

export function renderDiffMarkdown(diff: ReportDiff): string {
  const right = new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]);
  const body = diff.rows.map(diffCells);
  const widths = DIFF_HEADERS.map((h, i) => Math.max(h.length, 3, ...body.map((r) => r[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ')} |`;
  const sep = `| ${widths.map((w, i) => (right.has(i) ? `${'-'.repeat(w - 1)}:` : '-'.repeat(w))).join(' | ')} |`;
  const hasCi = (r: Row | null): boolean => r !== null && ['pages_per_s', 'ops_per_s', 'throughput_gbps'].some((f) => interval(r, f) !== null);
  const aCi = diff.rows.some((d) => hasCi(d.a));
  const bCi = diff.rows.some((d) => hasCi(d.b));
  // Say which run lacks intervals: "these runs" when only B does misled (A had them).
  const lacking = aCi && !bCi ? 'B has no repeats\' confidence intervals (A has)' : !aCi && bCi ? 'A has no repeats\' confidence intervals (B has)' : aCi && bCi ? 'some rows have no repeats\' confidence intervals' : 'these runs have no repeats\' confidence intervals';
  const basis = diff.rows.some((d) => d.noise_basis === 'threshold')
    ? `≈ noise: within ±${(diff.threshold * 100).toFixed(0)}% (${lacking})`
    : '≈ noise: the 95% confidence intervals of the repeats overlap';
  const lines = [
    '# PeerCache benchmark comparison',
    '',
    `- A: ${diff.a}`,
    `- B: ${diff.b}`,
    `- throughput: pages/s (ops/s for rows without pages); ratios are B/A (for latency, < 1 is faster)`,
    `- ${basis}`,
    ...(diff.config_differs.length ? [`- configuration differs: ${diff.config_differs.join(', ')}`] : []),
    '',
    line(DIFF_HEADERS),
    sep,
    ...body.map(line),
  ];
  return `${lines.join('\n')}\n`;
}

export function diffRecords(diff: ReportDiff): Record<string, string | number | boolean | null>[] {
  return diff.rows.map((d) => ({
    op: d.key.op,
    phase: d.key.phase,
    layout: d.key.layout,
    page: d.key.page,
    batch: d.key.batch,
    threads: d.key.threads,
    unit: d.unit,
    a_throughput: d.a_throughput,
    b_throughput: d.b_throughput,
    throughput_ratio: d.throughput_ratio,
    a_p50_us: d.a?.lat_us_p50 ?? null,
    b_p50_us: d.b?.lat_us_p50 ?? null,
    p50_ratio: d.p50_ratio,
    a_p99_us: d.a?.lat_us_p99 ?? null,
    b_p99_us: d.b?.lat_us_p99 ?? null,
    p99_ratio: d.p99_ratio,
    within_noise: d.within_noise,
    noise_basis: d.noise_basis,
    only_in: d.a ? (d.b ? null : 'a') : 'b',
  }));
}
