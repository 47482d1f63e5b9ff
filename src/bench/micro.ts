/**
 * runMicro(): the bare data-plane READ (`transport-read`) and the store get path (`store-get`)
 * between two processes, on the same engine (runRow), histograms and report as the HiCache modes.
 *
 * Unlike the original micro: `threads` really runs that many workers (each with its own endpoint
 * or store client); a latency sample is one batch call (`lat_unit: batch_call`), and the per-READ
 * figure is reported separately as what it is, an amortised cost (batch latency / batch size, in
 * `extra.amortised_us_per_read_*`), never as a latency; the producer runs in its own process.
 */
import { silentLogger, type Logger, type LogLevel } from '../log.js';
import { publishedPoolBytes } from '../store/published-pool.js';
import { round } from './report/format.js';
import { collectLocalHost } from './report/host.js';
import { failedRow, makeReport, noteAborted } from './report/metrics.js';
import { loadAverage } from './report/manifest.js';
import { outcomeToRow } from './report/outcome.js';
import { markPeak } from './report/peak.js';
import type { Report, Row } from './report/types.js';
import { checkProtocol, resolveConnection, storeConfig, type Connection, type ConnectionOptions } from './engine/connection.js';
import { freePort } from './engine/net.js';
import { startProducer, type ProducerHandle } from './engine/producer.js';
import { runRow, type RowPlan, type RowProgress, type RunControl } from './engine/row.js';
import { ConfigError } from '../errors.js';

export type MicroPath = 'transport' | 'store' | 'both';
/**
 * Where the transport path's READs go. `spread` (default): each READ of a batch reads its own
 * block of a span of blocks into its own local block, so the span is read from memory, as the
 * store reads distinct pages. `hot`: ucx_perftest's pattern, every READ reads one remote block into
 * one local block, so both stay in cache; only for comparing with ucx_perftest.
 */
export type MicroPattern = 'spread' | 'hot';
/** One measured path: the row's `path` is `transport-read` or `store-get`. */
export type MicroRowPath = 'transport' | 'store';

export const MICRO_DEFAULTS = {
  blockSize: 65536,
  batchSize: 64,
  threads: 1,
  durationS: 5,
  warmupS: 1,
  path: 'transport' as MicroPath,
  pattern: 'spread' as MicroPattern,
  maxBytes: 8 * 2 ** 30,
};

export interface MicroOptions extends ConnectionOptions, RunControl {
  /** Bytes per READ (transport) and per page (store); default 65536. */
  blockSize?: number;
  /** READs (pages) per batch call; default 64. */
  batchSize?: number;
  /** Concurrent workers, each with its own endpoint / store client; default 1. */
  threads?: number;
  durationS?: number;
  warmupS?: number;
  /** Default 'transport', as the original. */
  path?: MicroPath;
  /** Default 'spread'; 'hot' is ucx_perftest's one-buffer pattern (transport path only). */
  pattern?: MicroPattern;
  /** Memory budget guard for the producer's regions plus the workers' buffers (default 8 GiB). */
  maxBytes?: number;
}

export class MicroConfigError extends ConfigError {
  override name = 'MicroConfigError';
}

/** The resolved parameters of one block size's micro rows. */
export interface MicroPoint {
  connection: Connection;
  blockSize: number;
  batchSize: number;
  threads: number;
  durationS: number;
  warmupS: number;
  paths: MicroRowPath[];
  pattern: MicroPattern;
  /** Blocks the transport path cycles over (1 when hot), and pages the store path's working set holds. */
  blocks: number;
}

/**
 * Both paths cycle over the same number of blocks, max(8 × batch, 512) (the original's store
 * working set; its raw buffer was max(4 × batch, 256)), so they see the same cache footprint and
 * their ratio measures the store's own cost, not a cache effect.
 */
export function microBlocks(batchSize: number): number {
  return Math.max(8 * batchSize, 512);
}

/** Bytes the run needs: the producer's raw region and published pages, plus every worker's buffer. */
export function microBytes(p: Pick<MicroPoint, 'blockSize' | 'batchSize' | 'threads' | 'paths' | 'blocks' | 'pattern'>): number {
  const raw = p.paths.includes('transport') ? p.blocks * p.blockSize : 0;
  const pages = p.paths.includes('store') ? publishedPoolBytes(p.blocks + 64, p.blockSize) + Math.min(256, p.blocks) * p.blockSize : 0;
  const perWorker = p.pattern === 'hot' ? 1 : p.batchSize;
  return raw + pages + p.threads * perWorker * p.blockSize;
}

export function resolveMicro(options: MicroOptions & { blockSize?: number }): MicroPoint {
  const blockSize = options.blockSize ?? MICRO_DEFAULTS.blockSize;
  const batchSize = options.batchSize ?? MICRO_DEFAULTS.batchSize;
  const threads = options.threads ?? MICRO_DEFAULTS.threads;
  const durationS = options.durationS ?? MICRO_DEFAULTS.durationS;
  const warmupS = options.warmupS ?? MICRO_DEFAULTS.warmupS;
  const path = options.path ?? MICRO_DEFAULTS.path;
  const pattern = options.pattern ?? MICRO_DEFAULTS.pattern;
  if (pattern !== 'spread' && pattern !== 'hot') throw new MicroConfigError(`pattern must be spread or hot, got ${String(pattern)}`);
  if (pattern === 'hot' && path !== 'transport') {
    throw new MicroConfigError(`pattern hot (ucx_perftest's one-buffer pattern) measures the transport path only, not {path} ${path}: use {path} transport`);
  }
  for (const [name, v] of [['blockSize', blockSize], ['batchSize', batchSize], ['threads', threads]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new MicroConfigError(`${name} must be a positive integer, got ${v}`);
  }
  if (blockSize % 4 !== 0) throw new MicroConfigError(`blockSize ${blockSize} is not a multiple of 4 bytes`);
  if (!(durationS > 0) || !(warmupS >= 0)) throw new MicroConfigError('durationS must be > 0 and warmupS >= 0');
  const point: MicroPoint = {
    connection: resolveConnection(options),
    blockSize,
    batchSize,
    threads,
    durationS,
    warmupS,
    paths: path === 'both' ? ['transport', 'store'] : [path],
    pattern,
    blocks: pattern === 'hot' ? 1 : microBlocks(batchSize),
  };
  const maxBytes = options.maxBytes ?? MICRO_DEFAULTS.maxBytes;
  const need = microBytes(point);
  if (need > maxBytes) {
    throw new MicroConfigError(
      `block ${blockSize} B x ${point.blocks} blocks plus ${threads} x ${batchSize} blocks of worker buffers need about ${(need / 2 ** 30).toFixed(2)} GiB, over {maxBytes} ${(maxBytes / 2 ** 30).toFixed(2)} GiB: lower {blockSize}, {batchSize} or {threads}, or raise {maxBytes}`,
    );
  }
  return point;
}

export function rowPathName(p: MicroRowPath): string {
  return p === 'transport' ? 'transport-read' : 'store-get';
}

/**
 * Adds the amortised per-READ cost to an ok row: batch-call latency / batch size. It is a cost
 * (what one READ adds to a batch call), not the latency of a READ. For store-get one "READ" is
 * one page: its data READ plus its 16-byte header READ.
 */
export function withAmortised(row: Row): Row {
  if (!row.ok || row.lat_us_p50 === null) return row;
  const per = (x: number | null) => (x === null ? null : round(x / row.batch_size, 3));
  const p50 = per(row.lat_us_p50);
  row.extra = { ...row.extra, amortised_us_per_read_p50: p50, amortised_us_per_read_mean: per(row.lat_us_mean), amortised_us_per_read_p99: per(row.lat_us_p99) };
  const unit = row.path === 'store-get' ? 'page' : 'READ';
  row.note = `${row.note}; p50/${row.batch_size} = ${p50} µs per ${unit} (amortised, not a latency)`;
  return row;
}

export interface MicroContext {
  signal?: AbortSignal;
  logger: Logger;
  logLevel: LogLevel;
  onProgress?: (p: RowProgress) => void;
  onRow?: (row: Row) => void;
  /** This point's first row index and the run's row count (progress lines). */
  index: number;
  rows: number;
}

export interface MicroResult {
  rows: Row[];
  transports: string[];
  notes: string[];
}

/**
 * Measures one block size: starts the producer process (a raw region for the transport path, a
 * published working set for the store path), runs one row per path, stops the producer.
 */
export async function measureMicro(p: MicroPoint, ctx: MicroContext): Promise<MicroResult> {
  const { connection: c } = p;
  const rows: Row[] = [];
  const notes: string[] = [];
  const transports = new Set<string>();
  const identity = (path: MicroRowPath) => ({
    path: rowPathName(path),
    op: path === 'transport' ? ('read' as const) : ('get' as const),
    protocol: c.protocol,
    blockSize: p.blockSize,
    batchSize: p.batchSize,
    threads: p.threads,
    latUnit: 'batch_call' as const,
  });
  const discoveryAddr = `${c.localHost}:${await freePort(c.localHost)}`;
  const storeCfg = storeConfig(c, { discoveryAddr });
  const prefix = 'pcbench/micro';
  let producer: ProducerHandle | null = null;
  try {
    ctx.logger.info(`micro: starting the producer process (block ${p.blockSize} B, ${p.blocks} blocks, paths ${p.paths.join('+')}) on ${c.protocol}`);
    producer = await startProducer(
      {
        ...storeCfg,
        layout: 'mla',
        pageBytes: p.blockSize,
        tokensPerPage: 64,
        sets: p.paths.includes('store') ? [{ prefix, count: p.blocks }] : [],
        rawBytes: p.paths.includes('transport') ? p.blocks * p.blockSize : 0,
        fill: false,
        nodeId: 'pcbench-micro-producer',
        logLevel: ctx.logLevel,
      },
      ctx.logger,
    );
    for (let i = 0; i < p.paths.length; i++) {
      const path = p.paths[i];
      if (ctx.signal?.aborted) {
        notes.push(`aborted by the user before ${rowPathName(path)} (block ${p.blockSize})`);
        break;
      }
      const plan: RowPlan = {
        op: path === 'transport' ? 'read' : 'get',
        path: rowPathName(path),
        rowOp: path === 'transport' ? 'read' : 'get',
        latUnit: 'batch_call',
        threads: p.threads,
        batchSize: p.batchSize,
        phase: 'single',
        components: 1,
        tokensPerPage: 0,
        warmupS: p.warmupS,
        durationS: p.durationS,
        note:
          path === 'transport'
            ? p.pattern === 'hot'
              ? `one-sided READ, ${p.batchSize} READs/call of one block into one local block (hot, ucx_perftest's pattern)`
              : `one-sided READ, ${p.batchSize} blocks/call over ${p.blocks} in the producer process`
            : `batch_get_v1 (location cache, READ, slot-header check), ws=${p.blocks}`,
        task: {
          store: storeCfg,
          layout: 'mla',
          pageBytes: p.blockSize,
          tokensPerPage: 64,
          keyPrefix: prefix,
          workingSet: path === 'store' ? p.blocks : 0,
          publishBytes: 0,
          raw: path === 'transport' ? producer.raw : null,
          readPattern: p.pattern,
          verify: false,
          connectTimeoutMs: 60_000,
        },
      };
      const row = withAmortised(outcomeToRow(await runRow(plan, { index: ctx.index + i, rows: ctx.rows, signal: ctx.signal, logger: ctx.logger, onProgress: ctx.onProgress })));
      for (const t of row.transports) transports.add(t);
      rows.push(row);
      ctx.onRow?.(row);
      ctx.logger.info(`micro ${plan.path} ${p.blockSize} B x${p.threads}: ${row.ok ? `${row.throughput_gbps} GB/s` : row.note}`);
    }
  } catch (err) {
    const why = (err as Error).message;
    notes.push(`block ${p.blockSize}: the run stopped early: ${why}`);
    ctx.logger.error(why);
    for (const path of p.paths.slice(rows.length)) rows.push(failedRow(identity(path), `not run: ${why}`));
  } finally {
    await producer?.stop();
  }
  // The store's own cost, in the same run: store GB/s over transport GB/s.
  // An aborted row's partial window never feeds a ratio.
  const tr = rows.find((r) => r.path === 'transport-read' && r.ok && !r.aborted);
  const st = rows.find((r) => r.path === 'store-get' && r.ok && !r.aborted);
  if (tr && st && tr.throughput_gbps > 0) {
    st.extra = { ...st.extra, ratio_vs_transport: round(st.throughput_gbps / tr.throughput_gbps, 3) };
    if (tr.noisy || st.noisy) st.note = `${st.note}; ratio_vs_transport from a NOISY input`;
  }
  return { rows, transports: [...transports], notes };
}

export async function runMicro(options: MicroOptions): Promise<Report> {
  const logger = options.logger ?? silentLogger;
  const point = resolveMicro(options);
  await checkProtocol(point.connection);
  const started = new Date();
  const loadBefore = loadAverage();
  const host = collectLocalHost();
  const result = await measureMicro(point, {
    signal: options.signal,
    logger,
    logLevel: options.logLevel ?? 'warning',
    onProgress: options.onProgress,
    onRow: options.onRow,
    index: 0,
    rows: point.paths.length,
  });
  const notes = [...result.notes, ...microNotes(point)];
  noteAborted(notes, options.signal);
  return makeReport({
    command: options.command ?? `runMicro(${JSON.stringify({ protocol: options.protocol, path: options.path ?? MICRO_DEFAULTS.path })})`,
    host,
    date: started,
    loadavgBefore: loadBefore,
    meta: {
      mode: 'micro',
      protocol: point.connection.protocol,
      transports: result.transports,
      device: point.connection.devices[0] ?? null,
      devices: point.connection.devices,
      layout: 'mla',
      page_size: point.blockSize,
      batch_size: point.batchSize,
      concurrencies: [point.threads],
      working_set: point.blocks,
      duration_s: point.durationS,
      warmup_s: point.warmupS,
      threads: point.threads,
      path: options.path ?? MICRO_DEFAULTS.path,
      pattern: point.pattern,
      lat_unit: 'batch_call',
      producer: 'separate process',
    },
    results: markPeak(result.rows),
    notes,
  });
}

/** What a reader of a micro table must know. */
export function microNotes(p: Pick<MicroPoint, 'threads' | 'batchSize' | 'blocks' | 'pattern'>): string[] {
  return [
    `latency columns time one batch call of ${p.batchSize} blocks (lat_unit batch_call); extra.amortised_us_per_read_* (and "p50/${p.batchSize}" in the note) is that latency / ${p.batchSize}: an amortised cost per READ (store-get: per page, its data READ plus its header READ), not a latency`,
    p.pattern === 'hot'
      ? `${p.threads} worker thread(s), each with its own endpoint; pattern hot: every READ reads the same remote block into the same local block (ucx_perftest's pattern), so both stay in cache: a figure to compare with ucx_perftest, not with a KV cache, which reads distinct pages from memory`
      : `${p.threads} worker thread(s), each with its own endpoint (transport-read) or store client (store-get); both paths cycle over ${p.blocks} blocks in the producer process`,
  ];
}
