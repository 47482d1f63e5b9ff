/**
 * The worker protocol, in one place (like piscina's types.ts): the task a row's main thread hands
 * each worker and the result it gets back. The shared control block (phase, ready/done, live
 * counters) is its own object: see control-block.ts.
 */
import type { Layout } from '../../store/host-pool.js';
import type { StoreConfig } from './connection.js';

export type BenchOp = 'get' | 'set' | 'exists' | 'prefetch';
/**
 * The loop body a worker runs: a store operation (get/set/exists through its own store client),
 * a bare data-plane READ (`read`, micro's transport path: its own endpoint to the producer's raw
 * region), or nothing (`noop`: the engine's own cost).
 */
export type DriverKind = BenchOp | 'read' | 'noop';

/** A raw region a producer publishes for `read` drivers. */
export interface RawRegion {
  /** Base64 of the producer's transport address. */
  address: string;
  /** Base64 of the region's descriptor. */
  descriptor: string;
  bytes: number;
}

/** What one worker runs for one row. */
export interface WorkerTask {
  index: number;
  threads: number;
  op: DriverKind;
  row: number;
  /** The row's ControlBlock buffer (ControlBlock.attach). */
  control: SharedArrayBuffer;
  histogram: SharedArrayBuffer;
  /**
   * Interval rows (--interval): the histogram that takes the warmup's calls (response latency in
   * the open loop, like the measured intervals), so warmup intervals show; null: warmup not recorded.
   */
  warmHistogram?: SharedArrayBuffer | null;
  store: StoreConfig;
  layout: Layout;
  pageBytes: number;
  tokensPerPage: number;
  batchSize: number;
  /** get/exists: the working set the producer published, as key prefix + count. */
  keyPrefix: string;
  workingSet: number;
  /** set: this worker's published pool, in bytes. */
  publishBytes: number;
  /**
   * The row's one destination (get) / source (set) host pool that all its workers share, with
   * its page count: worker w cycles its batches through its 1/threads share of it, so every row
   * of a sweep touches the same footprint. Null: each worker has its own pool of one batch.
   */
  hostPool?: { buffer: Uint8Array; pages: number } | null;
  /** read: the region to READ blocks of `pageBytes` from (cycling over it). */
  raw: RawRegion | null;
  /** read: `spread` (default) cycles over the region, each READ into its own local block; `hot`
   * reads the region's first block into one local block (ucx_perftest's pattern). */
  readPattern?: 'spread' | 'hot';
  /** Verify every hit page against what its publisher wrote (costs reader CPU). */
  verify: boolean;
  /** sample (default): words spread over the page; full: every word. */
  verifyMode?: 'sample' | 'full';
  /** The generation the producer published the working set with (default 1). */
  generation?: number;
  /**
   * Open loop: this worker's own timeline of intended call starts (calls/s on this worker) and
   * the histogram that takes response latency (from the intended start); absent: closed loop.
   */
  arrival?: { kind: 'constant' | 'poisson'; rate: number; seed: number; responseHistogram: SharedArrayBuffer } | null;
  /**
   * prefetch (SGLang's HiCache prefetch, one request per call): pages per request, the fraction
   * of them in the store (a hit prefix; the rest are misses), and how many workers read the same
   * keys (MLA's fan-in: K ranks prefetching one request).
   */
  prefetch?: { prefixPages: number; hitRatio: number; readersPerKey: number } | null;
  /** The row's warmup: also bounds the calls a worker makes before it reports ready. */
  warmupMs: number;
  /** A stall budget: a worker that cannot connect within it fails the row. */
  connectTimeoutMs: number;
}

export interface WorkerResult {
  index: number;
  calls: number;
  pagesRequested: number;
  pages: number;
  errors: number;
  /** Open loop: the sum over measured calls of (actual start - intended start), ns. */
  scheduleLagNs: number;
  /** Hit pages verified / found wrong (verify on). */
  pagesVerified: number;
  wrongPages: number;
  firstError: string | null;
  lanes: string[];
  /** The worker's resident-set growth while it set up (a process-wide figure, taken per worker). */
  rssBytes: number;
}
