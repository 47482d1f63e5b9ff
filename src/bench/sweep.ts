/**
 * runSweep(): the HiCache benchmark modes (latency, throughput, saturation, suite) as a typed
 * programmatic API. The CLI is a thin layer over it. Producer/consumer as SGLang drives them: the
 * producer (prefill) node runs in its own process and publishes the working set; each sweep row
 * runs its consumers on a worker pool sized to the row's concurrency.
 */
import { randomBytes } from 'node:crypto';
import { gcFlagNote } from './engine/gc-flags.js';
import { silentLogger } from '../log.js';
import type { Layout } from '../store/host-pool.js';
import { publishedPoolBytes } from '../store/published-pool.js';
import { collectLocalHost } from './report/host.js';
import { failedRow, makeReport, noteAborted } from './report/metrics.js';
import { loadAverage } from './report/manifest.js';
import { outcomeToRow } from './report/outcome.js';
import { iecBytes } from './report/format.js';
import { combineTrials, DEFAULT_NOISY_CV } from './report/trials.js';
import { markKneeAndSlo } from './report/knee.js';
import { markPeakFor, MODES_WITHOUT_PEAK } from './report/peak.js';
import type { Report, Row } from './report/types.js';
import { checkProtocol, resolveConnection, storeConfig, type ConnectionOptions } from './engine/connection.js';
import { freePort } from './engine/net.js';
import type { BenchOp } from './engine/protocol.js';
import type { VerifyMode } from './engine/pattern.js';
import type { ArrivalKind } from './engine/arrival.js';
import { STORAGE_BATCH } from './engine/drivers.js';
import { startProducer, type ProducerHandle } from './engine/producer.js';
import { runRow, type RowPlan, type RowProgress, type RunControl } from './engine/row.js';
import { MIN_INTERVAL_S } from './engine/intervals.js';
import { ConfigError } from '../errors.js';
import { connectDirectoryClient } from '../store/directory/index.js';

export type HiCacheMode = 'latency' | 'throughput' | 'saturation' | 'suite';

export interface SweepOptions extends ConnectionOptions, RunControl {
  mode: HiCacheMode;
  /** throughput / saturation: the operation (default get). */
  op?: BenchOp;
  /** saturation / suite: the concurrency sweep (default 1,2,4,8,16,32,64); throughput: one value. */
  concurrencies?: number[];
  layout?: Layout;
  /** Bytes per component object (default 131072). */
  pageBytes?: number;
  tokensPerPage?: number;
  batchSize?: number;
  durationS?: number;
  warmupS?: number;
  /** Distinct pages for get and exists (default 4096). */
  workingSet?: number;
  /** Memory budget guard for all pools together (default 8 GiB). */
  maxBytes?: number;
  /** Verify every byte of every hit page against its key's pattern (costs reader CPU). */
  verify?: boolean;
  /** sample (default): the first and last word and one per 4 KiB of every page; full: every word. */
  verifyMode?: VerifyMode;
  /** The directory: undefined/'embedded' (the producer process serves it) or a redis:// URL. */
  directory?: string;
  /** --model: the preset the page size and layout come from (recorded in the report). */
  model?: { name: string; tp: number };
  /** Workers keep a key replica of the embedded directory (--directory-replica). */
  directoryReplica?: boolean;
  /** Windows per row (default 1; suite 3): the row reports their median, 95% CI and CV. */
  repeat?: number;
  /** CV above which a repeated row is noisy (default 0.05). */
  noisyCv?: number;
  /**
   * The host pool every row's workers share, a fixed footprint across the sweep: 'auto' (default:
   * 2 x the widest row's in-flight pages), a size in bytes, or 'per-worker' (each worker its own
   * pool of one batch: the footprint grows with concurrency).
   */
  hostPool?: 'auto' | 'per-worker' | number;
  /** prefetch: pages per request (default 512). */
  prefixPages?: number;
  /** prefetch: fraction of a request's pages in the store, a hit prefix (default 1). */
  hitRatio?: number;
  /** prefetch: workers reading the same keys (MLA's fan-in; default 1). */
  readersPerKey?: number;
  /** Open loop: total batch calls per second over each row's workers (every row). */
  rate?: number;
  /** Open loop arrivals (default constant). */
  arrival?: ArrivalKind;
  /** saturation: one row per offered rate (calls/s) at the one concurrency given: latency vs offered load. */
  rateSweep?: number[];
  /** saturation/suite: the p99 SLO in µs; the best row meeting it is marked slo_peak. */
  sloP99Us?: number;
  /**
   * Seconds between interval snapshots (>= 0.1): every row gets `intervals` (warmup and measured,
   * throughput and p50/p99 each) and the written report a `.hlog` HdrHistogram interval log.
   * Default: none.
   */
  intervalS?: number;
}

export class SweepConfigError extends ConfigError {
  override name = 'SweepConfigError';
}

/**
 * Every default of a sweep, once: runSweep() applies them (resolveSweepOptions) and the CLI's flags
 * show them as their defaults.
 */
export const SWEEP_DEFAULTS = {
  op: 'get',
  layout: 'mla',
  pageBytes: 131072,
  tokensPerPage: 64,
  batchSize: 32,
  durationS: 10,
  warmupS: 2,
  workingSet: 4096,
  maxBytes: 8 * 2 ** 30,
  concurrencies: [1, 2, 4, 8, 16, 32, 64],
  throughputConcurrency: 8,
  repeat: 1,
  suiteRepeat: 3,
  noisyCv: DEFAULT_NOISY_CV,
  arrival: 'constant',
  hostPool: 'auto',
  prefixPages: 512,
  hitRatio: 1,
  readersPerKey: 1,
} as const satisfies Record<string, string | number | readonly number[]>;

export const DEFAULT_CONCURRENCIES: readonly number[] = SWEEP_DEFAULTS.concurrencies;

interface Step {
  /** Open loop: offered batch calls/s for the row. */
  rate?: number;
  op: BenchOp;
  threads: number;
  batchSize: number;
  phase: RowPlan['phase'];
}

function plan(o: Required<Pick<SweepOptions, 'mode' | 'op' | 'concurrencies' | 'batchSize'>>): Step[] {
  const latency = (phase: RowPlan['phase']): Step[] => (['get', 'set', 'exists'] as const).map((op) => ({ op, threads: 1, batchSize: 1, phase }));
  const sweep = (op: BenchOp): Step[] => o.concurrencies.map((threads) => ({ op, threads, batchSize: o.batchSize, phase: 'sweep' as const }));
  switch (o.mode) {
    case 'latency':
      return latency('single');
    case 'throughput':
      return [{ op: o.op, threads: o.concurrencies[0], batchSize: o.batchSize, phase: 'single' }];
    case 'saturation':
      return sweep(o.op);
    case 'suite':
      return [...latency('latency-baseline'), ...sweep('get'), ...sweep('set'), ...sweep('exists')];
  }
}

/** Slots (pages) each set worker publishes into: room for steady-state eviction, the same for every row. */
export function setPoolPages(batchSize: number, threads: number, pageBytes = 0): number {
  // 2048 pages in all (256 MiB of 128 KiB pages), but at most 1 GiB of real model pages (2048
  // DeepSeek-V3 pages would be 8.6 GiB per worker): the cycle stays long, the footprint bounded.
  const cycle = pageBytes > 0 ? Math.min(2048, Math.max(1, Math.floor(2 ** 30 / pageBytes))) : 2048;
  return Math.max(8 * batchSize, Math.ceil(cycle / threads));
}

/**
 * The options of a sweep with every default applied (SWEEP_DEFAULTS) and every rule checked, and
 * what follows from them (the rows, the working set, the pools): pure, nothing opened. runSweep()
 * runs on it; the CLI calls it first, so a bad combination is one line before anything starts.
 * Errors are SweepConfigErrors naming options as {placeholders} (the CLI shows its flags).
 */
export function resolveSweepOptions(options: SweepOptions) {
  const o = {
    mode: options.mode,
    op: options.op ?? SWEEP_DEFAULTS.op,
    concurrencies: options.concurrencies ?? (options.mode === 'throughput' ? [SWEEP_DEFAULTS.throughputConcurrency] : [...SWEEP_DEFAULTS.concurrencies]),
    batchSize: options.batchSize ?? SWEEP_DEFAULTS.batchSize,
  };
  const layout = options.layout ?? SWEEP_DEFAULTS.layout;
  const components = layout === 'mla' ? 1 : 2;
  const pageBytes = options.pageBytes ?? SWEEP_DEFAULTS.pageBytes;
  const tokensPerPage = options.tokensPerPage ?? SWEEP_DEFAULTS.tokensPerPage;
  const durationS = options.durationS ?? SWEEP_DEFAULTS.durationS;
  const warmupS = options.warmupS ?? SWEEP_DEFAULTS.warmupS;
  const maxBytes = options.maxBytes ?? SWEEP_DEFAULTS.maxBytes;
  const repeat = options.repeat ?? (options.mode === 'suite' ? SWEEP_DEFAULTS.suiteRepeat : SWEEP_DEFAULTS.repeat);
  const noisyCv = options.noisyCv ?? SWEEP_DEFAULTS.noisyCv;
  if (!Number.isSafeInteger(repeat) || repeat < 1) throw new SweepConfigError('repeat must be a positive integer');
  if (!(noisyCv >= 0) || !Number.isFinite(noisyCv)) throw new SweepConfigError('noisyCv must be a number >= 0');
  if (options.sloP99Us !== undefined && !(options.sloP99Us > 0 && Number.isFinite(options.sloP99Us))) throw new SweepConfigError('sloP99Us must be a number > 0');
  const connection = resolveConnection(options);
  const { localHost, devices } = connection;
  if (!o.concurrencies.length || o.concurrencies.some((c) => !Number.isSafeInteger(c) || c < 1)) {
    throw new SweepConfigError('concurrencies must be a non-empty list of positive integers');
  }
  for (const [name, v] of [['pageBytes', pageBytes], ['tokensPerPage', tokensPerPage], ['batchSize', o.batchSize]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new SweepConfigError(`${name} must be a positive integer`);
  }
  if (pageBytes % 4 !== 0) throw new SweepConfigError(`{pageBytes} must be a multiple of 4 bytes, got ${pageBytes}`);
  if (!(durationS > 0) || !(warmupS >= 0)) throw new SweepConfigError('durationS must be > 0 and warmupS >= 0');
  if (options.rateSweep !== undefined) {
    if (o.mode !== 'saturation') throw new SweepConfigError('rateSweep is a saturation option');
    if (o.concurrencies.length !== 1) throw new SweepConfigError('{rateSweep} runs at one concurrency: give exactly one ({concurrencies} N, e.g. 8)');
    if (!options.rateSweep.length || options.rateSweep.some((r) => !(r > 0) || !Number.isFinite(r))) throw new SweepConfigError('rateSweep must be a non-empty list of rates > 0');
    if (options.rate !== undefined) throw new SweepConfigError('{rateSweep} and {rate}: give one of them');
  }
  if (options.intervalS !== undefined && !(options.intervalS >= MIN_INTERVAL_S && Number.isFinite(options.intervalS))) {
    throw new SweepConfigError(`intervalS must be a number of seconds >= ${MIN_INTERVAL_S} (each snapshot reads every worker's histogram)`);
  }
  if (options.rate !== undefined && !(options.rate > 0 && Number.isFinite(options.rate))) throw new SweepConfigError('rate must be a number > 0 (batch calls per second)');
  const arrival = options.arrival ?? SWEEP_DEFAULTS.arrival;
  const prefixPages = options.prefixPages ?? SWEEP_DEFAULTS.prefixPages;
  const hitRatio = options.hitRatio ?? SWEEP_DEFAULTS.hitRatio;
  const readersPerKey = options.readersPerKey ?? SWEEP_DEFAULTS.readersPerKey;
  if (!Number.isSafeInteger(prefixPages) || prefixPages < 1) throw new SweepConfigError('prefixPages must be a positive integer');
  if (!(hitRatio >= 0 && hitRatio <= 1)) throw new SweepConfigError('hitRatio must be between 0 and 1');
  if (!Number.isSafeInteger(readersPerKey) || readersPerKey < 1) throw new SweepConfigError('readersPerKey must be a positive integer');
  // A prefetch row's calls are requests; its get batches are SGLang's 128 pages.
  const forPrefetch = (s: Step): Step => (s.op === 'prefetch' ? { ...s, batchSize: STORAGE_BATCH } : s);
  const steps: Step[] = options.rateSweep
    ? options.rateSweep.map((rate) => ({ op: o.op, threads: o.concurrencies[0], batchSize: o.batchSize, phase: 'sweep' as const, rate }))
    : plan(o).map((s) => (options.rate !== undefined ? { ...s, rate: options.rate } : s));
  for (let i = 0; i < steps.length; i++) steps[i] = forPrefetch(steps[i]);
  const maxThreads = Math.max(...steps.map((s) => s.threads));
  const needsProducer = steps.some((s) => s.op !== 'set');
  // Working set, as the original sized it: at least two batches per worker of the widest row.
  const workingSet = Math.max(options.workingSet ?? SWEEP_DEFAULTS.workingSet, 2 * o.batchSize * maxThreads, steps.some((s) => s.op === 'prefetch') ? prefixPages : 0);
  const setPoolBytes = (s: Step) => publishedPoolBytes(setPoolPages(s.batchSize, s.threads, pageBytes * components) * components, pageBytes);
  const producerBytes = needsProducer ? publishedPoolBytes(workingSet * components + 64, pageBytes) + Math.min(256, workingSet) * pageBytes * components : 0;
  const pageFootprint = pageBytes * components;
  const widestInFlight = Math.max(...steps.map((s) => s.threads * s.batchSize));
  const hostPoolChoice = options.hostPool ?? SWEEP_DEFAULTS.hostPool;
  const hostPoolPages = hostPoolChoice === 'per-worker' ? null : hostPoolChoice === 'auto' ? 2 * widestInFlight : Math.floor(hostPoolChoice / pageFootprint);
  if (hostPoolPages !== null && hostPoolPages < widestInFlight) {
    throw new SweepConfigError(
      `the host pool holds ${hostPoolPages} pages, fewer than the widest row has in flight (${widestInFlight} = its workers x batch): give a host pool of at least ${widestInFlight * pageFootprint} bytes`,
    );
  }
  const hostPoolBytes = hostPoolPages === null ? null : hostPoolPages * pageFootprint;
  const consumerPool = (s: Step) => hostPoolBytes ?? s.threads * s.batchSize * pageFootprint;
  const widestSet = Math.max(0, ...steps.filter((s) => s.op === 'set').map((s) => s.threads * setPoolBytes(s) + consumerPool(s)));
  const widestRead = Math.max(0, ...steps.filter((s) => s.op !== 'set').map(consumerPool));
  const total = producerBytes + Math.max(widestSet, widestRead);
  if (total > maxBytes) {
    throw new SweepConfigError(
      `this run needs about ${(total / 2 ** 30).toFixed(2)} GiB of pools (producer ${(producerBytes / 2 ** 30).toFixed(2)} GiB for a working set of ${workingSet} pages, consumers ${(Math.max(widestSet, widestRead) / 2 ** 30).toFixed(2)} GiB), over {maxBytes} ${(maxBytes / 2 ** 30).toFixed(2)} GiB: lower {workingSet}, {pageBytes}, {batchSize} or the largest of {concurrencies}, or raise {maxBytes}`,
    );
  }
  return { o, layout, components, pageBytes, tokensPerPage, durationS, warmupS, maxBytes, repeat, noisyCv, connection, localHost, devices, arrival, prefixPages, hitRatio, readersPerKey, steps, maxThreads, needsProducer, workingSet, producerBytes, pageFootprint, widestInFlight, hostPoolPages, hostPoolBytes, setPoolBytes };
}

/** Connects to the run's Redis directory once (and leaves): a SweepConfigError naming it when it does not answer. */
async function checkDirectory(url: string): Promise<void> {
  let directory: Awaited<ReturnType<typeof connectDirectoryClient>>;
  try {
    directory = await connectDirectoryClient(url);
  } catch (err) {
    throw new SweepConfigError(`{directory}: ${(err as Error).message}: nothing was measured`, { cause: err });
  }
  await directory.close();
}

/** What resolveSweepOptions() gives: a sweep's options resolved and its plan. */
export type ResolvedSweep = ReturnType<typeof resolveSweepOptions>;

export async function runSweep(options: SweepOptions): Promise<Report> {
  const logger = options.logger ?? silentLogger;
  const { o, layout, components, pageBytes, tokensPerPage, durationS, warmupS, maxBytes, repeat, noisyCv, connection, localHost, devices, arrival, prefixPages, hitRatio, readersPerKey, steps, maxThreads, needsProducer, workingSet, producerBytes, pageFootprint, widestInFlight, hostPoolPages, hostPoolBytes, setPoolBytes } = resolveSweepOptions(options);
  // Fail fast, in this process, with the transport's own explanation (rdma without a NIC, no UCX).
  await checkProtocol(connection);
  // A Redis directory that does not answer would fail every row: refuse before measuring anything.
  if (options.directory && options.directory !== 'embedded') await checkDirectory(options.directory);
  const started = new Date();
  const loadBefore = loadAverage();
  const host = collectLocalHost();
  const notes: string[] = [
    hostPoolBytes === null
      ? 'host pool: one batch per worker (--host-pool per-worker): the destination footprint grows with concurrency'
      : `host pool: ${iecBytes(hostPoolBytes)} (${hostPoolPages} pages) in every row, shared by its workers (each cycles through its share): a fixed destination footprint, so the sweep varies concurrency only`,
  ];
  const gcNote = gcFlagNote(maxThreads);
  if (gcNote) {
    notes.push(gcNote);
    logger.warn(gcNote);
  }
  const rows: Row[] = [];
  const transports = new Set<string>();
  const discoveryAddr = `${localHost}:${await freePort(localHost)}`;
  const directoryUrl = options.directory && options.directory !== 'embedded' ? options.directory : undefined;
  const storeCfg = storeConfig(connection, { discoveryAddr, directoryUrl, directoryReplica: options.directoryReplica });
  // Names of this run in a directory other runs may share (one Redis for a fleet): its producer's
  // node id and its pages' keys, so concurrent runs neither refuse each other nor read each other's pages.
  const runId = randomBytes(4).toString('hex');
  const keyPrefix = `pcbench/${runId}/get`;
  let producer: ProducerHandle | null = null;
  try {
    if (needsProducer) {
      logger.info(`starting the producer process: ${workingSet} pages of ${pageBytes} B (${layout}) on ${options.protocol} at ${discoveryAddr}`);
      producer = await startProducer(
        { ...storeCfg, layout, pageBytes, tokensPerPage, sets: [{ prefix: keyPrefix, count: workingSet }], fill: options.verify ?? false, nodeId: `pcbench-producer-${runId}`, logLevel: options.logLevel ?? 'warning' },
        logger,
      );
    } else {
      // A set-only run still needs a directory: a producer that publishes nothing serves it.
      logger.info(`starting the directory process (a producer that publishes nothing) on ${options.protocol} at ${discoveryAddr}`);
      producer = await startProducer(
        { ...storeCfg, layout, pageBytes, tokensPerPage, sets: [], fill: false, nodeId: `pcbench-directory-${runId}`, logLevel: options.logLevel ?? 'warning' },
        logger,
      );
    }
    for (let i = 0; i < steps.length; i++) {
      const s = steps[i];
      if (options.signal?.aborted) {
        notes.push(`aborted by the user before row ${i + 1} of ${steps.length}`);
        break;
      }
      const note =
        s.op === 'prefetch'
          ? `prefetch: ${prefixPages} pages/request, hit ratio ${hitRatio}, ${readersPerKey} readers/key; batch_exists then batch_get_v1 in 128-page batches; latency per request`
          : s.op === 'get' ? `batch_get_v1 ${layout} ws=${workingSet} (location cache warm)` : s.op === 'set' ? `batch_set_v1 ${layout} pool=${setPoolPages(s.batchSize, s.threads, pageBytes * components)} pages/worker` : 'batch_exists (directory only)';
      const rowPlan: RowPlan = {
        op: s.op,
        path: `hicache-${s.op}`,
        rowOp: s.op,
        latUnit: s.op === 'prefetch' ? 'request' : undefined,
        threads: s.threads,
        batchSize: s.batchSize,
        phase: s.phase,
        components,
        tokensPerPage,
        hostPoolPages: hostPoolPages ?? undefined,
        arrival: s.rate !== undefined ? { kind: arrival, rate: s.rate } : undefined,
        warmupS,
        durationS,
        intervalS: options.intervalS,
        note: [note, hostPoolBytes === null ? '' : `host pool ${iecBytes(hostPoolBytes)} shared by ${s.threads}`, s.rate !== undefined ? `open loop ${s.rate} calls/s ${arrival}` : ''].filter(Boolean).join('; '),
        task: {
          store: storeCfg,
          layout,
          pageBytes,
          tokensPerPage,
          keyPrefix,
          workingSet,
          publishBytes: setPoolBytes(s),
          prefetch: s.op === 'prefetch' ? { prefixPages, hitRatio, readersPerKey } : null,
          verify: options.verify ?? false,
          verifyMode: options.verifyMode ?? 'sample',
          raw: null,
          connectTimeoutMs: 60_000,
        },
      };
      const trials: Row[] = [];
      for (let t = 0; t < repeat; t++) {
        // Interval start_s counts from the report's created_at (whole seconds), the .hlog's BaseTime.
        // Each stage a row enters is logged (debug): a run without a terminal still says where it is.
        let stage: RowProgress['stage'] | undefined;
        const onProgress = (p: RowProgress): void => {
          if (p.stage !== stage) logger.debug(`row ${i + 1}/${steps.length} ${s.op} x${s.threads}${repeat > 1 ? ` trial ${t + 1}/${repeat}` : ''}: ${(stage = p.stage)}`);
          options.onProgress?.(p);
        };
        const outcome = await runRow(rowPlan, { index: i, rows: steps.length, signal: options.signal, logger, onProgress, originMs: Math.floor(started.getTime() / 1000) * 1000 });
        trials.push(outcomeToRow(outcome));
        // A failed or aborted trial ends the row's trials: the row says which.
        if (outcome.kind !== 'measured' || options.signal?.aborted) break;
      }
      const row = combineTrials(trials, noisyCv);
      for (const t of row.transports) transports.add(t);
      rows.push(row);
      options.onRow?.(row);
      logger.info(`row ${i + 1}/${steps.length} ${s.op} x${s.threads}: ${row.ok ? `${row.pages_per_s} pages/s, ${row.throughput_gbps} GB/s` : row.note}`);
      if (row.wrong_pages) logger.error(`row ${i + 1}/${steps.length} ${s.op} x${s.threads}: ${row.wrong_pages} WRONG PAGES of ${row.pages_verified} verified: the row failed`);
    }
  } catch (err) {
    notes.push(`the run stopped early: ${(err as Error).message}`);
    logger.error((err as Error).message);
    for (let i = rows.length; i < steps.length; i++) {
      const s = steps[i];
      rows.push(failedRow({ path: `hicache-${s.op}`, op: s.op, protocol: options.protocol, blockSize: pageBytes, batchSize: s.batchSize, threads: s.threads, components, tokensPerPage, phase: s.phase }, `not run: ${(err as Error).message}`));
    }
  } finally {
    await producer?.stop();
  }
  noteAborted(notes, options.signal);
  return makeReport({
    command: options.command ?? `runSweep(${JSON.stringify({ mode: o.mode, op: o.op, protocol: options.protocol })})`,
    host,
    date: started,
    loadavgBefore: loadBefore,
    meta: {
      mode: o.mode,
      protocol: options.protocol,
      transports: [...transports],
      device: devices[0] ?? null,
      devices,
      layout,
      page_size: pageBytes,
      batch_size: o.mode === 'latency' ? 1 : o.batchSize,
      tokens_per_page: tokensPerPage,
      concurrencies: o.mode === 'latency' ? [1] : o.concurrencies,
      working_set: workingSet,
      duration_s: durationS,
      warmup_s: warmupS,
      repeat,
      noisy_cv: noisyCv,
      arrival: options.rate !== undefined || options.rateSweep ? arrival : 'closed',
      rate: options.rate ?? null,
      rate_sweep: options.rateSweep ?? null,
      prefix_pages: steps.some((s) => s.op === 'prefetch') ? prefixPages : null,
      hit_ratio: steps.some((s) => s.op === 'prefetch') ? hitRatio : null,
      readers_per_key: steps.some((s) => s.op === 'prefetch') ? readersPerKey : null,
      host_pool: hostPoolBytes === null ? 'per-worker' : 'shared',
      host_pool_bytes: hostPoolBytes ?? null,
      host_pool_pages: hostPoolPages ?? null,
      slo_p99_us: options.sloP99Us ?? null,
      interval_s: options.intervalS ?? null,
      max_bytes: maxBytes,
      op: o.mode === 'throughput' || o.mode === 'saturation' ? o.op : null,
      verify: options.verify ?? false,
      verify_mode: options.verify ? (options.verifyMode ?? 'sample') : null,
      producer: 'separate process',
      directory: directoryUrl ? directoryUrl.replace(/\/\/[^@/]*@/, '//***@') : 'embedded',
      directory_replica: options.directoryReplica === true && !directoryUrl,
      model: options.model?.name ?? null,
      tp: options.model?.tp ?? null,
    },
    // PEAK is the best row of a sweep: latency and throughput modes have none.
    // Knee and SLO peak likewise only in sweeps.
    results: MODES_WITHOUT_PEAK.includes(o.mode) ? markPeakFor(o.mode, rows) : markKneeAndSlo(markPeakFor(o.mode, rows), options.sloP99Us ?? null),
    notes,
  });
}
