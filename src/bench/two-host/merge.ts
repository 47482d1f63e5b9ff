/**
 * One row from the rows N driver processes measured in the same window (--processes N).
 *
 * The original PeerCache bench summed each process's rate over its own, unaligned window. Here
 * the processes started their warmup at one common wall-clock time, so their windows overlap;
 * the merged row adds the counters, merges the latency histograms (percentiles of the union of
 * samples, not averaged percentiles), and divides by the union of the windows: from the earliest
 * start to the latest end, which is never shorter than any one process's window.
 */
import { SharedHistogram } from '../histogram.js';
import { failedRow, makeRow } from '../report/metrics.js';
import { SMOKE_LABEL, type Row } from '../report/types.js';
import type { RowPlan } from '../engine/row.js';

export interface ProcessRowResult {
  /** 0-based child index. */
  process: number;
  /** The child's row, or null when it gave none (it died, or timed out). */
  row: Row | null;
  /** Wall-clock ms when its warmup started (all children share one start time); null if it never started. */
  startedAtMs: number | null;
  /** Why there is no row (when row is null). */
  error?: string;
}

export type MergeIdentity = Pick<RowPlan, 'path' | 'rowOp' | 'batchSize' | 'components' | 'tokensPerPage' | 'phase' | 'latUnit' | 'note'> & {
  protocol: Row['protocol'];
  blockSize: number;
  /** Threads per process. */
  threads: number;
};

/** A child's own additions to the row note (errors, partial window), without the shared part. */
function extraNotes(row: Row, base: string): string[] {
  return row.note
    .replace(` [${SMOKE_LABEL}]`, '')
    .replace(SMOKE_LABEL, '')
    .split('; ')
    .map((s) => s.trim())
    .filter((s) => s && s !== base && s !== 'PEAK');
}

export function mergeProcessRows(results: readonly ProcessRowResult[], id: MergeIdentity): Row {
  const n = results.length;
  const tag = `x${n}proc`;
  const identity = {
    path: id.path,
    op: id.rowOp,
    protocol: id.protocol,
    blockSize: id.blockSize,
    batchSize: id.batchSize,
    threads: id.threads * n,
    components: id.components,
    tokensPerPage: id.tokensPerPage,
    phase: id.phase,
    latUnit: id.latUnit ?? (id.batchSize === 1 ? ('page' as const) : ('batch_call' as const)),
  };
  const transports = [...new Set(results.flatMap((r) => r.row?.transports ?? []))];
  const failures = results
    .filter((r) => r.row === null || !r.row.ok)
    .map((r) => `process ${r.process + 1}: ${r.row ? extraNotes(r.row, id.note).join('; ') || 'row not ok' : (r.error ?? 'no result')}`);
  if (failures.length) {
    const calls = results.reduce((s, r) => s + (r.row?.calls ?? 0), 0);
    const errors = results.reduce((s, r) => s + (r.row?.errors ?? 0), 0);
    return failedRow({ ...identity, transports, calls, errors }, `${id.note} ${tag}; failed: ${failures.join(' | ')}`);
  }
  const rows = results.map((r) => r.row!);
  const sum = (k: 'calls' | 'pages_requested' | 'pages' | 'errors') => rows.reduce((s, r) => s + r[k], 0);
  const starts = results.map((r) => r.startedAtMs);
  let windowMs: number;
  let skewMs: number | null = null;
  if (starts.every((s): s is number => s !== null)) {
    const first = Math.min(...starts);
    windowMs = Math.max(...rows.map((r, i) => starts[i] - first + r.duration_s * 1000));
    skewMs = Math.max(...starts) - first;
  } else {
    // No start times (should not happen): the longest window, which under-states no one's.
    windowMs = Math.max(...rows.map((r) => r.duration_s * 1000));
  }
  const hists = rows.filter((r) => r.histogram !== null).map((r) => SharedHistogram.decode(r.histogram!));
  const merged = hists.length ? SharedHistogram.merge(hists) : null;
  const cpus = rows.map((r) => r.cpu_client_pct);
  const rss = rows.map((r) => r.rss_per_worker_bytes).filter((x): x is number => x !== null);
  // A note every process has (e.g. a partial window) once; the others with their process.
  const perProcess = rows.map((r) => extraNotes(r, id.note));
  const shared = perProcess[0].filter((e) => perProcess.every((list) => list.includes(e)));
  const extras = [...shared, ...perProcess.flatMap((list, i) => list.filter((e) => !shared.includes(e)).map((e) => `p${i + 1}: ${e}`))];
  const notes = [
    `${id.note} ${tag}`,
    skewMs === null ? 'window starts unknown' : `one window: starts within ${skewMs.toFixed(1)} ms, histograms merged`,
    ...extras,
  ];
  return makeRow({
    ...identity,
    calls: sum('calls'),
    pagesRequested: sum('pages_requested'),
    pages: sum('pages'),
    errors: sum('errors'),
    elapsedNs: Math.round(windowMs * 1e6),
    latency: merged && merged.count > 0 ? merged.summary() : null,
    hitRate: id.rowOp === 'get' ? 'get' : 'none',
    transports,
    histogram: merged && merged.count > 0 ? merged.encode() : null,
    // Each child's CPU% is of its own process (100 = one core); together they are the drive host's.
    cpu: cpus.every((c): c is number => c !== null) ? cpus.reduce((a, b) => a + b, 0) : null,
    rss: rss.length ? Math.max(...rss) : null,
    note: notes.join('; '),
    ok: rows.every((r) => r.ok),
    aborted: rows.some((r) => r.aborted === true),
    pagesVerified: rows.every((r) => typeof r.pages_verified === 'number') ? rows.reduce((s, r) => s + r.pages_verified!, 0) : null,
    wrongPages: rows.every((r) => typeof r.wrong_pages === 'number') ? rows.reduce((s, r) => s + r.wrong_pages!, 0) : null,
    extra: { processes: n, window_skew_ms: skewMs === null ? null : Math.round(skewMs * 1000) / 1000 },
  });
}
