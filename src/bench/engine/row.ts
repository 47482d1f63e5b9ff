/**
 * Runs one row of a sweep: a piscina pool sized exactly to the row's concurrency, one task per
 * thread, a shared start/stop flag so every worker measures the same window, then the workers'
 * histograms merged. Returns what happened as a RowOutcome (measured | aborted | failed) that
 * report/outcome.ts turns into a row; a worker crash or store error is a `failed` outcome, never a
 * throw out of here.
 */
import { readFileSync } from 'node:fs';
import { Piscina } from 'piscina';
import type { Logger, LogLevel } from '../../log.js';
import { SharedHistogram } from '../histogram.js';
import type { Measurement, RowIdentity, RowOutcome } from '../report/outcome.js';
import type { LatUnit, RowPhase, Row, RowOp } from '../report/types.js';
import { alignedBytes } from '../../transport/memory.js';
import { ControlBlock, Phase } from './control-block.js';
import { IntervalSeries, toMeasured } from './intervals.js';
import { workerEntry } from './entry.js';
import type { DriverKind, WorkerResult, WorkerTask } from './protocol.js';
import { PeercacheError } from '../../errors.js';

export interface RowPlan {
  /** What each worker's loop runs. */
  op: DriverKind;
  /** The row's identity in the report: path (hicache-get, transport-read, ...) and op. */
  path: string;
  rowOp: RowOp;
  /** What one latency sample is (default: page at batch 1, else batch_call). */
  latUnit?: LatUnit;
  threads: number;
  batchSize: number;
  phase: RowPhase;
  /** Task fields common to every worker of the row. */
  task: Omit<WorkerTask, 'index' | 'threads' | 'op' | 'row' | 'control' | 'histogram' | 'batchSize' | 'warmupMs'>;
  components: number;
  tokensPerPage: number;
  /** Open loop: total batch calls per second over the row's workers, and how they arrive; omitted: closed loop. */
  arrival?: { kind: 'constant' | 'poisson'; rate: number; seed?: number };
  /** Pages of one host pool all the row's workers share (fixed footprint); omitted: a pool of one batch per worker. */
  hostPoolPages?: number;
  warmupS: number;
  durationS: number;
  /**
   * --interval: seconds between snapshots of the row's histograms (engine/intervals.ts), warmup
   * included; omitted: no interval series. The series records what the row's latency is: service
   * latency closed loop, response latency open loop.
   */
  intervalS?: number;
  note: string;
}

export interface RowProgress {
  row: number;
  rows: number;
  op: DriverKind;
  threads: number;
  stage: 'starting' | 'warmup' | 'measure' | 'done';
  elapsedS: number;
  remainingS: number;
  pagesPerS: number;
  gbps: number;
}

/** What a caller hands a measuring run (runSweep, runMicro, runCompare, runDrive). */
export interface RunControl {
  /** The exact command line, recorded in the report. */
  command?: string;
  signal?: AbortSignal;
  onProgress?: (p: RowProgress) => void;
  /** Each row as soon as it is measured. */
  onRow?: (row: Row) => void;
  logger?: Logger;
  logLevel?: LogLevel;
}

export interface RowContext {
  index: number;
  rows: number;
  signal?: AbortSignal;
  logger: Logger;
  onProgress?: (p: RowProgress) => void;
  /** Deadline for workers to connect (default 120 s: 64 workers on 2 cores take a while). */
  readyTimeoutMs?: number;
  /**
   * Called once every worker is connected, before the warmup starts: a multi-process driver
   * reports ready here and waits for the common start time, so all processes measure the same
   * window. A rejection fails the row.
   */
  beforeStart?: () => Promise<void>;
  /** Epoch ms the interval series' start_s counts from (the run's start); default the row's warmup start. */
  originMs?: number;
}

/**
 * This process's private resident memory (RssAnon): the shared-memory mappings of a peer's
 * segment count in the plain RSS once per worker that maps them, although they are the same
 * physical pages; they must not count as memory per worker.
 */
function privateRss(): number {
  try {
    const m = /RssAnon:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    /* not Linux */
  }
  return process.memoryUsage().rss;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

const PROGRESS_NS = 500_000_000n;

/**
 * Waits `lengthNs` from `startNs` (or until aborted or stopped). With `ticks`, ticks its series
 * every interval but not within half an interval of the end: the caller closes the last interval
 * (0.5 to 1.5 intervals long). `onProgress` runs every 500 ms and once at the end.
 */
async function runPhase(
  startNs: bigint,
  lengthNs: bigint,
  signal: AbortSignal | undefined,
  stop: () => boolean,
  ticks: { series: IntervalSeries; intervalNs: bigint } | null,
  onProgress?: (nowNs: bigint) => void,
): Promise<void> {
  const endNs = startNs + lengthNs;
  let nextTick = ticks ? startNs + ticks.intervalNs : null;
  let nextProgress = onProgress ? startNs + PROGRESS_NS : null;
  while (!signal?.aborted && !stop()) {
    const now = process.hrtime.bigint();
    if (ticks && nextTick !== null && now >= nextTick) {
      if (now + ticks.intervalNs / 2n < endNs) ticks.series.tick(now);
      while (nextTick <= now) nextTick += ticks.intervalNs;
    }
    if (onProgress && nextProgress !== null && (now >= nextProgress || now >= endNs)) {
      onProgress(now);
      while (nextProgress <= now) nextProgress += PROGRESS_NS;
    }
    if (now >= endNs) return;
    let wake = endNs;
    if (nextTick !== null && nextTick < wake) wake = nextTick;
    if (nextProgress !== null && nextProgress < wake) wake = nextProgress;
    await sleep(Math.max(1, Number(wake - now) / 1e6), signal);
  }
}

export async function runRow(plan: RowPlan, ctx: RowContext): Promise<RowOutcome> {
  const { threads, op } = plan;
  const identity: RowIdentity = {
    path: plan.path,
    op: plan.rowOp,
    protocol: plan.task.store.protocol,
    blockSize: plan.task.pageBytes,
    batchSize: plan.batchSize,
    threads,
    components: plan.components,
    tokensPerPage: plan.tokensPerPage,
    phase: plan.phase,
    latUnit: plan.latUnit ?? (plan.batchSize === 1 ? 'page' : 'batch_call'),
    note: plan.note,
  };
  const control = ControlBlock.create(threads);
  // The row's shared host pool (one allocation, a SharedArrayBuffer every worker maps).
  const hostPool = plan.hostPoolPages ? { buffer: alignedBytes(plan.hostPoolPages * plan.task.pageBytes * plan.components, true), pages: plan.hostPoolPages } : null;
  // Resident before the RSS baseline, as an application's host pool is: it is not the workers'
  // memory, and their pass over the working set before the window writes all of it.
  hostPool?.buffer.fill(0);
  const histograms = Array.from({ length: threads }, () => SharedHistogram.create());
  const responses = plan.arrival ? Array.from({ length: threads }, () => SharedHistogram.create()) : null;
  const intervalNs = plan.intervalS ? BigInt(Math.round(plan.intervalS * 1e9)) : null;
  const warms = intervalNs ? Array.from({ length: threads }, () => SharedHistogram.create()) : null;
  let warmSeries: IntervalSeries | null = null;
  let measureSeries: IntervalSeries | null = null;
  let originNs: bigint | null = ctx.originMs === undefined ? null : process.hrtime.bigint() - BigInt(Math.round((Date.now() - ctx.originMs) * 1e6));
  const entry = workerEntry('worker');
  const rssBefore = privateRss();
  const progress = (stage: RowProgress['stage'], elapsedS: number, remainingS: number, pagesPerS = 0) =>
    ctx.onProgress?.({
      row: ctx.index,
      rows: ctx.rows,
      op,
      threads,
      stage,
      elapsedS,
      remainingS,
      pagesPerS,
      gbps: op === 'exists' || op === 'noop' ? 0 : (pagesPerS * plan.task.pageBytes * plan.components) / 1e9,
    });
  progress('starting', 0, plan.warmupS + plan.durationS);
  const pool = new Piscina({
    filename: entry.filename,
    workerData: entry.workerData,
    minThreads: threads,
    maxThreads: threads,
    idleTimeout: Number.POSITIVE_INFINITY,
    // Idle workers must keep their event loops running (addon wake-ups, directory events).
    atomics: 'disabled',
    concurrentTasksPerWorker: 1,
    maxQueue: threads,
  });
  let firstFailure: string | null = null;
  const fail = (err: unknown) => {
    firstFailure ??= (err as Error)?.message ?? String(err);
    control.setPhase(Phase.Stop);
  };
  const tasks = histograms.map((h, index) =>
    pool
      .run({
        ...plan.task,
        arrival: plan.arrival && responses ? { kind: plan.arrival.kind, rate: plan.arrival.rate / threads, seed: plan.arrival.seed ?? 1, responseHistogram: responses[index].buffer } : null,
        warmHistogram: warms ? warms[index].buffer : null,
        hostPool, index, threads, op, row: ctx.index, control: control.buffer, histogram: h.buffer, batchSize: plan.batchSize, warmupMs: plan.warmupS * 1000 } satisfies WorkerTask)
      .then((r) => r as WorkerResult)
      .catch((err: unknown) => {
        fail(err);
        return null;
      }),
  );
  let t0 = 0n;
  let t1 = 0n;
  let cpuPct: number | null = null;
  let rssPerWorker: number | null = null;
  let aborted = false;
  try {
    // Wait until every worker is connected and has made one call.
    const readyDeadline = Date.now() + (ctx.readyTimeoutMs ?? 120_000);
    while (control.ready < threads && firstFailure === null) {
      if (ctx.signal?.aborted) {
        aborted = true;
        break;
      }
      if (Date.now() > readyDeadline) {
        fail(new PeercacheError('ERR_WORKERS', `only ${control.ready} of ${threads} workers connected within ${(ctx.readyTimeoutMs ?? 120_000) / 1000} s`));
        break;
      }
      await sleep(20);
    }
    if (firstFailure === null && !aborted && ctx.beforeStart) {
      await ctx.beforeStart().catch(fail);
    }
    if (firstFailure === null && !aborted) {
      if (pool.threads.length !== threads) ctx.logger.warn(`row ${ctx.index}: pool has ${pool.threads.length} threads, expected ${threads}`);
      rssPerWorker = Math.max(0, Math.round((privateRss() - rssBefore) / threads));
      const w0 = process.hrtime.bigint();
      originNs ??= w0;
      control.setPhase(Phase.Warmup);
      progress('warmup', 0, plan.warmupS + plan.durationS);
      if (intervalNs && warms && plan.warmupS > 0) warmSeries = new IntervalSeries('warmup', warms, () => control.totals().warmPages, w0);
      await runPhase(w0, BigInt(Math.round(plan.warmupS * 1e9)), ctx.signal, () => firstFailure !== null, warmSeries && intervalNs ? { series: warmSeries, intervalNs } : null);
    }
    if (firstFailure === null && !aborted && ctx.signal?.aborted) aborted = true; // stopped during the warmup: nothing measured
    if (firstFailure === null && !aborted) {
      const cpu0 = process.cpuUsage();
      t0 = process.hrtime.bigint();
      control.setPhase(Phase.Measure);
      warmSeries?.close(t0);
      if (intervalNs) measureSeries = new IntervalSeries('measure', responses ?? histograms, () => control.totals().pages, t0);
      await runPhase(t0, BigInt(Math.round(plan.durationS * 1e9)), ctx.signal, () => firstFailure !== null, measureSeries && intervalNs ? { series: measureSeries, intervalNs } : null, (now) => {
        const elapsed = Number(now - t0) / 1e9;
        const { pages } = control.totals();
        progress('measure', plan.warmupS + elapsed, Math.max(0, plan.durationS - elapsed), elapsed > 0 ? pages / elapsed : 0);
      });
      aborted = ctx.signal?.aborted ?? false;
      control.setPhase(Phase.Stop);
      t1 = process.hrtime.bigint();
      measureSeries?.close(t1);
      const cpu = process.cpuUsage(cpu0);
      const windowUs = Number(t1 - t0) / 1000;
      cpuPct = windowUs > 0 ? Math.round(((cpu.user + cpu.system) / windowUs) * 1000) / 10 : null;
    } else {
      control.setPhase(Phase.Stop);
      warmSeries?.close(process.hrtime.bigint());
    }
    const results = (await Promise.all(tasks)).filter((r): r is WorkerResult => r !== null);
    warmSeries?.settle();
    measureSeries?.settle();
    // "done" carries the window's rate (it said 0 pages/s): the measured pages over the measured time.
    const measuredS = t0 !== 0n && t1 > t0 ? Number(t1 - t0) / 1e9 : 0;
    progress('done', plan.warmupS + plan.durationS, 0, measuredS > 0 ? results.reduce((s, r) => s + r.pages, 0) / measuredS : 0);
    const merged = SharedHistogram.merge(histograms);
    const sum = (k: 'calls' | 'pages' | 'pagesRequested' | 'errors' | 'pagesVerified' | 'wrongPages' | 'scheduleLagNs') => results.reduce((s, r) => s + r[k], 0);
    const lanes = [...new Set(results.flatMap((r) => r.lanes))];
    const calls = sum('calls');
    const errors = sum('errors');
    const live = control.totals();
    if (live.calls !== calls && firstFailure === null) ctx.logger.debug(`row ${ctx.index}: live calls ${live.calls} vs reported ${calls}`);
    if (t0 === 0n && aborted) return { kind: 'aborted', identity, measurement: null };
    if (firstFailure !== null || t0 === 0n) return { kind: 'failed', identity, reason: firstFailure ?? 'no window measured', transports: lanes, calls, errors };
    const measurement: Measurement = {
      calls,
      pagesRequested: sum('pagesRequested'),
      pages: sum('pages'),
      errors,
      pagesVerified: plan.task.verify ? sum('pagesVerified') : null,
      wrongPages: sum('wrongPages'),
      elapsedNs: Number(t1 - t0),
      latency: merged.count > 0 ? merged.summary() : null,
      histogram: merged.count > 0 ? merged.encode() : null,
      hitRate: op === 'get' || op === 'prefetch' ? 'get' : 'none',
      transports: lanes,
      cpu: cpuPct,
      rssPerWorker,
      firstError: results.find((r) => r.firstError)?.firstError ?? null,
      openLoop: null,
      intervals: intervalNs ? toMeasured([...(warmSeries?.intervals ?? []), ...(measureSeries?.intervals ?? [])], originNs ?? t0) : null,
    };
    if (plan.arrival && responses) {
      const resp = SharedHistogram.merge(responses);
      measurement.openLoop = {
        arrival: plan.arrival.kind,
        rateOffered: plan.arrival.rate,
        response: resp.count > 0 ? resp.summary() : null,
        responseHistogram: resp.count > 0 ? resp.encode() : null,
        scheduleLagNsMean: calls > 0 ? sum('scheduleLagNs') / calls : null,
      };
    }
    return aborted ? { kind: 'aborted', identity, measurement } : { kind: 'measured', identity, measurement };
  } catch (err) {
    return { kind: 'failed', identity, reason: (err as Error).message, transports: [], calls: 0, errors: 0 };
  } finally {
    await pool.destroy().catch(() => {});
    if (control.done < threads) ctx.logger.debug(`row ${ctx.index}: ${control.done} of ${threads} workers closed cleanly`);
  }
}
