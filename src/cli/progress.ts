/**
 * Progress on a terminal (stderr), autocannon-style: every finished row is printed as a table
 * line that stays, under one header; below it a live line shows the phase, row k of n, the row's
 * stage and the estimated time left for the whole run. Nothing at all when stderr is not a
 * terminal (the final table on stdout is then the only output). Colour only when allowed
 * (NO_COLOR unset).
 */
import type { RowProgress } from '../bench/engine/index.js';
import { fixed, humanCount, gbpsCell, latencyPer, type Row } from '../bench/report/index.js';
import type { AllocateProgress } from '../transport/types.js';

/** ANSI styling only on a terminal and only when NO_COLOR is unset or empty (no-color.org). */
export function colorFor(isTty: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return isTty && !env.NO_COLOR;
}

const human = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)}K` : n.toFixed(0));

/** "1 h 02 min", "3 min 05 s", "42 s". */
export function formatDuration(s: number): string {
  const t = Math.max(0, Math.round(s));
  if (t >= 3600) return `${Math.floor(t / 3600)} h ${String(Math.floor((t % 3600) / 60)).padStart(2, '0')} min`;
  if (t >= 60) return `${Math.floor(t / 60)} min ${String(t % 60).padStart(2, '0')} s`;
  return `${t} s`;
}

/** One line about a published segment being allocated (UCX's POSIX allocator writes all of it first). */
export function allocationProgress(p: AllocateProgress): string {
  const gib = (n: number) => `${(n / 2 ** 30).toFixed(1)} GiB`;
  return `allocating the published pool: ${gib(p.written)} of ${gib(p.total)} written after ${formatDuration(p.elapsedMs / 1000)}; Ctrl-C stops`;
}

/** The phase a row belongs to, for the live line ("latency", "get sweep", …). */
export type PhaseOf = (p: RowProgress) => string;

/** The phase names of a run: the suite plans 3 latency rows (get, set, exists), then a sweep per op. */
export function phaseNamer(kind: string, mode?: string): PhaseOf {
  if (kind === 'hicache') {
    if (mode === 'suite') return (p) => (p.row < 3 ? 'latency' : `${p.op} sweep`);
    if (mode === 'latency') return () => 'latency';
    if (mode === 'saturation') return (p) => `${p.op} sweep`;
    if (mode === 'throughput') return (p) => `${p.op} throughput`;
  }
  if (kind === 'hicache-dist') return (p) => `${p.op} sweep`;
  return (p) => String(p.op);
}

/** The live line: "[get sweep] row 5/24 x4  measuring 3.1 s, 6.9 s left in row · run ~2 min 10 s left  150.3K pages/s". */
export function progressLine(p: RowProgress, phase: string, runLeftS: number | null): string {
  const stage = p.stage === 'starting' ? 'connecting' : p.stage === 'warmup' ? 'warming up' : p.stage === 'measure' ? 'measuring' : 'done';
  const rate = p.stage === 'measure' ? `  ${human(p.pagesPerS)} pages/s${p.gbps > 0 ? `  ${p.gbps.toFixed(2)} GB/s` : ''}` : '';
  const eta = runLeftS === null ? '' : ` · run ~${formatDuration(runLeftS)} left`;
  return `[${phase}] row ${p.row + 1}/${p.rows} ${p.op} x${p.threads}  ${stage}${eta}${rate}`;
}

interface LineColumn {
  header: string;
  width: number;
  right: boolean;
  cell(row: Row): string;
}

const lat = (x: number | null, ok: boolean) => (ok ? fixed(x, 1) : '-');

/** The columns of a finished row's line: fixed widths, since rows arrive one at a time. */
const LINE_COLUMNS: LineColumn[] = [
  { header: 'op', width: 6, right: false, cell: (r) => r.op || r.path },
  { header: 'threads', width: 7, right: true, cell: (r) => String(r.threads) },
  { header: 'batch', width: 5, right: true, cell: (r) => String(r.batch_size) },
  { header: 'pages/s', width: 9, right: true, cell: (r) => (r.ok ? humanCount(r.pages_per_s) : 'n/a') },
  { header: 'GB/s', width: 7, right: true, cell: gbpsCell },
  { header: 'p50 µs', width: 9, right: true, cell: (r) => lat(r.lat_us_p50, r.ok) },
  { header: 'p99 µs', width: 9, right: true, cell: (r) => lat(r.lat_us_p99, r.ok) },
  { header: 'p999 µs', width: 9, right: true, cell: (r) => lat(r.lat_us_p999, r.ok) },
  { header: 'latency per', width: 16, right: false, cell: latencyPer },
  { header: 'note', width: 0, right: false, cell: (r) => (r.ok ? (r.note.includes('aborted') ? 'partial window' : '') : r.note) },
];

const lineOf = (cells: string[]): string =>
  `| ${cells.map((c, i) => (LINE_COLUMNS[i].right ? c.padStart(LINE_COLUMNS[i].width) : c.padEnd(LINE_COLUMNS[i].width))).join(' | ')} |`.replace(/ +\|$/, ' |');

/** The header (and rule) above the finished rows. */
export function progressHeader(): string {
  const head = lineOf(LINE_COLUMNS.map((c) => c.header));
  const rule = `| ${LINE_COLUMNS.map((c) => '-'.repeat(Math.max(c.width, c.header.length))).join(' | ')} |`;
  return `${head}\n${rule}`;
}

/** One finished row as a fixed-width table line. */
export function progressRowLine(row: Row): string {
  return lineOf(LINE_COLUMNS.map((c) => c.cell(row)));
}

export interface ProgressOptions {
  stream?: Pick<NodeJS.WriteStream, 'write'> & { isTTY?: boolean };
  phaseOf?: PhaseOf;
  /** Default colorFor(stream.isTTY). */
  color?: boolean;
  /** Seconds, monotonic (tests). */
  now?: () => number;
}

export interface Progress {
  update(p: RowProgress): void;
  /** A row finished: its line is printed and stays. */
  row(row: Row): void;
  /** Erases the live line (before other output). */
  clear(): void;
}

/**
 * The run's time left: this row's remaining seconds plus, for each row still to come, its nominal
 * length (warmup + window, as the row announced at its start) plus the setup time the finished
 * rows actually took on top of theirs.
 */
export class EtaEstimator {
  private nominal = 0;
  private rowStart: number | null = null;
  private overheads: number[] = [];
  private current = -1;

  constructor(private readonly now: () => number) {}

  update(p: RowProgress): number | null {
    if (p.row !== this.current) {
      this.current = p.row;
      this.rowStart = this.now();
      this.nominal = p.elapsedS + p.remainingS;
    }
    if (p.stage === 'starting') this.nominal = Math.max(this.nominal, p.remainingS);
    const overhead = this.overheads.length ? this.overheads.reduce((a, b) => a + b, 0) / this.overheads.length : 0;
    const thisRow = p.stage === 'starting' ? p.remainingS + overhead : p.remainingS;
    return thisRow + (p.rows - p.row - 1) * (this.nominal + overhead);
  }

  finished(): void {
    if (this.rowStart === null) return;
    this.overheads.push(Math.max(0, this.now() - this.rowStart - this.nominal));
    this.rowStart = null;
  }
}

export function createProgress(options: ProgressOptions = {}): Progress {
  const stream = options.stream ?? process.stderr;
  const tty = stream.isTTY === true;
  const color = options.color ?? colorFor(tty);
  const phaseOf = options.phaseOf ?? ((p: RowProgress) => String(p.op));
  const eta = new EtaEstimator(options.now ?? (() => performance.now() / 1000));
  const dim = (s: string) => (color ? `\x1b[2m${s}\x1b[22m` : s);
  let shown = false;
  let headed = false;
  const clear = () => {
    if (tty && shown) stream.write('\r\x1b[2K');
    shown = false;
  };
  return {
    update(p) {
      const left = eta.update(p);
      if (!tty) return;
      stream.write(`\r\x1b[2K${dim(progressLine(p, phaseOf(p), left))}`);
      shown = true;
    },
    row(row) {
      eta.finished();
      if (!tty) return;
      clear();
      if (!headed) stream.write(`${progressHeader()}\n`);
      headed = true;
      stream.write(`${progressRowLine(row)}\n`);
    },
    clear,
  };
}
