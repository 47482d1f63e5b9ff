/**
 * runDrive(): the consumer side of a two-host run, `peercache-bench drive`. It joins the serve
 * node's directory, checks that both sides agree (layout, page size, working set, protocol,
 * rails), and sweeps get or exists over the concurrencies against serve's working set, on the same
 * row engine as the local modes. With `processes` > 1 every row runs in that many driver
 * processes that share one measurement window and whose histograms are merged.
 *
 * serve may go away mid-run: each row is checked against serve's liveness before and after it; a
 * row during which serve left is ok:false with the reason, the later rows are not run, and the
 * report (with what was measured) is still returned.
 */
import { hostname } from 'node:os';
import { silentLogger } from '../../log.js';
import { resolveConnection, storeConfig } from '../engine/connection.js';
import { runRow, type RunControl } from '../engine/row.js';
import { collectLocalHost } from '../report/host.js';
import { failedRow, makeReport, noteAborted } from '../report/metrics.js';
import { loadAverage } from '../report/manifest.js';
import { outcomeToRow } from '../report/outcome.js';
import { markPeak } from '../report/peak.js';
import type { Report, Row } from '../report/types.js';
import { DriverNode } from './driver-node.js';
import { openTransport } from '../../transport/index.js';
import { chooseLocalHost } from './net.js';
import { ATTR, commonDefaults, TwoHostConfigError, type Agreement, type TwoHostCommonOptions } from './params.js';
import { rowPlan, type DriveOp, type DriveRowsConfig } from './plan.js';
import { ProcessGroup } from './procs.js';

export interface DriveOptions extends TwoHostCommonOptions, RunControl {
  op?: DriveOp;
  /** Pages per batch call (default 32). */
  batchSize?: number;
  /** Concurrency per process (default 1,2,4,8,16,32,64); a row's threads = this × processes. */
  concurrencies?: number[];
  durationS?: number;
  warmupS?: number;
  /** Driver processes sharing each row's window (default 1: the workers run in this process). */
  processes?: number;
  verify?: boolean;
}

export const DEFAULT_DRIVE_CONCURRENCIES = [1, 2, 4, 8, 16, 32, 64];

/** Before anything connects: the options, with defaults, or a TwoHostConfigError. */
function validate(options: DriveOptions) {
  const d = commonDefaults(options);
  const op = options.op ?? 'get';
  if (op !== 'get' && op !== 'exists') throw new TwoHostConfigError(`op must be get or exists, got ${String(op)}`);
  const concurrencies = options.concurrencies ?? DEFAULT_DRIVE_CONCURRENCIES;
  if (!concurrencies.length || concurrencies.some((c) => !Number.isSafeInteger(c) || c < 1)) {
    throw new TwoHostConfigError('concurrencies must be a non-empty list of positive integers');
  }
  const batchSize = options.batchSize ?? 32;
  const processes = options.processes ?? 1;
  const durationS = options.durationS ?? 10;
  const warmupS = options.warmupS ?? 2;
  if (!Number.isSafeInteger(batchSize) || batchSize < 1) throw new TwoHostConfigError('batchSize must be a positive integer');
  if (!Number.isSafeInteger(processes) || processes < 1 || processes > 256) throw new TwoHostConfigError('processes must be an integer in 1..256');
  if (!(durationS > 0) || !(warmupS >= 0)) throw new TwoHostConfigError('durationS must be > 0 and warmupS >= 0');
  return { ...d, op, concurrencies, batchSize, processes, durationS, warmupS };
}

export async function runDrive(options: DriveOptions): Promise<Report> {
  const logger = options.logger ?? silentLogger;
  const o = validate(options);
  const local = await chooseLocalHost(options.discoveryAddr, options.localHost, 'drive');
  // Fails at once with the transport's own explanation (rdma without a NIC, no UCX), as serve does,
  // instead of after waiting --connect-timeout for a serve node.
  const probe = await openTransport({ protocol: options.protocol, devices: o.devices, ibPort: options.ibPort, gidIndex: options.gidIndex, host: local.host });
  await probe.close();
  const agreement: Agreement = { layout: o.layout, pageBytes: o.pageBytes, workingSet: o.workingSet, protocol: options.protocol, devices: o.devices };
  const nodeId = options.nodeId || `pcbench-drive-${hostname()}-${process.pid}`;
  const nodeCfg = {
    store: storeConfig(resolveConnection(options, local.host), { discoveryAddr: options.discoveryAddr, authToken: options.authToken }),
    agreement,
    tokensPerPage: o.tokensPerPage,
    nodeId,
    connectTimeoutMs: o.connectTimeoutMs,
  };
  const started = new Date();
  const loadBefore = loadAverage();
  logger.info(`joining ${options.discoveryAddr} as '${nodeId}' (${local.host}, ${local.how}) over ${options.protocol}`);
  const node = await DriverNode.open(nodeCfg, logger, o.processes > 1 ? { [ATTR.coordinator]: o.processes } : {});
  const serve = node.serve;
  logger.info(`serve node '${serve.nodeId}' at ${serve.host} agrees (${o.layout}, ${o.pageBytes} B, ws=${o.workingSet}); transports ${String(serve.attributes[ATTR.transports] ?? serve.protocol)}`);
  const procTag = o.processes > 1 ? ` x${o.processes}proc` : '';
  const rowsCfg: DriveRowsConfig = {
    node: nodeCfg,
    op: o.op,
    batchSize: o.batchSize,
    concurrencies: o.concurrencies,
    warmupS: o.warmupS,
    durationS: o.durationS,
    verify: options.verify ?? false,
    keyPrefix: node.keyPrefix,
    readyTimeoutMs: o.connectTimeoutMs,
    note: `dist batch_${o.op} ${o.layout} ws=${o.workingSet} remote=${options.discoveryAddr}`,
    logLevel: options.logLevel ?? 'warning',
  };
  const rows: Row[] = [];
  const notes: string[] = [];
  const transports = new Set<string>();
  const notRun = (from: number, why: string) => {
    for (let i = from; i < o.concurrencies.length; i++) {
      const p = rowPlan(rowsCfg, i);
      rows.push(
        failedRow(
          { path: p.path, op: p.rowOp, protocol: options.protocol, blockSize: o.pageBytes, batchSize: o.batchSize, threads: p.threads * o.processes, components: p.components, tokensPerPage: o.tokensPerPage, phase: p.phase },
          `${rowsCfg.note}${procTag}; not run: ${why}`,
        ),
      );
    }
  };
  let group: ProcessGroup | null = null;
  try {
    if (o.processes > 1) {
      logger.info(`starting ${o.processes} driver processes`);
      group = await ProcessGroup.start(o.processes, rowsCfg, logger);
    }
    for (let i = 0; i < o.concurrencies.length; i++) {
      if (options.signal?.aborted) {
        notes.push(`aborted by the user before row ${i + 1} of ${o.concurrencies.length}`);
        break;
      }
      const before = await node.serveGone();
      if (before) {
        notes.push(`serve went away before row ${i + 1}: ${before}; the remaining rows were not run`);
        notRun(i, before);
        break;
      }
      let row = group
        ? await group.runRow({ index: i, signal: options.signal, onProgress: options.onProgress })
        : outcomeToRow(await runRow(rowPlan(rowsCfg, i), { index: i, rows: o.concurrencies.length, signal: options.signal, logger, onProgress: options.onProgress, readyTimeoutMs: o.connectTimeoutMs }));
      const after = await node.serveGone();
      const saw = row.op === 'get' && row.pages_requested > 0 ? `, the workers got ${Math.round((row.pages / row.pages_requested) * 1000) / 10}% hits` : '';
      const errs = row.errors ? ` and ${row.errors} failed calls` : '';
      if (after) {
        row = brokenWindow(row, `serve went away during this row (${after}${saw}${errs})`);
        notes.push(`serve went away during row ${i + 1} (${after}): that row is not valid and the remaining rows were not run`);
      } else if (row.op === 'get' && row.hit_rate !== null && row.hit_rate < 1) {
        // serve publishes a static working set: a miss means a READ or lookup failed (a partition, a
        // slow link past the deadline), and the window's figures would mix reads with failures.
        row = brokenWindow(row, `${row.pages_requested - row.pages} of ${row.pages_requested} pages missed on a static working set (reads or lookups failed during the window: a partition, or a link too slow for the deadline${errs})`);
        notes.push(`row ${i + 1} missed pages of the static working set: not valid`);
      }
      for (const t of row.transports) transports.add(t);
      rows.push(row);
      options.onRow?.(row);
      logger.info(`row ${i + 1}/${o.concurrencies.length} ${o.op} x${row.threads}: ${row.ok ? `${row.pages_per_s} pages/s, ${row.throughput_gbps} GB/s` : row.note}`);
      if (after) {
        notRun(i + 1, after);
        break;
      }
    }
  } catch (err) {
    notes.push(`the run stopped early: ${(err as Error).message}`);
    logger.error((err as Error).message);
    notRun(rows.length, (err as Error).message);
  } finally {
    await group?.close();
    await node.close().catch(() => {});
  }
  noteAborted(notes, options.signal);
  return makeReport({
    command: options.command ?? `runDrive(${JSON.stringify({ discoveryAddr: options.discoveryAddr, op: o.op, protocol: options.protocol })})`,
    host: collectLocalHost(),
    date: started,
    loadavgBefore: loadBefore,
    meta: {
      mode: 'dist',
      role: 'drive',
      op: o.op,
      protocol: options.protocol,
      transports: [...transports],
      device: o.devices[0] ?? null,
      devices: o.devices,
      layout: o.layout,
      page_size: o.pageBytes,
      batch_size: o.batchSize,
      tokens_per_page: o.tokensPerPage,
      concurrencies: o.concurrencies,
      processes: o.processes,
      working_set: o.workingSet,
      duration_s: o.durationS,
      warmup_s: o.warmupS,
      verify: options.verify ?? false,
      remote: options.discoveryAddr,
      serve_node: serve.nodeId,
      serve_host: serve.host,
      serve_transports: String(serve.attributes[ATTR.transports] ?? ''),
      serve_readers: Number(serve.attributes[ATTR.readers] ?? 0) || null,
      serve_version: String(serve.attributes[ATTR.version] ?? '') || null,
      node_id: nodeId,
      local_host: local.host,
      local_host_from: local.how,
      location_cache: true,
      connect_timeout_s: o.connectTimeoutMs / 1000,
    },
    results: markPeak(rows),
    notes,
  });
}

/**
 * A row whose window was broken (serve went away, reads failed): it keeps what it counted (calls,
 * failed calls, the window) and says what happened, but publishes no figure (rates and latencies
 * of a window that mixed reads with failures mean nothing).
 */
function brokenWindow(row: Row, why: string): Row {
  const failed = failedRow(
    { path: row.path, op: row.op, protocol: row.protocol, blockSize: row.block_size, batchSize: row.batch_size, threads: row.threads, phase: row.phase, latUnit: row.lat_unit, smoke: row.smoke, transports: row.transports, errors: row.errors, calls: row.calls, elapsedNs: Math.round(row.duration_s * 1e9), aborted: row.aborted },
    `failed: ${why}; figures withheld; ${row.note}`,
  );
  return { ...failed, pages_requested: row.pages_requested };
}
