/**
 * runCompare(): our micro (transport-read, and store-get unless skipped) and Mooncake's
 * transfer_engine_bench (unless skipped) at matched block sizes, batch, threads, duration and
 * warmup, in one report: rows side by side per block size, each of our rows carrying
 * `extra.ratio_vs_mooncake` (our GB/s / Mooncake's GB/s at that block size; absent when Mooncake
 * did not run, or ran over another transport than ours — shm against Mooncake's TCP is no
 * comparison) and a per-block summary line in the notes. Mooncake threads default to ours (the
 * original compared 1 thread against 4).
 */
import { silentLogger } from '../log.js';
import { round, humanBytes } from './report/format.js';
import { collectLocalHost } from './report/host.js';
import { makeReport, noteAborted } from './report/metrics.js';
import { loadAverage } from './report/manifest.js';
import { markPeak } from './report/peak.js';
import type { Report, Row } from './report/types.js';
import { checkProtocol, type ConnectionOptions } from './engine/connection.js';
import { measureMicro, microNotes, resolveMicro, type MicroPoint } from './micro.js';
import { describeBinProblem, findMooncakeBin, MOONCAKE_HOWTO, MOONCAKE_MISSING, mooncakeNotes, mooncakeSeconds, runMooncakeRow, type MooncakeOptions } from './mooncake.js';
import type { RunControl } from './engine/row.js';
import { InvalidArgumentError } from '../errors.js';

/** The block sizes the original PeerCache compare used (4 KiB, 64 KiB, 1 MiB). */
export const COMPARE_DEFAULT_BLOCK_SIZES = [4096, 65536, 1048576];

export interface CompareStage {
  /** 0-based row index and the run's row count. */
  index: number;
  rows: number;
  system: 'peercache' | 'mooncake';
  path: string;
  blockSize: number;
}

export interface CompareOptions extends ConnectionOptions, RunControl {
  blockSizes?: number[];
  batchSize?: number;
  /** Our workers (default 1). */
  threads?: number;
  /** Mooncake initiator threads; default: `threads`. */
  mooncakeThreads?: number;
  durationS?: number;
  warmupS?: number;
  skipStore?: boolean;
  skipMooncake?: boolean;
  /** How Mooncake is found and run. */
  mooncake?: Pick<MooncakeOptions, 'bin' | 'metadataUrl' | 'mooncakeProtocol' | 'timeoutSlackS' | 'stopGraceMs' | 'targetReadyS' | 'env'>;
  maxBytes?: number;
  onStage?: (s: CompareStage) => void;
  onStatus?: (line: string) => void;
  /** Something the user must know before the run starts (e.g. Mooncake is not installed). */
  onNotice?: (line: string) => void;
}

/** True for a Mooncake row whose binary was not found (not a failure of anything that ran). */
export function isMooncakeMissing(row: Row): boolean {
  return row.system === 'mooncake' && !row.ok && row.note.startsWith(MOONCAKE_MISSING);
}

/**
 * The transport a row's figure was carried by, as far as a ratio is concerned: our rows their
 * protocol (shm, tcp, rdma); a Mooncake row the one its log says it used (`mooncake/<t>`).
 */
export function transportOf(row: Row): string | null {
  if (row.system !== 'mooncake') return row.protocol;
  const t = [...new Set(row.transports.map((x) => x.replace(/^mooncake\//, '')))];
  return t.length === 1 ? t[0] : null;
}

/** Why two transports are not compared, or null when they are the same. */
export function whyNoRatio(ours: string | null, mooncake: string | null): string | null {
  if (ours !== null && ours === mooncake) return null;
  if (ours === 'shm' && mooncake === 'tcp') return 'Mooncake has no shared-memory DRAM transport: a ratio would compare shared memory with TCP loopback, not the two implementations';
  if (mooncake === null) return "Mooncake's transport is not known from its log";
  return 'a ratio across transports compares the transports, not the two implementations';
}

/**
 * Our GB/s over Mooncake's at the same block size, on our ok rows over the same transport as
 * Mooncake's (otherwise the row says which two transports it would compare and why no ratio is
 * given); returns one summary line per size.
 */
export function addRatios(rows: Row[], blockSizes: readonly number[]): string[] {
  const lines: string[] = [];
  for (const size of blockSizes) {
    const at = rows.filter((r) => r.block_size === size);
    // An aborted row's partial window never feeds a ratio.
    const mc = at.find((r) => r.system === 'mooncake' && r.ok && r.aborted !== true && r.throughput_gbps > 0);
    const ours = at.filter((r) => r.system === 'peercache' && r.ok && r.aborted !== true);
    const parts = ours.map((r) => `${r.path} ${r.throughput_gbps} GB/s`);
    if (mc) {
      const mcT = transportOf(mc);
      parts.push(`mooncake ${mc.throughput_gbps} GB/s over ${mcT ?? 'an unknown transport'}`);
      const ratios: string[] = [];
      for (const r of ours) {
        const why = whyNoRatio(transportOf(r), mcT);
        if (why) {
          const text = `no ratio vs mooncake: peercache ran ${transportOf(r)}, Mooncake ran ${mcT ?? 'an unknown transport'}; ${why}`;
          r.note = r.note ? `${r.note}; ${text}` : text;
          ratios.push(`${r.path}/mooncake: none (${transportOf(r)} vs ${mcT ?? '?'})`);
          continue;
        }
        const ratio = round(r.throughput_gbps / mc.throughput_gbps, 3);
        r.extra = { ...r.extra, ratio_vs_mooncake: ratio };
        // Medians when repeated; a ratio of a noisy input says so.
        const text = `${ratio}x mooncake (both ${mcT})${r.noisy || mc.noisy ? ' (NOISY input)' : ''}`;
        r.note = r.note ? `${r.note}; ${text}` : text;
        ratios.push(`${r.path}/mooncake = ${ratio}`);
      }
      parts.push(ratios.join(', '));
    } else {
      parts.push('mooncake: no figure');
    }
    const st = ours.find((r) => r.path === 'store-get');
    if (st?.extra?.ratio_vs_transport !== undefined) parts.push(`store-get/transport-read = ${st.extra.ratio_vs_transport}`);
    lines.push(`${humanBytes(size)}: ${parts.filter(Boolean).join('; ')}`);
  }
  return lines;
}

export async function runCompare(options: CompareOptions): Promise<Report> {
  const logger = options.logger ?? silentLogger;
  const blockSizes = options.blockSizes ?? COMPARE_DEFAULT_BLOCK_SIZES;
  if (!blockSizes.length) throw new InvalidArgumentError('compare: blockSizes is empty');
  const points: MicroPoint[] = blockSizes.map((blockSize) => resolveMicro({ ...options, blockSize, path: options.skipStore ? 'transport' : 'both' }));
  const p0 = points[0];
  const mooncakeThreads = options.mooncakeThreads ?? p0.threads;
  await checkProtocol(p0.connection);
  // Whether Mooncake can run at all is known before anything is measured, and said up front.
  const mcFound = options.skipMooncake ? null : findMooncakeBin(options.mooncake?.bin, { ...process.env, ...options.mooncake?.env });
  const mooncakeAbsent = mcFound !== null && mcFound.path === null ? describeBinProblem(mcFound) : null;
  if (mooncakeAbsent) options.onNotice?.(`Mooncake will not run: ${mooncakeAbsent}; its rows say so and carry no figure (${MOONCAKE_HOWTO}, or pass --skip-mooncake)`);
  const started = new Date();
  const loadBefore = loadAverage();
  const host = collectLocalHost();
  const perSize = p0.paths.length + (options.skipMooncake ? 0 : 1);
  const total = perSize * points.length;
  const rows: Row[] = [];
  const notes: string[] = [];
  const transports = new Set<string>();
  let mooncakeBin: string | null = null;
  let mooncakeProtocol: string | null = null;
  let mooncakeDurationS: number | null = null;
  for (const [i, point] of points.entries()) {
    if (options.signal?.aborted) {
      notes.push(`aborted by the user before block ${point.blockSize}`);
      break;
    }
    const base = i * perSize;
    const micro = await measureMicro(point, {
      signal: options.signal,
      logger,
      logLevel: options.logLevel ?? 'warning',
      onProgress: (p) => {
        if (p.stage === 'starting') options.onStage?.({ index: p.row, rows: total, system: 'peercache', path: p.op === 'read' ? 'transport-read' : 'store-get', blockSize: point.blockSize });
        options.onProgress?.(p);
      },
      onRow: options.onRow,
      index: base,
      rows: total,
    });
    rows.push(...micro.rows);
    notes.push(...micro.notes);
    for (const t of micro.transports) transports.add(t);
    if (options.skipMooncake || options.signal?.aborted) continue;
    options.onStage?.({ index: base + point.paths.length, rows: total, system: 'mooncake', path: 'transfer-engine', blockSize: point.blockSize });
    const mc = await runMooncakeRow({
      ...options.mooncake,
      protocol: point.connection.protocol,
      deviceName: point.connection.devices.join(',') || undefined,
      localHost: point.connection.localHost,
      blockSize: point.blockSize,
      batchSize: point.batchSize,
      threads: mooncakeThreads,
      durationS: point.durationS,
      warmupS: point.warmupS,
      signal: options.signal,
      logger,
      onStatus: options.onStatus,
    });
    mooncakeBin ??= mc.bin;
    mooncakeProtocol = mc.mooncakeProtocol;
    mooncakeDurationS = mc.mooncakeDurationS;
    for (const t of mc.row.transports) transports.add(t);
    rows.push(mc.row);
    options.onRow?.(mc.row);
  }
  const summary = addRatios(rows, blockSizes);
  notes.push(
    'side by side per block size; ratio = our GB/s / Mooncake GB/s at the same block size, only where both ran over the same transport (extra.ratio_vs_mooncake, "Nx mooncake" in the note); store-get rows also carry extra.ratio_vs_transport',
    ...summary,
    ...microNotes(p0),
  );
  const mooncakeRan = rows.some((r) => r.system === 'mooncake' && !isMooncakeMissing(r) && !/^(aborted by the user before|transfer_engine_bench cannot run)/.test(r.note));
  if (mooncakeAbsent) notes.push(`Mooncake did not run: ${mooncakeAbsent}`);
  if (!options.skipMooncake && mooncakeRan) {
    const mc = mooncakeSeconds(p0.durationS, p0.warmupS);
    notes.push(...mooncakeNotes(mooncakeThreads, mc.warmupS, mc.durationS, p0.durationS));
    if (mooncakeThreads !== p0.threads) notes.push(`NOT matched: Mooncake ran ${mooncakeThreads} threads against our ${p0.threads}`);
  }
  noteAborted(notes, options.signal);
  return makeReport({
    command: options.command ?? `runCompare(${JSON.stringify({ protocol: p0.connection.protocol, blockSizes })})`,
    host,
    date: started,
    loadavgBefore: loadBefore,
    meta: {
      mode: 'compare',
      protocol: p0.connection.protocol,
      transports: [...transports],
      device: p0.connection.devices[0] ?? null,
      devices: p0.connection.devices,
      layout: 'mla',
      batch_size: p0.batchSize,
      concurrencies: [p0.threads],
      duration_s: p0.durationS,
      warmup_s: p0.warmupS,
      block_sizes: blockSizes,
      threads: p0.threads,
      mooncake_threads: options.skipMooncake ? null : mooncakeThreads,
      skip_store: options.skipStore ?? false,
      skip_mooncake: options.skipMooncake ?? false,
      mooncake_bin: mooncakeBin,
      mooncake_protocol: mooncakeProtocol,
      mooncake_duration_s: mooncakeDurationS,
      metadata_server: options.skipMooncake ? null : options.mooncake?.metadataUrl || 'P2PHANDSHAKE',
    },
    results: markPeak(rows),
    notes,
  });
}
