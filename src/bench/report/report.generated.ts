/**
 * GENERATED from schema/report.schema.json by `npm run gen:types` (json-schema-to-typescript): do not edit.
 * Change the schema, then regenerate; test/bench/report-types.test.ts fails while the two differ.
 */

/**
 * The run's parameters. Open: subcommands may add keys beyond those listed.
 *
 * This interface was referenced by `Report`'s JSON-Schema
 * via the `definition` "meta".
 */
export type Meta = {
  /**
   * The subcommand/mode that ran.
   */
  mode: 'suite' | 'latency' | 'throughput' | 'saturation' | 'micro' | 'compare' | 'mooncake' | 'dist';
  /**
   * The protocol requested: rdma, shm or tcp.
   */
  protocol: 'rdma' | 'shm' | 'tcp';
  /**
   * true for tcp: a functional check, not a performance figure.
   */
  smoke: boolean;
  /**
   * Whether the figures may be published; always false when smoke.
   */
  publishable: boolean;
  /**
   * Transports that actually ran during the run.
   */
  transports: string[];
  /**
   * The RDMA device requested (e.g. mlx5_0), or null.
   */
  device?: string | null;
  /**
   * RDMA rails requested, in order.
   */
  devices?: string[];
  /**
   * mla: 1 object per page; mha: k+v, 2 objects per page.
   */
  layout?: 'mla' | 'mha';
  /**
   * Bytes per component object (unit: bytes).
   */
  page_size?: number;
  /**
   * Pages per batch call as the rows used it.
   */
  batch_size?: number;
  /**
   * Tokens per page, for tokens_per_s.
   */
  tokens_per_page?: number;
  /**
   * The concurrency sweep.
   */
  concurrencies?: number[];
  /**
   * Distinct pages in the working set.
   */
  working_set?: number;
  /**
   * Configured measurement duration per point (unit: seconds).
   */
  duration_s?: number;
  /**
   * Configured warmup per point, discarded (unit: seconds).
   */
  warmup_s?: number;
};
/**
 * This interface was referenced by `Report`'s JSON-Schema
 * via the `definition` "latency_us".
 */
export type LatencyUs = number | null;

/**
 * One benchmark run: what ran (command, meta), where (host), and one row per measured point. Rates are decimal (1 GB = 10^9 bytes); latencies are microseconds; a value that could not be measured is null, never NaN.
 */
export interface Report {
  /**
   * Identifies the document type.
   */
  schema: 'peercache-bench/report';
  /**
   * Incremented on any incompatible change.
   */
  schema_version: 1;
  /**
   * When the run started, UTC, to the second (e.g. 2026-11-24T23:05:26Z).
   */
  created_at: string;
  /**
   * The program that wrote the report.
   */
  tool: {
    name: 'peercache-bench';
    /**
     * The peercache package version.
     */
    version: string;
  };
  /**
   * The exact command line of the run.
   */
  command: string;
  host: Host;
  meta: Meta;
  /**
   * One row per measured point, in run order.
   */
  results: Row[];
  /**
   * Free-text remarks (fallbacks, warnings, caveats).
   */
  notes: string[];
  manifest: Manifest;
}
/**
 * The machine that ran the client.
 *
 * This interface was referenced by `Report`'s JSON-Schema
 * via the `definition` "host".
 */
export interface Host {
  /**
   * os.platform(), e.g. linux.
   */
  platform: string;
  /**
   * os.release(): the kernel release.
   */
  os_release: string;
  /**
   * os.arch(), e.g. x64.
   */
  arch: string;
  /**
   * Model name of the first CPU (os.cpus()).
   */
  cpu_model: string;
  /**
   * Logical CPUs.
   */
  cpu_count: number;
  /**
   * process.version, e.g. v20.20.2.
   */
  node_version: string;
  /**
   * The peercache package version.
   */
  package_version: string;
  /**
   * The UCX library version loaded, or null when UCX was not loaded.
   */
  ucx_version: string | null;
  /**
   * os.hostname().
   */
  hostname: string;
  /**
   * GLIBC_TUNABLES as the client process started, or null when unset: it decides how libc's memcpy (which performs the shm READ) copies, e.g. glibc.cpu.x86_non_temporal_threshold.
   */
  glibc_tunables?: string | null;
}
/**
 * One measured point. The first 25 fields are the original PeerCache BenchResult, in its order.
 *
 * This interface was referenced by `Report`'s JSON-Schema
 * via the `definition` "row".
 */
export interface Row {
  /**
   * Which system produced the row.
   */
  system: 'peercache' | 'mooncake';
  /**
   * The code path measured: hicache-get, hicache-set, hicache-exists (HiCacheStorage batch calls), transport-read (raw one-sided READ), store-get (store batch get), transfer-engine (Mooncake).
   */
  path: string;
  /**
   * The protocol requested (rdma, shm or tcp). `transports` says what actually carried the data.
   */
  protocol: 'rdma' | 'shm' | 'tcp';
  /**
   * Bytes per component object (unit: bytes). A page is 1 component (mla) or 2 (mha, k+v).
   */
  block_size: number;
  /**
   * Pages (hicache) or blocks (micro) per batch call.
   */
  batch_size: number;
  /**
   * Concurrency: closed-loop workers issuing calls (summed across processes for dist).
   */
  threads: number;
  /**
   * The measured window, the denominator of every rate (unit: seconds, 3 decimals). 0 when nothing ran.
   */
  duration_s: number;
  /**
   * Component reads/writes completed in the window; exists rows: pages probed.
   */
  ops: number;
  /**
   * Payload bytes moved in the window (unit: bytes). 0 for exists.
   */
  bytes_total: number;
  /**
   * bytes_total / 10^9 / duration_s (unit: decimal GB/s, 4 decimals). 0 when duration_s is 0.
   */
  throughput_gbps: number;
  /**
   * ops / duration_s (unit: operations per second, 1 decimal).
   */
  ops_per_s: number;
  /**
   * Mean latency of one sample (unit: microseconds, 2 decimals); null when there was no sample. What a sample is: lat_unit.
   */
  lat_us_mean: number | null;
  /**
   * 50th percentile latency (µs, 2 decimals) or null.
   */
  lat_us_p50: number | null;
  /**
   * 90th percentile latency (µs, 2 decimals) or null; null below 10 samples (calls).
   */
  lat_us_p90: number | null;
  /**
   * 95th percentile latency (µs, 2 decimals) or null; null below 20 samples (calls).
   */
  lat_us_p95: number | null;
  /**
   * 99th percentile latency (µs, 2 decimals) or null; null below 100 samples (calls).
   */
  lat_us_p99: number | null;
  /**
   * 99.9th percentile latency (µs, 2 decimals) or null; null below 1000 samples (calls).
   */
  lat_us_p999: number | null;
  /**
   * Maximum latency (µs, 2 decimals) or null.
   */
  lat_us_max: number | null;
  /**
   * The operation: get/set/exists (HiCache batch calls), prefetch (one request of SGLang's HiCache prefetch: batch_exists in 128-key chunks, then batch_get_v1 of the hit prefix in 128-page batches), read (data-plane micro), "" (other, e.g. Mooncake).
   */
  op: 'get' | 'set' | 'exists' | 'prefetch' | 'read' | '';
  /**
   * Logical pages completed: get = pages found and read, set = pages written, exists = pages probed.
   */
  pages: number;
  /**
   * pages / duration_s (unit: pages per second, 1 decimal).
   */
  pages_per_s: number;
  /**
   * pages_per_s × tokens_per_page (unit: tokens per second, 1 decimal; from the unrounded page rate).
   */
  tokens_per_s: number;
  /**
   * Fraction (0..1) of requested pages found; get and prefetch rows only, null otherwise.
   */
  hit_rate: number | null;
  /**
   * Free text about the row. Smoke rows carry "smoke — not publishable"; failed rows say why.
   */
  note: string;
  /**
   * false when the point could not run; its counters are 0 and its latencies null.
   */
  ok: boolean;
  /**
   * true on the PEAK row of its group (same system, path, op, block size and measure): the ok, fully measured (not aborted), non-baseline row with the highest pages_per_s (get/set/exists) or throughput_gbps (other ops); ties go to the first. Only sweeps are marked: latency and throughput modes have no PEAK. No latency-SLO constraint.
   */
  peak: boolean;
  /**
   * true when the figure is a functional smoke test (tcp) and must not be published.
   */
  smoke: boolean;
  /**
   * latency-baseline: batch 1 at concurrency 1 (never PEAK); sweep: a point of a concurrency sweep; single: a lone measurement.
   */
  phase: 'latency-baseline' | 'sweep' | 'single';
  /**
   * What one latency sample times: a whole batch call, one page (batch 1), one transport read, or one prefetch request (what loading a request's prefix adds to time to first token).
   */
  lat_unit: 'batch_call' | 'page' | 'read' | 'request';
  /**
   * Batch calls completed in the window (latency samples). A percentile needing more samples than this is null, never the max: p90 below 10, p95 below 20, p99 below 100, p999 below 1000.
   */
  calls: number;
  /**
   * Pages asked for in the window (the hit_rate denominator for get).
   */
  pages_requested: number;
  /**
   * Calls that failed.
   */
  errors: number;
  /**
   * Client process CPU use over the window (unit: percent, 100 = one core fully busy); null when not measured.
   */
  cpu_client_pct: number | null;
  /**
   * Resident set size per worker (unit: bytes); null when not measured.
   */
  rss_per_worker_bytes: number | null;
  /**
   * Transports (UCX lanes, e.g. sysv/memory, rc_mlx5/mlx5_0:1, or tcp) that actually carried the data.
   */
  transports: string[];
  /**
   * The latency samples (unit: nanoseconds) as an HdrHistogram V2 compressed encoding, base64; null when there were none.
   */
  histogram: string | null;
  /**
   * The row was stopped before its window ended (Ctrl-C, a deadline); its figures are the window it actually measured (duration_s). Never PEAK, never an input of a ratio.
   */
  aborted: boolean;
  /**
   * Measured windows (--repeat N): with more than one, every rate and latency percentile of the row is the median of its trials' (lat_us_max the largest), counters and duration_s their sums, histogram all their samples. 0 for a row that measured nothing.
   */
  trials: number;
  /**
   * 95% confidence interval [lo, hi] of the mean throughput_gbps over the row's trials (Student's t); null below 2 trials.
   *
   * @minItems 2
   * @maxItems 2
   */
  throughput_gbps_ci95: [number, number] | null;
  /**
   * 95% confidence interval [lo, hi] of the mean pages_per_s over the row's trials (Student's t); null below 2 trials.
   *
   * @minItems 2
   * @maxItems 2
   */
  pages_per_s_ci95: [number, number] | null;
  /**
   * 95% confidence interval [lo, hi] of the mean lat_us_p99 (null also when a trial has no p99) over the row's trials (Student's t); null below 2 trials.
   *
   * @minItems 2
   * @maxItems 2
   */
  lat_us_p99_ci95: [number, number] | null;
  /**
   * Coefficient of variation (sample stdev / mean) over trials of the row's PEAK measure (pages_per_s for get/set/exists, throughput_gbps otherwise); null below 2 trials.
   */
  cv: number | null;
  /**
   * cv above the noise threshold (--noisy-cv, default 5%): a ratio using this row is marked noisy; null below 2 trials.
   */
  noisy: boolean | null;
  /**
   * With --slo-p99 (saturation, suite): true on the row of its sweep group with the highest PEAK measure whose lat_us_p99 meets the SLO (never an aborted, failed or baseline row; a null p99 does not qualify); null without an SLO or outside a sweep.
   */
  slo_peak: boolean | null;
  /**
   * In a sweep: true on the knee, the last point (by concurrency) before the first step where throughput grows by a smaller factor than the median latency (lat_us_p50) does — the first local maximum of throughput/latency (Kleinrock's power); no knee when it still grows at the last point or with under 3 points. null outside sweeps.
   */
  knee: boolean | null;
  /**
   * --verify: hit pages checked against what their publisher wrote for that key and generation (verify_mode sample: the first and last word and one word per 4 KiB; full: every word); null without --verify.
   */
  pages_verified: number | null;
  /**
   * --verify: verified pages that were not what their publisher wrote; any fails the row (ok false, note WRONG PAGES); null without --verify.
   */
  wrong_pages: number | null;
  /**
   * How calls arrived: closed (each worker calls again as soon as its call returns) or open loop (--rate with --arrival constant|poisson: each worker on its own timeline of intended starts).
   */
  arrival: 'closed' | 'constant' | 'poisson';
  /**
   * Open loop: batch calls per second offered over the row's workers (--rate or a --rate-sweep point); null closed loop.
   */
  rate_offered: number | null;
  /**
   * Open loop: batch calls per second measured (calls / duration_s); below rate_offered when the store cannot keep up. Null closed loop.
   */
  rate_achieved: number | null;
  /**
   * Open loop: response latency (µs) from each call's intended start, so queueing behind a slow call counts (no coordinated omission); the lat_us_* fields are service latency from the actual start. Null closed loop.
   */
  response_lat_us_p50: number | null;
  /**
   * Open loop: response latency (µs) from each call's intended start, so queueing behind a slow call counts (no coordinated omission); the lat_us_* fields are service latency from the actual start. Null below 10 calls. Null closed loop.
   */
  response_lat_us_p90: number | null;
  /**
   * Open loop: response latency (µs) from each call's intended start, so queueing behind a slow call counts (no coordinated omission); the lat_us_* fields are service latency from the actual start. Null below 100 calls. Null closed loop.
   */
  response_lat_us_p99: number | null;
  /**
   * Open loop: response latency (µs) from each call's intended start, so queueing behind a slow call counts (no coordinated omission); the lat_us_* fields are service latency from the actual start. Null below 1000 calls. Null closed loop.
   */
  response_lat_us_p999: number | null;
  /**
   * Open loop: response latency (µs) from each call's intended start, so queueing behind a slow call counts (no coordinated omission); the lat_us_* fields are service latency from the actual start. Null closed loop.
   */
  response_lat_us_max: number | null;
  /**
   * Open loop: HdrHistogram V2 compressed, base64, of the response latencies in ns; null closed loop.
   */
  response_histogram: string | null;
  /**
   * --interval: the row's time series, its warmup intervals (phase warmup) then its measured window's, every trial's in run order (see $defs/interval); null without --interval and on a row that failed. The same series is written as an HdrHistogram interval log beside the JSON (<name>.hlog).
   */
  intervals: Interval[] | null;
  /**
   * Additional numeric measurements not in this schema version; units in the key name.
   */
  extra?: {
    [k: string]: number | null;
  };
}
/**
 * One interval of a row (--interval): the difference of two snapshots of the row's shared histograms and page counter, taken by the main thread while the workers run (bucket-wise subtraction, exact). The intervals of a phase add up to it exactly; a call that ended within microseconds of a boundary may sit in the neighbouring interval. Latency is the row's: service latency closed loop, response latency (from the intended start) open loop.
 *
 * This interface was referenced by `Report`'s JSON-Schema
 * via the `definition` "interval".
 */
export interface Interval {
  /**
   * The trial (--repeat) the interval belongs to, 1-based.
   */
  trial: number;
  /**
   * warmup: before the measured window (not in the row's figures); measure: inside it.
   */
  phase: 'warmup' | 'measure';
  /**
   * Seconds from the report's created_at to the interval's start, 3 decimals (the .hlog's timestamps).
   */
  start_s: number;
  /**
   * The interval's length in seconds, 3 decimals; the last interval of a phase runs to the phase's end (0.5 to 1.5 intervals).
   */
  duration_s: number;
  /**
   * Calls completed in the interval (its latency samples); a phase's intervals sum to its calls (measure: the trial's calls).
   */
  calls: number;
  /**
   * Pages those calls completed.
   */
  pages: number;
  /**
   * pages x the row's bytes per page / 1e9 / duration_s, 4 decimals.
   */
  throughput_gbps: number;
  /**
   * pages / duration_s, 1 decimal.
   */
  pages_per_s: number;
  /**
   * Median latency in the interval (µs), null without a sample.
   */
  lat_us_p50: number | null;
  /**
   * 99th percentile latency in the interval (µs); null below 100 calls in the interval (as the row's).
   */
  lat_us_p99: number | null;
  /**
   * HdrHistogram V2 compressed, base64, of the interval's latencies in ns; null without a sample.
   */
  histogram: string | null;
}
/**
 * How the run can be reproduced or doubted: command line, versions, git commit, transports, environment, CPU, load before the run, client CPU per row.
 *
 * This interface was referenced by `Report`'s JSON-Schema
 * via the `definition` "manifest".
 */
export interface Manifest {
  /**
   * The exact command line.
   */
  command: string;
  /**
   * process.argv after node and the script.
   */
  argv: string[];
  package_version: string;
  /**
   * HEAD of the checkout the package ran from; null when it is not a git checkout.
   */
  git_commit: string | null;
  /**
   * Tracked files changed since git_commit; null when not a checkout.
   */
  git_dirty: boolean | null;
  node_version: string;
  /**
   * Node/V8 flags the client process started with (process.execArgv), e.g. --single-threaded-gc: V8's background GC tasks cost oversubscribed workers most of their CPU without it.
   */
  node_flags: string[];
  ucx_version: string | null;
  /**
   * UCX transports (lanes) that actually carried data, union over the run.
   */
  ucx_transports: string[];
  /**
   * UCX_*, GLIBC_TUNABLES and PEERCACHE_* as the client saw them (names containing TOKEN, SECRET or PASSWORD masked).
   */
  env: {
    [k: string]: string;
  };
  cpu_model: string;
  cpu_count: number;
  /**
   * 1, 5 and 15 minute load averages before the run started; null when not taken.
   *
   * @minItems 3
   * @maxItems 3
   */
  loadavg_before: [number, number, number] | null;
  /**
   * Client process CPU% of each row in results order (100 = one core); null where not measured.
   */
  client_cpu_pct: (number | null)[];
}
