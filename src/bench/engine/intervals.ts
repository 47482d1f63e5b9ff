/**
 * Interval series (--interval): while a row runs, the main thread takes a snapshot of the
 * workers' shared histograms and page counter every interval and keeps the difference from the
 * previous snapshot as that interval's histogram. Subtracting bucket counts is exact for HDR
 * histograms, so the intervals of a phase add up to the phase's histogram exactly; workers are
 * never stopped or told.
 *
 * The snapshots read the shared buffers while workers record (racy by design, documented): a
 * call that completes a few µs around a boundary lands in the interval before or after it, never
 * in both and never in neither, because every bucket and counter only grows within a phase. The
 * last interval of a phase is closed at the phase's end but read only after every worker has
 * finished (settle()), so calls that ended just before the phase changed still count in it.
 *
 * The interval keeps a sparse copy (the buckets that changed), so a long run with short
 * intervals holds a few KiB per interval, not a full histogram each; the histograms, percentiles
 * and encodings are built once the row is over (toMeasured()), off the measured window.
 */
import { SharedHistogram, type LatencySummary } from '../histogram.js';
import { InvalidArgumentError, PeercacheError } from '../../errors.js';

export type IntervalPhase = 'warmup' | 'measure';

/** One interval as the engine saw it: times in ns of the row's hrtime clock. */
export interface RawInterval {
  phase: IntervalPhase;
  startNs: bigint;
  endNs: bigint;
  pages: number;
  /** The buckets that grew during the interval (counts index and count). */
  index: number[];
  count: number[];
}

/** One interval as the report takes it (engine → report/metrics). */
export interface MeasuredInterval {
  phase: IntervalPhase;
  /** Seconds from the run's origin (the report's created_at) to the interval's start. */
  startS: number;
  durationS: number;
  /** Calls completed in the interval: its histogram's sample count. */
  calls: number;
  pages: number;
  latency: LatencySummary | null;
  /** HdrHistogram V2 compressed base64 (ns), null without a sample. */
  histogram: string | null;
}

/**
 * The smallest interval --interval accepts: each snapshot reads every worker's histogram (33,792
 * counters each) on the main thread, ~5 ms at 64 workers on this 2-core host, so 100 ms costs ~5%
 * of a core and 1 s ~0.5%.
 */
export const MIN_INTERVAL_S = 0.1;

/**
 * The intervals of one phase of a row over a fixed set of histograms and a page counter. Call
 * tick(t) at each boundary, close(t) at the phase's end, settle() after the workers are done.
 */
export class IntervalSeries {
  private prev: Float64Array;
  private cur: Float64Array;
  private prevPages = 0;
  private lastNs: bigint;
  private pending: { startNs: bigint; endNs: bigint } | null = null;
  readonly intervals: RawInterval[] = [];

  constructor(
    readonly phase: IntervalPhase,
    private readonly histograms: readonly SharedHistogram[],
    private readonly pagesNow: () => number,
    startNs: bigint,
  ) {
    if (!histograms.length) throw new InvalidArgumentError('IntervalSeries: no histograms');
    // The histograms are empty when their phase starts: the first snapshot is all zeros.
    this.prev = new Float64Array(histograms[0].countsLength);
    this.cur = new Float64Array(histograms[0].countsLength);
    this.lastNs = startNs;
  }

  /** A boundary at `nowNs`: the interval since the last one, from a snapshot taken now. */
  tick(nowNs: bigint): void {
    if (this.pending) throw new PeercacheError('ERR_CLOSED', 'IntervalSeries: tick after close');
    this.take(this.lastNs, nowNs);
    this.lastNs = nowNs;
  }

  /** The phase ended at `nowNs`: its last interval is read by settle(). */
  close(nowNs: bigint): void {
    if (this.pending) return;
    this.pending = { startNs: this.lastNs, endNs: nowNs };
  }

  /** After the workers finished: the last interval, from what they recorded in the phase. */
  settle(): void {
    if (!this.pending) return;
    const { startNs, endNs } = this.pending;
    this.pending = null;
    this.take(startNs, endNs);
    this.lastNs = endNs;
  }

  private take(startNs: bigint, endNs: bigint): void {
    const cur = this.cur;
    cur.fill(0);
    // Pages first, then buckets: a call counts its pages after recording its latency, so an
    // interval never has a call's pages without its sample (it may have the sample alone).
    const pages = this.pagesNow();
    for (const h of this.histograms) h.addCountsTo(cur);
    const prev = this.prev;
    const index: number[] = [];
    const count: number[] = [];
    for (let i = 0; i < cur.length; i++) {
      const d = cur[i] - prev[i];
      if (d !== 0) {
        index.push(i);
        count.push(d);
      }
    }
    this.intervals.push({ phase: this.phase, startNs, endNs, pages: pages - this.prevPages, index, count });
    this.prevPages = pages;
    this.cur = prev;
    this.prev = cur;
  }
}

/** The report's form of raw intervals: `originNs` is the run's origin on the row's hrtime clock. */
export function toMeasured(raw: readonly RawInterval[], originNs: bigint, highestTrackableValue?: number): MeasuredInterval[] {
  return raw.map((r) => {
    const h = SharedHistogram.fromCounts({ index: r.index, count: r.count }, highestTrackableValue);
    return {
      phase: r.phase,
      startS: Number(r.startNs - originNs) / 1e9,
      durationS: Number(r.endNs - r.startNs) / 1e9,
      calls: h.count,
      pages: r.pages,
      latency: h.count > 0 ? h.summary() : null,
      histogram: h.count > 0 ? h.encode() : null,
    };
  });
}
