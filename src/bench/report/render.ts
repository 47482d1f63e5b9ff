/**
 * Renderers: each returns a string (the caller prints or writes it). Tables follow the original's
 * columns and number formats. The console table is padded for reading in a terminal and is also
 * valid Markdown; the Markdown table adds alignment markers and escapes `|` in cells.
 */
import { fixed, humanCount, iecBytes, thousands, toJsonSafe } from './format.js';
import { PERCENTILE_MIN_SAMPLES, type GatedPercentile } from './metrics.js';
import { peakTies, peakTieText } from './peak.js';
import { SMOKE_LABEL, type Host, type Meta, type Report, type Row } from './types.js';

export type Format = 'md' | 'console' | 'json';
/** hicache: the page-oriented table (hicache modes, two-host, micro); compact: compare and mooncake. */
export type TableKind = 'hicache' | 'compact';
type Target = 'md' | 'console';

export interface RenderOptions {
  /** ANSI bold for the PEAK row and banner (console only). Default false. */
  color?: boolean;
  /** Markdown title (without "# "); default depends on meta.mode. */
  title?: string;
  /** Which table; default compact for compare/mooncake, hicache otherwise. */
  table?: TableKind;
  /** The plot's file name beside the Markdown (embedded as an image when set). */
  plotFile?: string;
}

/**
 * A table column: its header, alignment and how a row becomes its cell. Tables are lists of these,
 * so a new row field (a confidence interval, a knee, …) is one more entry, in one place.
 */
export interface Column {
  header: string;
  right: boolean;
  cell(row: Row, ctx: CellContext): string;
}

/** What a cell may need besides its row (report-level facts). */
export interface CellContext {
  /** The run's page layout (meta.layout); rows do not carry it. */
  layout?: string;
  /** PEAK rows that the run cannot tell from others (peak.ts peakTies): "x4 ≈ x2 within noise". */
  peakTies?: Map<Row, Row[]>;
}

/** A 95% CI as "lo–hi" in the column's format, '-' without one (a single trial). */
const ciCell = (pick: (row: Row) => [number, number] | null, format: (n: number) => string) => (row: Row): string => {
  const ci = row.ok ? pick(row) : null;
  return ci ? `${format(ci[0])}–${format(ci[1])}` : '-';
};

const col = (header: string, right: boolean, cell: (row: Row, ctx: CellContext) => string): Column => ({ header, right, cell });
const latCell = (pick: (row: Row) => number | null) => (row: Row): string => (row.ok ? fixed(pick(row), 1) : '-');
/** A gated percentile: its value, or why it is null (too few samples for it; never the max). */
const pctCell = (name: GatedPercentile, pick: (row: Row) => number | null) => (row: Row): string => {
  if (!row.ok) return '-';
  const v = pick(row);
  // "Too few calls" only where we measure the latencies: Mooncake's transfer_engine_bench reports
  // no percentiles at all, so its rows have none to gate ("-").
  if (v === null && row.system !== 'mooncake' && row.calls > 0 && row.calls < PERCENTILE_MIN_SAMPLES[name]) return `n/a (<${PERCENTILE_MIN_SAMPLES[name]} calls)`;
  return fixed(v, 1);
};
const rate = (pick: (row: Row) => string) => (row: Row): string => (row.ok ? pick(row) : 'n/a');

/** GB/s; exists moves no payload, so it has none ("–"), not 0.000. */
export function gbpsCell(row: Row): string {
  if (!row.ok) return 'n/a';
  return row.op === 'exists' ? '–' : row.throughput_gbps.toFixed(3);
}

/** What one latency sample timed: "page" (batch 1 or latency mode), "call of N pages", or "read". */
export function latencyPer(row: Row): string {
  if (row.lat_unit === 'read') return row.batch_size > 1 ? `call of ${row.batch_size} reads` : 'read';
  if (row.lat_unit === 'page' || row.batch_size === 1) return 'page';
  return `call of ${row.batch_size} pages`;
}

const C = {
  op: col('op', false, (r) => r.op || r.path),
  layout: col('layout', false, (_r, ctx) => ctx.layout ?? '-'),
  proto: col('proto', false, (r) => r.protocol),
  page: col('page', true, (r) => iecBytes(r.block_size)),
  batch: col('batch', true, (r) => String(r.batch_size)),
  threads: col('threads', true, (r) => String(r.threads)),
  pagesPerS: col('pages/s', true, rate((r) => humanCount(r.pages_per_s))),
  pagesCi: col('pages/s 95% CI', true, ciCell((r) => r.pages_per_s_ci95, humanCount)),
  gbpsCi: col('GB/s 95% CI', true, ciCell((r) => (r.op === 'exists' ? null : r.throughput_gbps_ci95), (n) => n.toFixed(3))),
  tokensPerS: col('tokens/s', true, rate((r) => humanCount(r.tokens_per_s))),
  gbps: col('GB/s', true, gbpsCell),
  p50: col('p50 µs', true, latCell((r) => r.lat_us_p50)),
  p95: col('p95 µs', true, pctCell('p95', (r) => r.lat_us_p95)),
  p99: col('p99 µs', true, pctCell('p99', (r) => r.lat_us_p99)),
  p999: col('p999 µs', true, pctCell('p999', (r) => r.lat_us_p999)),
  max: col('max µs', true, latCell((r) => r.lat_us_max)),
  latPer: col('latency per', false, latencyPer),
  hit: col('hit%', true, (r) => (!r.ok || r.hit_rate === null || !Number.isFinite(r.hit_rate) ? '-' : String(Math.round(r.hit_rate * 100)))),
  calls: col('calls', true, (r) => thousands(r.calls)),
  cpu: col('client CPU %', true, (r) => fixed(r.cpu_client_pct, 0)),
  rss: col('RSS/worker', true, (r) => iecBytes(r.rss_per_worker_bytes)),
  note: col('note', false, (r, ctx) => noteCell(r, ctx)),
  // compact (compare, mooncake)
  system: col('system', false, (r) => r.system),
  path: col('path', false, (r) => r.path),
  block: col('block', true, (r) => iecBytes(r.block_size)),
  opsPerS: col('ops/s', true, rate((r) => thousands(r.ops_per_s))),
} satisfies Record<string, Column>;

/** The console HiCache table (a terminal's width). */
export const HICACHE_COLUMNS: Column[] = [C.op, C.proto, C.page, C.batch, C.threads, C.pagesPerS, C.tokensPerS, C.gbps, C.p50, C.p95, C.p99, C.p999, C.max, C.hit, C.note];
/** The Markdown HiCache table: every measured field a reader compares, the latency unit per row. */
export const HICACHE_MD_COLUMNS: Column[] = [
  C.op, C.layout, C.proto, C.page, C.batch, C.threads, C.pagesPerS, C.pagesCi, C.tokensPerS, C.gbps, C.p50, C.p95, C.p99, C.p999, C.max,
  C.latPer, C.hit, C.calls, C.cpu, C.rss, C.note,
];
export const COMPACT_COLUMNS: Column[] = [C.system, C.path, C.proto, C.block, C.batch, C.threads, C.gbps, C.gbpsCi, C.opsPerS, C.p50, C.p99, C.note];
/** The seed page's baseline template, plus the latency unit. */
export const BASELINE_COLUMNS: Column[] = [C.op, C.layout, C.page, C.batch, C.threads, C.pagesPerS, C.tokensPerS, C.gbps, C.p50, C.p99, C.p999, C.latPer];

const BOLD = '\x1b[1m';
const RESET_BOLD = '\x1b[22m';

export const SMOKE_BANNER = `*** ${SMOKE_LABEL}: protocol tcp is a functional check, not a performance figure ***`;

/** The note cell: "PEAK" first, then the phase tag, then the row's note (with the smoke label). */
export function noteCell(row: Row, ctx: CellContext = {}): string {
  const parts: string[] = [];
  const ties = ctx.peakTies?.get(row);
  if (row.peak) parts.push(ties ? `PEAK (${peakTieText(row, ties)})` : 'PEAK');
  if (row.aborted === true) parts.push('ABORTED');
  if (row.slo_peak === true) parts.push('SLO-PEAK');
  if (row.knee === true) parts.push('KNEE');
  if (row.phase === 'latency-baseline' && !row.note.includes('latency-baseline')) parts.push('latency-baseline');
  if (row.note) parts.push(row.note);
  if (row.smoke && !row.note.includes(SMOKE_LABEL)) parts.push(SMOKE_LABEL);
  return parts.join('; ');
}

/** One console HiCache-table row's cells, in HICACHE_COLUMNS order. */
export function hicacheCells(row: Row, ctx: CellContext = {}): string[] {
  return HICACHE_COLUMNS.map((c) => c.cell(row, ctx));
}

/** One compact-table row's cells, in COMPACT_COLUMNS order (GB/s unbolded). */
export function compactCells(row: Row, ctx: CellContext = {}): string[] {
  return COMPACT_COLUMNS.map((c) => c.cell(row, ctx));
}

function mdEscape(cell: string): string {
  return cell.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

export interface TableOptions {
  color?: boolean;
  /** Overrides the kind's columns (e.g. BASELINE_COLUMNS). */
  columns?: Column[];
  /** Row labels replacing the op cell (the baseline's "get (peak)"). */
  labels?: string[];
  ctx?: CellContext;
}

function columnsFor(kind: TableKind, target: Target): Column[] {
  if (kind === 'compact') return COMPACT_COLUMNS;
  return target === 'md' ? HICACHE_MD_COLUMNS : HICACHE_COLUMNS;
}

/** A pipe table: padded columns; Markdown also gets alignment colons and escaped cells. */
export function renderTable(rows: readonly Row[], kind: TableKind, target: Target, opts: TableOptions = {}): string {
  const columns = opts.columns ?? columnsFor(kind, target);
  const ctx = opts.ctx ?? {};
  // Markdown: compact GB/s is always bold (as the original); hicache bolds the PEAK's pages/s.
  const emphasis = columns.indexOf(kind === 'hicache' ? C.pagesPerS : C.gbps);
  const body = rows.map((row, r) => {
    const cells = columns.map((c) => (c === C.op && opts.labels ? opts.labels[r] : c.cell(row, ctx)));
    if (target === 'md') {
      const out = cells.map(mdEscape);
      if (emphasis >= 0 && !opts.labels && ((kind === 'compact' && row.ok) || (kind === 'hicache' && row.peak))) out[emphasis] = `**${out[emphasis]}**`;
      return out;
    }
    // Console without colour: an asterisk before the op marks the PEAK row.
    if (row.peak && !opts.color) cells[0] = `*${cells[0]}`;
    return cells;
  });
  const headers = columns.map((c) => c.header);
  const widths = headers.map((h, i) => Math.max(h.length, target === 'md' ? 3 : 1, ...body.map((r) => r[i].length)));
  const pad = (cell: string, i: number): string => (columns[i].right ? cell.padStart(widths[i]) : cell.padEnd(widths[i]));
  const line = (cells: string[]): string => `| ${cells.map(pad).join(' | ')} |`;
  const sep = columns.map((c, i) =>
    target === 'md' ? (c.right ? `${'-'.repeat(widths[i] - 1)}:` : '-'.repeat(widths[i])) : '-'.repeat(widths[i]),
  );
  const out = [line(headers), `| ${sep.join(' | ')} |`];
  body.forEach((cells, r) => {
    const text = line(cells);
    out.push(target === 'console' && opts.color && rows[r].peak ? `${BOLD}${text}${RESET_BOLD}` : text);
  });
  return out.join('\n');
}

/**
 * The seed page's baseline rows: get (latency) — the latency-baseline get — then the PEAK of
 * each op's sweep. Rows that the run did not measure are left out.
 */
export function baselineRows(rows: readonly Row[]): { label: string; row: Row }[] {
  const out: { label: string; row: Row }[] = [];
  const latency = rows.find((r) => r.op === 'get' && r.phase === 'latency-baseline' && r.ok);
  if (latency) out.push({ label: 'get (latency)', row: latency });
  for (const op of ['get', 'set', 'exists'] as const) {
    const peak = rows.find((r) => r.op === op && r.peak && r.phase !== 'latency-baseline');
    if (peak) out.push({ label: `${op} (peak)`, row: peak });
  }
  return out;
}

const LOOPBACK = /^(127\.|localhost$|::1$|0\.0\.0\.0$)/;

/** One sentence: where producer and consumer ran (loopback or cross-node) and over what. */
export function setupSentence(report: Pick<Report, 'meta'>): string {
  const m = report.meta;
  const device = m.devices && m.devices.length ? m.devices.join(', ') : m.device;
  const proto =
    m.protocol === 'rdma'
      ? `RDMA (UCX one-sided READ)${device ? ` on ${device}` : ''}`
      : m.protocol === 'shm'
        ? 'shm (UCX shared memory between processes: the same one-sided READ path, no NIC)'
        : 'tcp (a functional smoke test, not a performance figure)';
  if (m.mode === 'dist') {
    const serve = typeof m.serve_host === 'string' ? m.serve_host : typeof m.remote === 'string' ? m.remote.replace(/:\d+$/, '') : '';
    const local = typeof m.local_host === 'string' ? m.local_host : '';
    const oneHost = !serve || LOOPBACK.test(serve) || serve === local;
    return oneHost
      ? `Loopback: serve and drive ran on one host, over ${proto}; this is not a cross-node figure.`
      : `Cross-node: this host${local ? ` (${local})` : ''} drove the serve node at ${serve}, over ${proto}.`;
  }
  const loop = m.protocol === 'rdma' ? ' (the NIC loops back: not fabric behaviour; use serve/drive on two hosts for a cross-node figure)' : '';
  return `Loopback: producer and consumer ran on one host${loop}, over ${proto}.`;
}

export function defaultTable(meta: Pick<Meta, 'mode'>): TableKind {
  return meta.mode === 'compare' || meta.mode === 'mooncake' ? 'compact' : 'hicache';
}

export function defaultTitle(meta: Pick<Meta, 'mode'>): string {
  switch (meta.mode) {
    case 'compare': return 'PeerCache vs Mooncake baseline';
    case 'mooncake': return 'Mooncake transfer_engine_bench';
    case 'micro': return 'PeerCache data-plane microbench';
    case 'dist': return 'PeerCache HiCache benchmark, two hosts (serve/drive)';
    default: return 'PeerCache HiCache benchmark';
  }
}

function metaValue(v: unknown): string {
  if (v === null) return '-';
  if (Array.isArray(v)) return `[${v.map(metaValue).join(',')}]`;
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** "k=v, k=v" over the meta keys in order (undefined skipped, arrays as [a,b], null as -). */
export function metaLine(meta: Meta): string {
  return Object.entries(meta)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `${k}=${metaValue(v)}`)
    .join(', ');
}

/** "<platform> <cpu_model> | cpus=<n> | node <v> | ucx <v>" */
export function hostLine(host: Host): string {
  return `${host.platform} ${host.cpu_model} | cpus=${host.cpu_count} | node ${host.node_version} | ucx ${host.ucx_version ?? '-'}${host.glibc_tunables ? ` | GLIBC_TUNABLES=${host.glibc_tunables}` : ''}`;
}

function isSmoke(report: Report): boolean {
  return report.meta.smoke || report.results.some((r) => r.smoke);
}

/**
 * A run that is not smoke itself but has smoke rows (compare --protocol shm whose Mooncake side ran
 * over tcp): only those rows are a functional check, and the banner says which.
 */
/** The protocols that made a run smoke: its rows' (a Mooncake run asked for rdma that ran tcp is smoke for tcp). */
function smokeProtocols(report: Report): string {
  const rows = [...new Set(report.results.filter((r) => r.smoke).map((r) => r.protocol))];
  return rows.length ? rows.join(', ') : report.meta.protocol;
}

function smokeRowsText(report: Report): string {
  const protos = [...new Set(report.results.filter((r) => r.smoke).map((r) => r.protocol))].join(', ');
  return `${SMOKE_LABEL}: the rows marked so (protocol ${protos}) are a functional check, not a performance figure; the ${report.meta.protocol} rows stand`;
}

export function renderConsole(report: Report, opts: RenderOptions = {}): string {
  const lines: string[] = [];
  if (isSmoke(report)) {
    const banner = report.meta.smoke ? SMOKE_BANNER : `*** ${smokeRowsText(report)} ***`;
    lines.push(opts.color ? `${BOLD}${banner}${RESET_BOLD}` : banner);
  }
  lines.push(`PeerCache benchmark @ ${report.created_at}`);
  lines.push(`host: ${hostLine(report.host)}`);
  const meta = metaLine(report.meta);
  if (meta) lines.push(`meta: ${meta}`);
  lines.push('', renderTable(report.results, opts.table ?? defaultTable(report.meta), 'console', { ...opts, ctx: { peakTies: peakTies(report.results) } }));
  const notes = [...report.notes, ...markNotes(report.results)];
  if (notes.length) lines.push('', 'notes:', ...notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

/** Inline code that survives backticks inside `text`. */
function codeSpan(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((s) => s.length));
  const fence = '`'.repeat(longest + 1);
  const padded = text.startsWith('`') || text.endsWith('`') ? ` ${text} ` : text;
  return `${fence}${padded}${fence}`;
}

/** Byte-valued meta keys, shown as KiB/MiB/GiB in the Markdown. */
const BYTE_KEYS = new Set(['page_size', 'max_bytes', 'block_size', 'working_set_bytes']);

function metaItem(key: string, v: unknown): string {
  if (typeof v === 'number' && BYTE_KEYS.has(key)) return `${iecBytes(v)} (${v} bytes)`;
  if (Array.isArray(v) && key === 'block_sizes') return v.map((x) => (typeof x === 'number' ? iecBytes(x) : metaValue(x))).join(', ');
  if (Array.isArray(v)) return v.length ? v.map(metaValue).join(', ') : '-';
  return metaValue(v);
}

/** The host block as a Markdown list. */
export function hostList(host: Host): string[] {
  return [
    `- host: ${host.hostname} (${host.platform} ${host.os_release}, ${host.arch})`,
    `- CPU: ${host.cpu_model}, ${host.cpu_count} CPUs`,
    `- node ${host.node_version}, peercache ${host.package_version}, UCX ${host.ucx_version ?? '-'}`,
    ...(host.glibc_tunables ? [`- GLIBC_TUNABLES: ${codeSpan(host.glibc_tunables)}`] : []),
  ];
}

/** The meta block as a Markdown list, one parameter per line. */
export function metaList(meta: Meta): string[] {
  return Object.entries(meta)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `- ${k}: ${mdEscape(metaItem(k, v))}`);
}

export function renderMarkdown(report: Report, opts: RenderOptions = {}): string {
  const lines: string[] = [`# ${opts.title ?? defaultTitle(report.meta)}`, ''];
  if (isSmoke(report)) {
    lines.push(
      report.meta.smoke
        ? `> **${SMOKE_LABEL}**: protocol \`${smokeProtocols(report)}\` is a functional check, not a performance scenario; do not publish these figures.`
        : `> **${smokeRowsText(report)}**.`,
      '',
    );
  }
  const kind = opts.table ?? defaultTable(report.meta);
  const ctx: CellContext = { layout: report.meta.layout, peakTies: peakTies(report.results) };
  const baseline = kind === 'hicache' ? baselineRows(report.results) : [];
  if (baseline.length) {
    lines.push(
      renderTable(baseline.map((b) => b.row), 'hicache', 'md', { columns: BASELINE_COLUMNS, labels: baseline.map((b) => b.label), ctx }),
      '',
    );
  }
  lines.push(setupSentence(report), '');
  if (opts.plotFile) lines.push(`![throughput and latency vs concurrency](${encodeURI(opts.plotFile)})`, '');
  lines.push('## Host', '', ...hostList(report.host), '');
  lines.push('## Run', '', `- created: ${report.created_at}`, `- command: ${codeSpan(report.command)}`, `- tool: ${report.tool.name} ${report.tool.version}`, ...metaList(report.meta), '');
  lines.push('## Results', '', renderTable(report.results, kind, 'md', { ctx }));
  const intervals = intervalSection(report);
  if (intervals.length) lines.push('', ...intervals);
  const notes = [...report.notes, ...markNotes(report.results)];
  if (notes.length) lines.push('', '## Notes', '', ...notes.map((n) => `- ${n.replace(/\r?\n/g, ' ')}`));
  return `${lines.join('\n')}\n`;
}

/** What the marks in a table mean: PEAK, ≈, SLO-PEAK, KNEE, NOISY and the CI columns. */
export const MARK_NOTES = {
  peak: 'PEAK: the highest sustained throughput of its sweep (median of the trials with --repeat); closed loop, no latency bound.',
  tie: "PEAK (x4 ≈ x2 within noise): the PEAK's 95% CI overlaps those rows': this run cannot tell them apart; repeat with more trials (--repeat) or on a quieter host before quoting one.",
  slo: 'SLO-PEAK: the highest throughput whose p99 meets --slo-p99.',
  knee: 'KNEE: the last concurrency before latency grows faster than throughput (the first maximum of throughput / p50 latency); past it, more workers buy latency.',
  noisy: 'NOISY: the trials of the row disagree by more than --noisy-cv (coefficient of variation, default 5%); its figures move from run to run.',
  ci: '95% CI: the interval of the figure over the row\'s trials (--repeat; Student\'s t on log values, so never below zero); "-" with one trial.',
} as const;

/** The MARK_NOTES of the marks these rows carry, in that order. */
export function markNotes(rows: readonly Row[]): string[] {
  const out: string[] = [];
  if (rows.some((r) => r.peak)) out.push(MARK_NOTES.peak);
  if (peakTies(rows).size) out.push(MARK_NOTES.tie);
  if (rows.some((r) => r.slo_peak === true)) out.push(MARK_NOTES.slo);
  if (rows.some((r) => r.knee === true)) out.push(MARK_NOTES.knee);
  if (rows.some((r) => r.noisy === true)) out.push(MARK_NOTES.noisy);
  if (rows.some((r) => r.pages_per_s_ci95 !== null || r.throughput_gbps_ci95 !== null)) out.push(MARK_NOTES.ci);
  return out;
}

const SPARK = '▁▂▃▄▅▆▇█';

/** Values as a one-line bar chart, scaled from 0 to the largest (not min to max, which would blow noise up; a flat 0 series is all ▁). */
export function sparkline(values: readonly number[]): string {
  const top = Math.max(0, ...values);
  return values.map((v) => SPARK[top > 0 ? Math.min(7, Math.round((v / top) * 7)) : 0]).join('');
}

/**
 * --interval: one line per row with intervals: the measured intervals' pages/s range and shape,
 * the worst interval p99, and the warmup's first and last interval (the full series is in the
 * JSON `intervals` and the .hlog).
 */
export function intervalSection(report: Pick<Report, 'results'>): string[] {
  const rows = report.results.map((row, index) => ({ row, index })).filter(({ row }) => row.intervals?.length);
  if (!rows.length) return [];
  const lines = [
    '## Intervals',
    '',
    'pages/s of each measured interval (min, max, and over time), worst interval p99 (µs), and the warmup\'s first → last interval pages/s.',
    '',
    '| # | op | threads | batch | intervals | pages/s min | pages/s max | over time | worst p99 | warmup pages/s |',
    '|---:|---|---:|---:|---:|---:|---:|---|---:|---|',
  ];
  for (const { row, index } of rows) {
    const m = row.intervals!.filter((iv) => iv.phase === 'measure');
    const w = row.intervals!.filter((iv) => iv.phase === 'warmup');
    const rates = m.map((iv) => iv.pages_per_s);
    const p99s = m.map((iv) => iv.lat_us_p99).filter((x): x is number => x !== null);
    lines.push(
      `| ${index} | ${mdEscape(row.op || row.path)} | ${row.threads} | ${row.batch_size} | ${m.length} | ${rates.length ? humanCount(Math.min(...rates)) : '-'} | ${rates.length ? humanCount(Math.max(...rates)) : '-'} | ${sparkline(rates)} | ${p99s.length ? fixed(Math.max(...p99s), 1) : '-'} | ${w.length ? `${humanCount(w[0].pages_per_s)} → ${humanCount(w[w.length - 1].pages_per_s)}` : '-'} |`,
    );
  }
  return lines;
}

/** JSON, indent 2, with every non-finite number turned into null. */
export function renderJson(report: Report): string {
  return `${JSON.stringify(toJsonSafe(report), null, 2)}\n`;
}

/** Renderers by format name (like mitata's `formats`). */
export const formats: Record<Format, (report: Report, opts?: RenderOptions) => string> = {
  md: renderMarkdown,
  console: renderConsole,
  json: (report) => renderJson(report),
};

export function render(report: Report, format: Format, opts: RenderOptions = {}): string {
  return formats[format](report, opts);
}
