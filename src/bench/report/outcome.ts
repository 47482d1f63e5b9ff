/**
 * What measuring one row produced, as a union on its state (like tinybench's task results):
 * `measured` (a full window), `aborted` (stopped by the user or a deadline: the window it actually
 * measured, or none), `failed` (nothing trustworthy; why). The engine returns it; only this folder
 * turns it into a report Row (outcomeToRow), so the engine never decides how a row reads.
 */
import type { LatencySummary } from '../histogram.js';
import type { MeasuredInterval } from '../engine/intervals.js';
import type { Protocol } from '../../transport/types.js';
import { failedRow, makeRow, type OpenLoopFigures } from './metrics.js';
import type { LatUnit, RowPhase, Row, RowOp } from './types.js';
import { transportMismatch } from './transport-check.js';

/** What a row is, whatever happened to it. */
export interface RowIdentity {
  path: string;
  op: RowOp;
  protocol: Protocol;
  blockSize: number;
  batchSize: number;
  threads: number;
  components: number;
  tokensPerPage: number;
  phase: RowPhase;
  latUnit: LatUnit;
  /** What the row ran (e.g. "batch_get_v1 mla ws=4096"). */
  note: string;
}

/** The counters of a measured window (whole or partial). */
export interface Measurement {
  calls: number;
  pagesRequested: number;
  pages: number;
  errors: number;
  /** Hit pages checked against what their publisher wrote; null when verify is off. */
  pagesVerified: number | null;
  /** Hit pages whose bytes were not what the publisher wrote (verify only). */
  wrongPages: number;
  /** The window in ns. */
  elapsedNs: number;
  latency: LatencySummary | null;
  /** HdrHistogram V2 compressed base64, or null without samples. */
  histogram: string | null;
  hitRate: 'get' | 'none';
  transports: string[];
  /** Client CPU% over the window (100 = one core). */
  cpu: number | null;
  rssPerWorker: number | null;
  firstError: string | null;
  /** Open loop only (null or absent: closed loop). */
  openLoop?: OpenLoopFigures | null;
  /** --interval: the row's interval series (warmup then measure); null or absent: not recorded. */
  intervals?: MeasuredInterval[] | null;
}

export type RowOutcome =
  | { kind: 'measured'; identity: RowIdentity; measurement: Measurement }
  | { kind: 'aborted'; identity: RowIdentity; measurement: Measurement | null }
  | { kind: 'failed'; identity: RowIdentity; reason: string; transports: string[]; calls: number; errors: number };

/** The report row for an outcome. */
export function outcomeToRow(o: RowOutcome): Row {
  const { note: what, ...identity } = o.identity;
  if (o.kind === 'failed') return failedRow({ ...identity, transports: o.transports, errors: o.errors, calls: o.calls }, `failed: ${o.reason}`);
  const m = o.measurement;
  if (m === null) return failedRow({ ...identity, transports: [], aborted: true }, 'aborted before it was measured');
  const notes = [what];
  if (o.kind === 'aborted') notes.push(`aborted: measured ${(m.elapsedNs / 1e9).toFixed(2)} s of the window`);
  if (m.errors) notes.push(`${m.errors} failed calls (first: ${m.firstError})`);
  if (m.wrongPages) notes.push(`WRONG PAGES: ${m.wrongPages} of ${m.pagesVerified} verified pages were not what their publisher wrote`);
  const mismatch = transportMismatch(identity.protocol, m.transports);
  if (mismatch) notes.push(mismatch);
  if (m.calls === 0) notes.push(`no call completed in the window${m.firstError ? ` (first error: ${m.firstError})` : ''}`);
  return makeRow({
    ...identity,
    calls: m.calls,
    pagesRequested: m.pagesRequested,
    pages: m.pages,
    errors: m.errors,
    elapsedNs: m.elapsedNs,
    latency: m.latency,
    hitRate: m.hitRate,
    transports: m.transports,
    histogram: m.histogram,
    cpu: m.cpu,
    rss: m.rssPerWorker,
    note: notes.filter(Boolean).join('; '),
    ok: m.calls > 0 && m.wrongPages === 0 && mismatch === null,
    aborted: o.kind === 'aborted',
    pagesVerified: m.pagesVerified,
    wrongPages: m.pagesVerified === null ? null : m.wrongPages,
    openLoop: m.openLoop ?? null,
    intervals: m.intervals ?? null,
    ...(m.openLoop
      ? {
          extra: {
            schedule_lag_us_mean: m.openLoop.scheduleLagNsMean === null ? null : Math.round(m.openLoop.scheduleLagNsMean / 10) / 100,
            // The plot draws an open-loop sweep against the offered load.
            offered_pages_per_s: m.openLoop.rateOffered * identity.batchSize,
          },
        }
      : {}),
  });
}
