/**
 * The benchmark report model: the TypeScript twin of `schema/report.schema.json` (schema_version 1).
 * Row keeps the original PeerCache `BenchResult` field names and order (so existing tooling keeps
 * reading it), then appends typed fields. Every latency is in µs and is `null`, never NaN, when
 * there was no sample; rates are decimal (10^9 bytes = 1 GB).
 */
import type { Protocol } from '../../transport/types.js';
import type { Layout } from '../../store/host-pool.js';

export const REPORT_SCHEMA_ID = 'peercache-bench/report' as const;
export const REPORT_SCHEMA_VERSION = 1 as const;
export const TOOL_NAME = 'peercache-bench' as const;
/** Carried by the banner, the Markdown header and every row note of a smoke (tcp) run. */
export const SMOKE_LABEL = 'smoke — not publishable';

export type System = 'peercache' | 'mooncake';
/** "" for rows that are not one HiCache operation (e.g. Mooncake's transfer-engine). */
export type RowOp = 'get' | 'set' | 'exists' | 'prefetch' | 'read' | '';
/** Where a row sits in a run: the latency baseline, a point of a sweep, or a single measurement. */
export type RowPhase = 'latency-baseline' | 'sweep' | 'single';
/** What one latency sample times: a whole batch call, one page (batch 1), or one transport read. */
export type LatUnit = 'batch_call' | 'page' | 'read' | 'request';
export type Mode = 'suite' | 'latency' | 'throughput' | 'saturation' | 'micro' | 'compare' | 'mooncake' | 'dist';
export type { Layout };

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

export interface Row {
  // --- the original BenchResult fields, in its order ---
  system: System;
  /** hicache-get | hicache-set | hicache-exists | transport-read | store-get | transfer-engine */
  path: string;
  /** The requested protocol; `transports` says what actually ran. */
  protocol: Protocol;
  /** Bytes per component object (a page is 1 component for mla, 2 for mha). */
  block_size: number;
  batch_size: number;
  /** Concurrency (closed-loop workers). */
  threads: number;
  /** The measured window in seconds, 3 dp (the denominator of every rate). */
  duration_s: number;
  /** Component reads/writes completed; exists: pages probed. */
  ops: number;
  bytes_total: number;
  /** bytes_total / 1e9 / duration, 4 dp. */
  throughput_gbps: number;
  /** 1 dp. */
  ops_per_s: number;
  lat_us_mean: number | null;
  lat_us_p50: number | null;
  lat_us_p90: number | null;
  lat_us_p95: number | null;
  lat_us_p99: number | null;
  lat_us_p999: number | null;
  lat_us_max: number | null;
  op: RowOp;
  /** Logical pages completed (get: pages found and read; set: written; exists: probed). */
  pages: number;
  /** 1 dp. */
  pages_per_s: number;
  /** pages_per_s × tokens_per_page, 1 dp. */
  tokens_per_s: number;
  /** Fraction 0..1 of requested pages found; get rows only, else null. */
  hit_rate: number | null;
  note: string;
  ok: boolean;
  // --- typed additions ---
  peak: boolean;
  smoke: boolean;
  phase: RowPhase;
  lat_unit: LatUnit;
  /** Batch calls measured (a percentile needing more samples than this is null: see PERCENTILE_MIN_SAMPLES). */
  calls: number;
  pages_requested: number;
  /** Failed calls. */
  errors: number;
  /** Client process CPU% during the window (100 = one core), or null when not measured. */
  cpu_client_pct: number | null;
  rss_per_worker_bytes: number | null;
  /** Transports (UCX lanes) that actually carried the data, e.g. ['sysv/memory']. */
  transports: string[];
  /** HdrHistogram V2 compressed, base64, of the latency samples in ns; null when none. */
  histogram: string | null;
  /**
   * Stopped before its window ended (Ctrl-C, a deadline): the figures are the window it actually
   * measured (duration_s). Never PEAK, never an input of a ratio.
   */
  aborted: boolean;
  /** Windows measured for this row (--repeat); its rates and percentiles are their medians. 0: none. */
  trials: number;
  /** 95% confidence interval of the mean over trials (Student's t), [lo, hi]; null below 2 trials. */
  throughput_gbps_ci95: [number, number] | null;
  pages_per_s_ci95: [number, number] | null;
  lat_us_p99_ci95: [number, number] | null;
  /** Coefficient of variation over trials of the PEAK measure (pages_per_s or throughput_gbps); null below 2 trials. */
  cv: number | null;
  /** cv above the noise threshold (--noisy-cv, default 5%); null below 2 trials. */
  noisy: boolean | null;
  /** The best row of its sweep whose p99 meets --slo-p99 (see report/knee.ts); null without an SLO. */
  slo_peak: boolean | null;
  /** How calls arrived: closed (each worker calls again when its call returns) or open loop (--rate, --arrival). */
  arrival: 'closed' | 'constant' | 'poisson';
  /** Open loop: batch calls per second offered over the row's workers; null closed loop. */
  rate_offered: number | null;
  /** Open loop: batch calls per second measured (calls / duration_s); null closed loop. */
  rate_achieved: number | null;
  /** Open loop: response latency, from each call's intended start (no coordinated omission); the lat_us_* fields are service latency (from its actual start). Null closed loop. */
  response_lat_us_p50: number | null;
  response_lat_us_p90: number | null;
  response_lat_us_p99: number | null;
  response_lat_us_p999: number | null;
  response_lat_us_max: number | null;
  /** Open loop: HdrHistogram V2 base64 of the response latencies (ns); null closed loop. */
  response_histogram: string | null;
  /** --verify: hit pages checked against what their publisher wrote (key and generation); null without --verify. */
  pages_verified: number | null;
  /** --verify: verified pages that were wrong (any fails the row); null without --verify. */
  wrong_pages: number | null;
  /** The sweep's knee: the last point before throughput grows slower than latency (report/knee.ts); null outside sweeps. */
  knee: boolean | null;
  /**
   * --interval: the row's time series, warmup intervals (phase "warmup") then the measured window's,
   * every trial's in run order; null without --interval (and on a row that failed).
   */
  intervals: Interval[] | null;
  /** Additional numeric measurements not known when the schema was designed. */
  extra?: Record<string, number | null>;
}

/**
 * One interval of a row (--interval). Latency is what the row's latency is: service latency
 * closed loop, response latency open loop (--rate). Counts are exact per phase (the intervals of
 * a phase add up to it); a call that ended within µs of a boundary may sit in the neighbour.
 */
export interface Interval {
  /** 1-based trial (--repeat) the interval belongs to. */
  trial: number;
  phase: 'warmup' | 'measure';
  /** Seconds from the report's created_at to the interval's start, 3 dp. */
  start_s: number;
  /** 3 dp; the last interval of a phase runs to the phase's end (0.5 to 1.5 intervals). */
  duration_s: number;
  calls: number;
  pages: number;
  /** 4 dp, as the row's. */
  throughput_gbps: number;
  /** 1 dp. */
  pages_per_s: number;
  lat_us_p50: number | null;
  /** Null below PERCENTILE_MIN_SAMPLES.p99 calls in the interval. */
  lat_us_p99: number | null;
  /** HdrHistogram V2 compressed base64 of the interval's latencies in ns (what the .hlog holds, in µs); null without a sample. */
  histogram: string | null;
}

export interface Host {
  platform: string;
  os_release: string;
  arch: string;
  cpu_model: string;
  cpu_count: number;
  node_version: string;
  package_version: string;
  ucx_version: string | null;
  hostname: string;
  /** GLIBC_TUNABLES as the process started (it decides how libc's memcpy, which does the shm READ, copies); null when unset. */
  glibc_tunables?: string | null;
}

export interface Tool {
  name: typeof TOOL_NAME;
  version: string;
}

/** The run's named parameters (Meta adds the open part). */
export interface MetaCore {
  mode: Mode;
  protocol: Protocol;
  /** true for tcp: a functional check, never a performance figure. */
  smoke: boolean;
  /** false whenever smoke. */
  publishable: boolean;
  /** Transports that actually ran (union over the run). */
  transports: string[];
  device?: string | null;
  devices?: string[];
  layout?: Layout;
  page_size?: number;
  batch_size?: number;
  tokens_per_page?: number;
  concurrencies?: number[];
  working_set?: number;
  duration_s?: number;
  warmup_s?: number;
}

/** The run's parameters. Open: subcommands add their own keys (see the schema). */
export interface Meta extends MetaCore {
  [key: string]: JsonValue | undefined;
}

/** How the run can be reproduced or doubted (report/manifest.ts). */
export interface Manifest {
  /** The exact command line. */
  command: string;
  /** process.argv after node and the script. */
  argv: string[];
  package_version: string;
  /** HEAD of the checkout the package ran from; null when not a git checkout. */
  git_commit: string | null;
  /** Tracked files changed since git_commit; null when not a checkout. */
  git_dirty: boolean | null;
  node_version: string;
  /** process.execArgv: Node/V8 flags such as --single-threaded-gc (see engine/gc-flags.ts). */
  node_flags: string[];
  ucx_version: string | null;
  /** UCX transports (lanes) that actually carried data, union over the run. */
  ucx_transports: string[];
  /** UCX_*, GLIBC_TUNABLES and PEERCACHE_* as the client saw them (secrets masked). */
  env: Record<string, string>;
  cpu_model: string;
  cpu_count: number;
  /** 1, 5, 15 min load average before the run; null when not taken. */
  loadavg_before: [number, number, number] | null;
  /** Client CPU% of each row, in results order (100 = one core). */
  client_cpu_pct: (number | null)[];
}

export interface Report {
  schema: typeof REPORT_SCHEMA_ID;
  schema_version: typeof REPORT_SCHEMA_VERSION;
  /** UTC, seconds: 2026-11-24T23:05:26Z */
  created_at: string;
  tool: Tool;
  /** The exact command line. */
  command: string;
  host: Host;
  meta: Meta;
  results: Row[];
  notes: string[];
  manifest: Manifest;
}
