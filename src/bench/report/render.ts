/**
 * Renderers: each returns a string (the caller prints or writes it). Tables follow the original's
 * columns and number formats. The console table is padded for reading in a terminal and is also
 * valid Markdown; the Markdown table adds alignment markers and escapes `|` in cells.
 */
import { fixed, humanBytes, humanCount, thousands, toJsonSafe } from './format.js';
import { SMOKE_LABEL, type Host, type Meta, type Report, type Row } from './types.js';

export type Format = 'md' | 'console' | 'json';
/** hicache: the page-oriented table (hicache modes, dist, micro); compact: compare and mooncake. */
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

interface Column {
  header: string;
  right: boolean;
}

const HICACHE_COLUMNS: Column[] = [
  ['op', false], ['proto', false], ['page', true], ['batch', true], ['threads', true],
  ['pages/s', true], ['tokens/s', true], ['GB/s', true], ['p50 µs', true], ['p95 µs', true],
  ['p99 µs', true], ['p999 µs', true], ['max µs', true], ['hit%', true], ['note', false],
].map(([header, right]) => ({ header: header as string, right: right as boolean }));

const COMPACT_COLUMNS: Column[] = [
  ['system', false], ['path', false], ['proto', false], ['block', true], ['batch', true],
  ['threads', true], ['GB/s', true], ['ops/s', true], ['p50 µs', true], ['p99 µs', true], ['note', false],
].map(([header, right]) => ({ header: header as string, right: right as boolean }));

const BOLD = '\x1b[1m';
const RESET_BOLD = '\x1b[22m';

export const SMOKE_BANNER = `*** ${SMOKE_LABEL}: protocol tcp is a functional check, not a performance figure ***`;

/** The note cell: "PEAK" first, then the phase tag, then the row's note (with the smoke label). */
export function noteCell(row: Row): string {
  const parts: string[] = [];
  if (row.peak) parts.push('PEAK');
  if (row.phase === 'latency-baseline' && !row.note.includes('latency-baseline')) parts.push('latency-baseline');
  if (row.note) parts.push(row.note);
  if (row.smoke && !row.note.includes(SMOKE_LABEL)) parts.push(SMOKE_LABEL);
  return parts.join('; ');
}

/** One HiCache-table row's cells, in HICACHE_COLUMNS order. */
export function hicacheCells(row: Row): string[] {
  const na = !row.ok;
  const lat = (x: number | null): string => (na ? '-' : fixed(x, 1));
  return [
    row.op || row.path,
    row.protocol,
    humanBytes(row.block_size),
    String(row.batch_size),
    String(row.threads),
    na ? 'n/a' : humanCount(row.pages_per_s),
    na ? 'n/a' : humanCount(row.tokens_per_s),
    na ? 'n/a' : row.throughput_gbps.toFixed(3),
    lat(row.lat_us_p50),
    lat(row.lat_us_p95),
    lat(row.lat_us_p99),
    lat(row.lat_us_p999),
    lat(row.lat_us_max),
    na || row.hit_rate === null || !Number.isFinite(row.hit_rate) ? '-' : String(Math.round(row.hit_rate * 100)),
    noteCell(row),
  ];
}

/** One compact-table row's cells, in COMPACT_COLUMNS order (GB/s unbolded). */
export function compactCells(row: Row): string[] {
  const na = !row.ok;
  const lat = (x: number | null): string => (na ? '-' : fixed(x, 1));
  return [
    row.system,
    row.path,
    row.protocol,
    humanBytes(row.block_size),
    String(row.batch_size),
    String(row.threads),
    na ? 'n/a' : row.throughput_gbps.toFixed(3),
    na ? 'n/a' : thousands(row.ops_per_s),
    lat(row.lat_us_p50),
    lat(row.lat_us_p99),
    noteCell(row),
  ];
}

function mdEscape(cell: string): string {
  return cell.replace(/\\/g, '\\\\').replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}

/** A pipe table: padded columns; Markdown also gets alignment colons and escaped cells. */
export function renderTable(rows: readonly Row[], kind: TableKind, target: Target, opts: { color?: boolean } = {}): string {
  const columns = kind === 'hicache' ? HICACHE_COLUMNS : COMPACT_COLUMNS;
  const emphasis = kind === 'hicache' ? 5 /* pages/s */ : 6; /* GB/s */
  const body = rows.map((row) => {
    const cells = kind === 'hicache' ? hicacheCells(row) : compactCells(row);
    if (target === 'md') {
      const out = cells.map(mdEscape);
      // Markdown: compact GB/s is always bold (as the original); hicache bolds the PEAK's pages/s.
      if ((kind === 'compact' && row.ok) || (kind === 'hicache' && row.peak)) out[emphasis] = `**${out[emphasis]}**`;
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

export function renderConsole(report: Report, opts: RenderOptions = {}): string {
  const lines: string[] = [];
  if (isSmoke(report)) lines.push(opts.color ? `${BOLD}${SMOKE_BANNER}${RESET_BOLD}` : SMOKE_BANNER);
  lines.push(`PeerCache benchmark @ ${report.created_at}`);
  lines.push(`host: ${hostLine(report.host)}`);
  const meta = metaLine(report.meta);
  if (meta) lines.push(`meta: ${meta}`);
  lines.push('', renderTable(report.results, opts.table ?? defaultTable(report.meta), 'console', opts));
  if (report.notes.length) lines.push('', 'notes:', ...report.notes.map((n) => `- ${n}`));
  return `${lines.join('\n')}\n`;
}

/** Inline code that survives backticks inside `text`. */
function codeSpan(text: string): string {
  const longest = Math.max(0, ...(text.match(/`+/g) ?? []).map((s) => s.length));
  const fence = '`'.repeat(longest + 1);
  const padded = text.startsWith('`') || text.endsWith('`') ? ` ${text} ` : text;
  return `${fence}${padded}${fence}`;
}

export function renderMarkdown(report: Report, opts: RenderOptions = {}): string {
  const lines: string[] = [`# ${opts.title ?? defaultTitle(report.meta)}`, ''];
  if (isSmoke(report)) {
    lines.push(`> **${SMOKE_LABEL}**: protocol \`${report.meta.protocol}\` is a functional check, not a performance scenario; do not publish these figures.`, '');
  }
  lines.push(`- created: ${report.created_at}`);
  lines.push(`- command: ${codeSpan(report.command)}`);
  lines.push(`- tool: ${report.tool.name} ${report.tool.version}`);
  lines.push(`- meta: ${metaLine(report.meta)}`);
  lines.push(`- host: ${hostLine(report.host)}`);
  lines.push('', renderTable(report.results, opts.table ?? defaultTable(report.meta), 'md'));
  if (report.notes.length) lines.push('', '## Notes', '', ...report.notes.map((n) => `- ${n.replace(/\r?\n/g, ' ')}`));
  return `${lines.join('\n')}\n`;
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
