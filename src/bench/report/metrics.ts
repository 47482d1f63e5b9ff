/**
 * Builds report rows from measured counters. Every rate divides by the measured window
 * (`elapsedNs`), not the configured duration, and is 0 when the window is not positive — never
 * NaN or Infinity. Latencies arrive in ns and leave in µs (2 dp), null when there was no sample.
 */
import type { Protocol } from '../../transport/types.js';
import { round, roundOrNull, isoSeconds } from './format.js';
import {
  REPORT_SCHEMA_ID, REPORT_SCHEMA_VERSION, SMOKE_LABEL, TOOL_NAME,
  type Host, type Interval, type JsonValue, type LatUnit, type Meta, type MetaCore, type RowPhase, type Report, type Row, type RowOp, type System,
} from './types.js';

/** A latency summary in ns (the shared histogram's; null fields when it holds no sample). */
export type { LatencySummary } from '../histogram.js';
import type { LatencySummary } from '../histogram.js';
import type { MeasuredInterval } from '../engine/intervals.js';
import { collectManifest } from './manifest.js';
import { InvalidArgumentError } from '../../errors.js';

/** An open-loop row's own figures (absent or null: closed loop). */
export interface OpenLoopFigures {
  arrival: 'constant' | 'poisson';
  /** Batch calls per second offered over the row's workers. */
  rateOffered: number;
  /** Response latency (from each call's intended start). */
  response: LatencySummary | null;
  responseHistogram: string | null;
  /** Mean of (actual start - intended start) over measured calls, ns. */
  scheduleLagNsMean: number | null;
}

export interface RowInput {
  /** Default 'peercache'. */
  system?: System;
  path: string;
  op: RowOp;
  protocol: Protocol;
  /** Bytes per component object. */
  blockSize: number;
  /** Components per page: 1 (mla) or 2 (mha, k+v). Default 1. */
  components?: number;
  batchSize: number;
  threads: number;
  /** Used for tokens_per_s only; default 0. */
  tokensPerPage?: number;
  /** Batch calls completed in the window. */
  calls: number;
  /** Pages asked for; default `pages`. get: the hit-rate denominator. */
  pagesRequested?: number;
  /** Logical pages completed: get = pages found and read (hits), set = written, exists = probed. */
  pages: number;
  /** Component reads/writes; default exists → pagesRequested, else pages × components. */
  ops?: number;
  /** Payload bytes moved; default exists → 0, else ops × blockSize. */
  bytes?: number;
  /** Failed calls; default 0. */
  errors?: number;
  /** The measured window in ns (process.hrtime.bigint() differences are accepted). */
  elapsedNs: number | bigint;
  latency: LatencySummary | null;
  /** 'get' → hit_rate = pages / pagesRequested; 'none' → null. Default: 'get' for op get. */
  hitRate?: 'get' | 'none';
  /** Default 'single'. */
  phase?: RowPhase;
  /** Default 'batch_call'. */
  latUnit?: LatUnit;
  note?: string;
  /** Default true. */
  ok?: boolean;
  /** Stopped before its window ended; default false. */
  aborted?: boolean;
  /** Open loop: the arrival, offered rate (calls/s), response latency and its histogram; null/absent: closed loop. */
  openLoop?: OpenLoopFigures | null;
  /** verify: hit pages checked and found wrong; null (default) when verify is off. */
  pagesVerified?: number | null;
  wrongPages?: number | null;
  /** Default: the protocol is tcp. A smoke row's note carries SMOKE_LABEL. */
  smoke?: boolean;
  transports?: readonly string[];
  /** HdrHistogram V2 compressed base64 of the samples, or null. */
  histogram?: string | null;
  /** Client CPU% over the window (100 = one core), or null. */
  cpu?: number | null;
  /** RSS per worker in bytes, or null. */
  rss?: number | null;
  extra?: Record<string, number | null>;
  /** --interval: the row's interval series; null/absent: none. */
  intervals?: readonly MeasuredInterval[] | null;
}

/** tcp is a functional fallback: its figures are smoke tests, never published. */
export function isSmokeProtocol(protocol: string): boolean {
  return protocol === 'tcp';
}

/** The rate `count / seconds`, 0 when the window is not positive or not finite. */
export function rate(count: number, seconds: number): number {
  return seconds > 0 && Number.isFinite(seconds) ? count / seconds : 0;
}

function counter(name: string, v: number | undefined, fallback: number): number {
  const x = v ?? fallback;
  // A bad counter is a harness bug; fail loudly rather than publish a NaN row.
  if (!Number.isFinite(x) || x < 0) throw new InvalidArgumentError(`makeRow: ${name} must be a finite number >= 0, got ${x}`);
  return x;
}

function withSmoke(note: string, smoke: boolean): string {
  if (!smoke || note.includes(SMOKE_LABEL)) return note;
  return note ? `${note} [${SMOKE_LABEL}]` : SMOKE_LABEL;
}

function us(ns: number | null | undefined): number | null {
  return ns === undefined || ns === null ? null : roundOrNull(ns / 1000, 2);
}

/**
 * The fewest samples a percentile is reported from: the q-th percentile of n samples is a real
 * order statistic only when at least one sample lies above it, n >= 1 / (1 - q). Below that it
 * is just the max (perftest's p99.9 at -n 1000 is t_max), so the row says null instead.
 */
export const PERCENTILE_MIN_SAMPLES = { p90: 10, p95: 20, p99: 100, p999: 1000 } as const;
export type GatedPercentile = keyof typeof PERCENTILE_MIN_SAMPLES;

/** The percentile in µs, or null when `samples` are too few for it (or there is none). */
export function gatedPercentile(name: GatedPercentile, ns: number | null | undefined, samples: number): number | null {
  return samples >= PERCENTILE_MIN_SAMPLES[name] ? us(ns) : null;
}

/** An interval of the report: rates over its own length, the row's bytes per page, percentiles gated as the row's. */
export function intervalOf(iv: MeasuredInterval, bytesPerPage: number, trial = 1): Interval {
  const lat = iv.latency && iv.latency.count > 0 ? iv.latency : null;
  return {
    trial,
    phase: iv.phase,
    start_s: round(iv.startS, 3),
    duration_s: round(iv.durationS, 3),
    calls: iv.calls,
    pages: iv.pages,
    throughput_gbps: round(rate(iv.pages * bytesPerPage, iv.durationS) / 1e9, 4),
    pages_per_s: round(rate(iv.pages, iv.durationS), 1),
    lat_us_p50: us(lat?.p50_ns),
    lat_us_p99: gatedPercentile('p99', lat?.p99_ns, lat?.count ?? 0),
    histogram: iv.histogram,
  };
}

export function makeRow(input: RowInput): Row {
  const components = counter('components', input.components, 1);
  const blockSize = counter('blockSize', input.blockSize, 0);
  const pages = counter('pages', input.pages, 0);
  const pagesRequested = counter('pagesRequested', input.pagesRequested, pages);
  const ops = counter('ops', input.ops, input.op === 'exists' ? pagesRequested : pages * components);
  const bytes = counter('bytes', input.bytes, input.op === 'exists' ? 0 : ops * blockSize);
  const calls = counter('calls', input.calls, 0);
  const errors = counter('errors', input.errors, 0);
  const tokensPerPage = counter('tokensPerPage', input.tokensPerPage, 0);
  const elapsedNsRaw = typeof input.elapsedNs === 'bigint' ? Number(input.elapsedNs) : input.elapsedNs;
  const seconds = Number.isFinite(elapsedNsRaw) && elapsedNsRaw > 0 ? elapsedNsRaw / 1e9 : 0;
  const pagesPerS = rate(pages, seconds);
  const lat = input.latency && input.latency.count > 0 ? input.latency : null;
  const respLat = input.openLoop?.response && input.openLoop.response.count > 0 ? input.openLoop.response : null;
  const hitMode = input.hitRate ?? (input.op === 'get' || input.op === 'prefetch' ? 'get' : 'none');
  const smoke = input.smoke ?? isSmokeProtocol(input.protocol);
  const row: Row = {
    system: input.system ?? 'peercache',
    path: input.path,
    protocol: input.protocol,
    block_size: blockSize,
    batch_size: input.batchSize,
    threads: input.threads,
    duration_s: round(seconds, 3),
    ops,
    bytes_total: bytes,
    throughput_gbps: round(rate(bytes, seconds) / 1e9, 4),
    ops_per_s: round(rate(ops, seconds), 1),
    lat_us_mean: us(lat?.mean_ns),
    lat_us_p50: us(lat?.p50_ns),
    lat_us_p90: gatedPercentile('p90', lat?.p90_ns, lat?.count ?? 0),
    lat_us_p95: gatedPercentile('p95', lat?.p95_ns, lat?.count ?? 0),
    lat_us_p99: gatedPercentile('p99', lat?.p99_ns, lat?.count ?? 0),
    lat_us_p999: gatedPercentile('p999', lat?.p999_ns, lat?.count ?? 0),
    lat_us_max: us(lat?.max_ns),
    op: input.op,
    pages,
    pages_per_s: round(pagesPerS, 1),
    // From the unrounded page rate, so tokens/s does not inherit pages/s's rounding × tokens.
    tokens_per_s: round(pagesPerS * tokensPerPage, 1),
    hit_rate: hitMode === 'get' && pagesRequested > 0 ? Math.min(1, pages / pagesRequested) : null,
    note: withSmoke(input.note ?? '', smoke),
    ok: input.ok ?? true,
    peak: false,
    smoke,
    phase: input.phase ?? 'single',
    lat_unit: input.latUnit ?? 'batch_call',
    calls,
    pages_requested: pagesRequested,
    errors,
    cpu_client_pct: roundOrNull(input.cpu, 1),
    rss_per_worker_bytes: input.rss === null || input.rss === undefined || !Number.isFinite(input.rss) ? null : Math.round(input.rss),
    transports: [...(input.transports ?? [])],
    histogram: input.histogram ?? null,
    aborted: input.aborted ?? false,
    trials: 1,
    throughput_gbps_ci95: null,
    pages_per_s_ci95: null,
    lat_us_p99_ci95: null,
    cv: null,
    noisy: null,
    slo_peak: null,
    knee: null,
    arrival: input.openLoop ? input.openLoop.arrival : 'closed',
    rate_offered: input.openLoop ? round(input.openLoop.rateOffered, 1) : null,
    rate_achieved: input.openLoop ? round(rate(calls, seconds), 1) : null,
    response_lat_us_p50: us(respLat?.p50_ns),
    response_lat_us_p90: gatedPercentile('p90', respLat?.p90_ns, respLat?.count ?? 0),
    response_lat_us_p99: gatedPercentile('p99', respLat?.p99_ns, respLat?.count ?? 0),
    response_lat_us_p999: gatedPercentile('p999', respLat?.p999_ns, respLat?.count ?? 0),
    response_lat_us_max: us(respLat?.max_ns),
    response_histogram: input.openLoop?.responseHistogram ?? null,
    pages_verified: input.pagesVerified ?? null,
    wrong_pages: input.wrongPages ?? null,
    intervals: input.intervals ? input.intervals.map((iv) => intervalOf(iv, pages > 0 ? bytes / pages : input.op === 'exists' ? 0 : components * blockSize)) : null,
  };
  if (input.extra) {
    const extra: Record<string, number | null> = {};
    for (const [k, v] of Object.entries(input.extra)) extra[k] = v === null || !Number.isFinite(v) ? null : v;
    row.extra = extra;
  }
  return row;
}

/** What identifies a row that could not run. */
export type FailedRowInput = Pick<RowInput, 'path' | 'op' | 'protocol' | 'blockSize' | 'batchSize' | 'threads'> &
  Partial<Pick<RowInput, 'system' | 'components' | 'tokensPerPage' | 'phase' | 'latUnit' | 'smoke' | 'transports' | 'errors' | 'calls' | 'elapsedNs' | 'extra' | 'aborted'>>;

/** A row for a point that could not run: ok false, zero counters and rates, null latencies; `note` says why. */
export function failedRow(partial: FailedRowInput, note: string): Row {
  const row = makeRow({
    ...partial,
    calls: partial.calls ?? 0,
    pages: 0,
    pagesRequested: 0,
    ops: 0,
    bytes: 0,
    elapsedNs: partial.elapsedNs ?? 0,
    latency: null,
    histogram: null,
    hitRate: 'none',
    note,
    ok: false,
  });
  return { ...row, trials: 0 };
}

/** Meta as the caller gives it: smoke/publishable default from the protocol, transports to []. */
export type MetaInput = Omit<MetaCore, 'smoke' | 'publishable' | 'transports'> &
  Partial<Pick<MetaCore, 'smoke' | 'publishable' | 'transports'>> & { [key: string]: JsonValue | undefined };

export interface ReportInput {
  command: string;
  host: Host;
  meta: MetaInput;
  results: Row[];
  notes?: string[];
  /** The run's start; default now. */
  date?: Date;
  /** Default host.package_version. */
  toolVersion?: string;
  /** os.loadavg() taken before the run (manifest.loadavg_before). */
  loadavgBefore?: [number, number, number] | null;
}

/** Assembles a schema_version 1 report. */
export function makeReport(input: ReportInput): Report {
  const smoke = input.meta.smoke ?? isSmokeProtocol(input.meta.protocol);
  const meta: Meta = {
    ...input.meta,
    smoke,
    // Nothing measured is nothing to publish: a report whose every row failed is not publishable.
    publishable: smoke ? false : (input.meta.publishable ?? input.results.some((r) => r.ok)),
    transports: [...(input.meta.transports ?? [])],
  };
  return {
    schema: REPORT_SCHEMA_ID,
    schema_version: REPORT_SCHEMA_VERSION,
    created_at: isoSeconds(input.date ?? new Date()),
    tool: { name: TOOL_NAME, version: input.toolVersion ?? input.host.package_version },
    command: input.command,
    host: input.host,
    meta,
    results: input.results,
    notes: [...(input.notes ?? [])],
    manifest: collectManifest({ command: input.command, host: input.host, transports: meta.transports, rows: input.results, loadavgBefore: input.loadavgBefore }),
  };
}

/** An aborted run's reports say so once (a note naming where it stopped may already be there). */
export function noteAborted(notes: string[], signal: AbortSignal | undefined): void {
  if (signal?.aborted && !notes.some((n) => n.startsWith('aborted'))) notes.push('aborted by the user: rows measured so far are kept');
}
