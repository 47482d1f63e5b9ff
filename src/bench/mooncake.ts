/**
 * The Mooncake baseline: wraps kvcache-ai/Mooncake's own `transfer_engine_bench` (installed by
 * the user: `--mooncake-bin` or PATH) and reports its result as a row of our schema.
 *
 * What the wrapper does (and checks):
 * - threads and warmup default to ours (the original ran Mooncake with 4 threads against our 1,
 *   and no warmup; Mooncake's own default is 12 threads); the warmup is a discarded initiator run
 *   against the same target — a separate process, so it warms the target side only;
 * - bytes are recomputed from `batch count × batch × block` over the duration Mooncake printed
 *   (its 2-decimal GB/s is off by up to ±25% at 4 KiB);
 * - no metadata server: the target runs in P2PHANDSHAKE mode and its segment id is read from its
 *   log, IPv6 hosts printed bare (`::1:PORT`) or bracketed, passed back bracketed with
 *   MC_USE_IPV6=1 (or `--metadata-url` is used as given, with `MC_TCP_BIND_ADDRESS` on the local host);
 * - the transport is the one Mooncake's own log says it installed (`MC_FORCE_TCP is set`,
 *   `Found N HCAs`, `installTransport, type=…`, `TcpTransport: listen on port`, `RDMA device: …`):
 *   recorded in the row's `transports`, and the row fails when it is not the one asked for (the
 *   silent RDMA → TCP fallback of `--auto_discovery`); Mooncake over TCP is smoke, like our tcp;
 * - MC_LOG_DIR is removed from its environment (it would send the log we parse to files);
 * - a binary that is missing, not a file or not executable is told apart;
 * - every child runs behind a supervisor in its own process group (child-process.ts): always
 *   reaped (SIGTERM, then SIGKILL of the whole group, on timeout, Ctrl-C and exit), and killed
 *   with us even when we are SIGKILLed; its pipes are read while it runs.
 */
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { isIPv6 } from 'node:net';
import { delimiter, join, resolve } from 'node:path';
import { silentLogger, type Logger } from '../log.js';
import type { Protocol } from '../transport/types.js';
import { ChildProc, describeExit, type ChildExit } from './child-process.js';
import { round } from './report/format.js';
import { collectLocalHost } from './report/host.js';
import { failedRow, makeReport, makeRow } from './report/metrics.js';
import { loadAverage } from './report/manifest.js';
import { markPeak } from './report/peak.js';
import type { Report, Row } from './report/types.js';
import { freePort } from './engine/net.js';
import { InvalidArgumentError } from '../errors.js';

export const MOONCAKE_BIN_NAME = 'transfer_engine_bench';
/** Every row of a missing binary starts with this (compare tells such rows from real failures). */
export const MOONCAKE_MISSING = `${MOONCAKE_BIN_NAME} not found`;
export const MOONCAKE_HOWTO =
  'install Mooncake (pip install mooncake-transfer-engine, whose wheel ships transfer_engine_bench, or build kvcache-ai/Mooncake with BUILD_EXAMPLES=ON) and pass --mooncake-bin <path> or put it on PATH';

/** transfer_engine_bench's own defaults (HEAD 3b5a5941), for help texts and notes. */
export const MOONCAKE_OWN_DEFAULTS = { threads: 12, batchSize: 128, durationS: 10, bufferSize: 2 ** 30 };

export const MOONCAKE_DEFAULTS = {
  blockSize: 65536,
  batchSize: 64,
  /** Ours (micro's default), not the original's 4: the same concurrency on both sides. */
  threads: 1,
  durationS: 5,
  warmupS: 1,
  /** Seconds an initiator run may take beyond its --duration before it is killed. */
  timeoutSlackS: 60,
  targetReadyS: 30,
  stopGraceMs: 3000,
};

export interface MooncakeOptions {
  /** Our protocol: the row's `protocol`; Mooncake's own is mapped from it (see mooncakeProtocol). */
  protocol: Protocol;
  /** Mooncake's --protocol; default rdma for rdma, tcp otherwise (it has no shared-memory transport for DRAM). */
  mooncakeProtocol?: string;
  /** The binary: a path, or a name looked up on PATH; default transfer_engine_bench on PATH. */
  bin?: string;
  /** A Mooncake metadata service (http://h:p/metadata, etcd://h:p, redis://h:p); default P2PHANDSHAKE. */
  metadataUrl?: string;
  /** RDMA device(s) for --device_name; without one, rdma uses --auto_discovery. */
  deviceName?: string;
  /** The address both sides bind and advertise (MC_TCP_BIND_ADDRESS); default 127.0.0.1. */
  localHost?: string;
  blockSize?: number;
  batchSize?: number;
  threads?: number;
  /** Mooncake takes whole seconds: rounded, at least 1. */
  durationS?: number;
  /** A discarded initiator run of this many seconds (rounded up) first; 0: none. */
  warmupS?: number;
  /** Per NUMA buffer; default max(4 × block × batch × threads, 256 MiB). */
  bufferSize?: number;
  timeoutSlackS?: number;
  targetReadyS?: number;
  stopGraceMs?: number;
  /** Extra environment for both sides. */
  env?: NodeJS.ProcessEnv;
  signal?: AbortSignal;
  logger?: Logger;
  /** One line per stage (target up, warmup, measuring), for a progress display. */
  onStatus?: (line: string) => void;
}

export interface MooncakeReportOptions extends MooncakeOptions {
  command?: string;
}

// ------------------------------------------------------------------ parsing

export interface MooncakeResult {
  /** Seconds, as printed (2 dp): the initiator's wall time including thread start and join. */
  durationS: number;
  batchCount: number;
  /** The printed rate and unit (e.g. 0.58, 'GB'). */
  throughput: number;
  unit: string;
}

const COMPLETED = /Test completed: duration ([\d.]+), batch count (\d+), throughput ([\d.]+) ?([A-Za-z]+)\/s/g;

/** The last `Test completed: …` line in `text`, or null. */
export function parseTestCompleted(text: string): MooncakeResult | null {
  let last: RegExpExecArray | null = null;
  for (const m of text.matchAll(COMPLETED)) last = m as RegExpExecArray;
  if (!last) return null;
  const r = { durationS: Number(last[1]), batchCount: Number(last[2]), throughput: Number(last[3]), unit: last[4] };
  return Number.isFinite(r.durationS) && Number.isSafeInteger(r.batchCount) && Number.isFinite(r.throughput) ? r : null;
}

/** Bytes per second of one unit of Mooncake's --report_unit (GB = 10^9, Gb = 10^9 bits, ...). */
export const REPORT_UNITS: Record<string, number> = { GB: 1e9, GiB: 2 ** 30, Gb: 1e9 / 8, MB: 1e6, MiB: 2 ** 20, Mb: 1e6 / 8, KB: 1e3, KiB: 1024, Kb: 1e3 / 8 };


/**
 * The target's `Transfer Engine RPC using …, listening on <host>:<port>`. Mooncake prints an IPv6
 * host without brackets (`::1:15025`); a bracketed one is accepted too.
 */
const LISTENING = /Transfer Engine RPC using [^,]*, listening on (\S+?):(\d+)(?=[,\s]|$)/;

/** `[::1]` or `::1` → `::1`; anything else as is. */
export function bareHost(host: string): string {
  const m = /^\[(.+)\]$/.exec(host.trim());
  return m && isIPv6(m[1]) ? m[1] : host.trim();
}

/** The segment id an initiator opens: `host:port`, an IPv6 host bracketed (`[::1]:15025`). */
export function segmentId(host: string, port: number | string): string {
  const h = bareHost(host);
  return `${isIPv6(h) ? `[${h}]` : h}:${port}`;
}

/** The target's listening line: the host (brackets removed) and port, or null. */
export function parseListening(line: string): { host: string; port: number } | null {
  const m = LISTENING.exec(line);
  return m ? { host: bareHost(m[1]), port: Number(m[2]) } : null;
}

// ------------------------------------------------------------------ which transport it installed

/** What one process's log says about the transports its engine installed. */
export interface InstalledTransports {
  /** Mooncake transport names, e.g. ['tcp'] or ['rdma']. */
  installed: string[];
  /** HCAs its topology discovery found (`Found N HCAs.`), or null when it did not discover. */
  hcas: number | null;
  /** `MC_FORCE_TCP is set, using TCP transport only`. */
  forcedTcp: boolean;
}

/**
 * Reads Mooncake's own log lines (HEAD 3b5a5941): `MC_FORCE_TCP is set, using TCP transport only`,
 * `TcpTransport: listen on port N` (the only sign of TCP after a silent fallback),
 * `installTransport, type=X`, `RDMA device: mlx5_0, LID: …`, `Topology discovery complete. Found N HCAs.`
 * and `No RDMA devices found`.
 */
export function installedTransports(log: string): InstalledTransports {
  const installed = new Set<string>();
  const forcedTcp = /MC_FORCE_TCP is set, using TCP transport only/.test(log);
  if (forcedTcp || /TcpTransport: listen on port \d+/.test(log)) installed.add('tcp');
  for (const m of log.matchAll(/installTransport, type=(\w+)/g)) installed.add(m[1]);
  if (/RDMA device: \S+, LID/.test(log)) installed.add('rdma');
  const found = [...log.matchAll(/Topology discovery complete\. Found (\d+) HCAs/g)].pop();
  const hcas = found ? Number(found[1]) : /No RDMA devices found/.test(log) ? 0 : null;
  return { installed: [...installed].sort(), hcas, forcedTcp };
}

/** Protocols whose installation Mooncake's log shows (others cannot be confirmed from it). */
const CONFIRMABLE = new Set(['tcp', 'rdma']);

export interface TransportVerdict {
  /** The transport the transfers used, as far as the log tells; null when it does not say. */
  used: string | null;
  /** For the row: `mooncake/<name>` for every transport either side installed. */
  transports: string[];
  /** Why the row must fail (it used another transport than asked), or null. */
  mismatch: string | null;
  /** The asked protocol could not be confirmed from the log (not one Mooncake logs). */
  unconfirmed: boolean;
}

/** Compares what Mooncake was asked for with what its target and initiator logs say they installed. */
export function judgeTransport(asked: string, target: InstalledTransports, initiator: InstalledTransports): TransportVerdict {
  const all = [...new Set([...target.installed, ...initiator.installed])].sort();
  const transports = all.map((t) => `mooncake/${t}`);
  // The initiator submits the transfers; MC_FORCE_TCP makes TCP the only transport it routes over.
  const used = initiator.forcedTcp || target.forcedTcp ? 'tcp' : initiator.installed.length === 1 ? initiator.installed[0] : initiator.installed.includes(asked) && target.installed.includes(asked) ? asked : (initiator.installed[0] ?? null);
  if (used === null) {
    if (!CONFIRMABLE.has(asked)) return { used: null, transports: [`mooncake/${asked}`], mismatch: null, unconfirmed: true };
    return { used: null, transports, mismatch: `Mooncake's log names no installed transport, so --protocol=${asked} cannot be confirmed (is MC_LOG_DIR or a glog flag sending its log elsewhere?)`, unconfirmed: false };
  }
  if (used === asked && (target.installed.length === 0 || target.installed.includes(asked))) return { used, transports, mismatch: null, unconfirmed: false };
  const why: string[] = [];
  if (initiator.forcedTcp || target.forcedTcp) why.push('MC_FORCE_TCP is set in its environment');
  const hcas = initiator.hcas ?? target.hcas;
  if (hcas === 0) why.push(`its auto-discovery found 0 HCAs ("No RDMA devices found") and it installed TCP instead`);
  const sides = `target installed ${target.installed.join('+') || 'nothing'}, initiator ${initiator.installed.join('+') || 'nothing'}`;
  return {
    used,
    transports,
    mismatch:
      used === asked
        ? `Mooncake was asked for --protocol=${asked} but its target did not install it (${sides}); no figure is published under a transport it did not use`
        : `Mooncake was asked for --protocol=${asked} but ran ${used}${why.length ? ` (${why.join('; ')})` : ''}; ${sides}; no figure is published under a transport it did not use`,
    unconfirmed: false,
  };
}

// ------------------------------------------------------------------ finding the binary

export type MooncakeBinProblem = 'missing' | 'not-a-file' | 'not-executable';

export interface MooncakeBin {
  /** The binary to run, or null. */
  path: string | null;
  /** Where it looked (a path, or "<name> on PATH"). */
  looked: string;
  /** Why `path` is null. */
  problem?: MooncakeBinProblem;
}

function checkFile(path: string): MooncakeBinProblem | null {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 'missing';
  }
  if (!st.isFile()) return 'not-a-file';
  try {
    accessSync(path, fsConstants.X_OK);
    return null;
  } catch {
    return 'not-executable';
  }
}

/** The binary to run: an explicit path, or a name on PATH; null with where it looked and what is wrong. */
export function findMooncakeBin(bin: string | undefined, env: NodeJS.ProcessEnv = process.env): MooncakeBin {
  const name = bin?.trim() || MOONCAKE_BIN_NAME;
  if (name.includes('/')) {
    const path = resolve(name);
    const problem = checkFile(path);
    return problem ? { path: null, looked: path, problem } : { path, looked: path };
  }
  let problem: MooncakeBinProblem = 'missing';
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const path = join(dir, name);
    const p = checkFile(path);
    if (p === null) return { path, looked: 'PATH' };
    if (p === 'not-executable') problem = p;
  }
  return { path: null, looked: `${name} on PATH`, problem };
}

/** One line: what is wrong with the binary (for an error or a row note). */
export function describeBinProblem(found: MooncakeBin): string {
  const mode = (() => {
    try {
      return (statSync(found.looked).mode & 0o777).toString(8).padStart(4, '0');
    } catch {
      return null;
    }
  })();
  switch (found.problem) {
    case 'not-executable':
      return `${found.looked} is not executable${mode ? ` (mode ${mode}; chmod +x it)` : ''}`;
    case 'not-a-file':
      return `${found.looked} is not a file (a directory?)`;
    default:
      return `${MOONCAKE_MISSING} (looked at ${found.looked})`;
  }
}

// ------------------------------------------------------------------ one row

export interface MooncakeRowOutcome {
  row: Row;
  /** true when the binary was not found (nothing ran). */
  missing: boolean;
  /** The binary that ran, or null. */
  bin: string | null;
  mooncakeProtocol: string;
  /** The whole seconds Mooncake was asked for. */
  mooncakeDurationS: number;
  /** The transport Mooncake's log says it used, or null. */
  usedTransport: string | null;
}

export function mooncakeProtocolFor(protocol: Protocol): string {
  return protocol === 'rdma' ? 'rdma' : 'tcp';
}

interface Resolved {
  protocol: Protocol;
  mcProtocol: string;
  blockSize: number;
  batchSize: number;
  threads: number;
  durationS: number;
  warmupS: number;
  bufferSize: number;
  localHost: string;
  ipv6: boolean;
  metadata: string;
  slackS: number;
  readyS: number;
  graceMs: number;
}

/** Mooncake takes whole seconds: the measured run is rounded (at least 1), the warmup rounded up (0: none). */
export function mooncakeSeconds(durationS: number, warmupS: number): { durationS: number; warmupS: number } {
  return { durationS: Math.max(1, Math.round(durationS)), warmupS: warmupS > 0 ? Math.max(1, Math.ceil(warmupS)) : 0 };
}

function resolveOptions(o: MooncakeOptions): Resolved {
  const blockSize = o.blockSize ?? MOONCAKE_DEFAULTS.blockSize;
  const batchSize = o.batchSize ?? MOONCAKE_DEFAULTS.batchSize;
  const threads = o.threads ?? MOONCAKE_DEFAULTS.threads;
  for (const [name, v] of [['blockSize', blockSize], ['batchSize', batchSize], ['threads', threads]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError(`mooncake: ${name} must be a positive integer, got ${v}`);
  }
  const durationS = o.durationS ?? MOONCAKE_DEFAULTS.durationS;
  const warmupS = o.warmupS ?? MOONCAKE_DEFAULTS.warmupS;
  if (!(durationS > 0) || !(warmupS >= 0)) throw new InvalidArgumentError('mooncake: durationS must be > 0 and warmupS >= 0');
  const localHost = bareHost(o.localHost ?? '127.0.0.1');
  return {
    protocol: o.protocol,
    mcProtocol: o.mooncakeProtocol ?? mooncakeProtocolFor(o.protocol),
    blockSize,
    batchSize,
    threads,
    ...mooncakeSeconds(durationS, warmupS),
    bufferSize: o.bufferSize ?? Math.max(4 * blockSize * batchSize * threads, 256 * 2 ** 20),
    localHost,
    ipv6: isIPv6(localHost),
    metadata: o.metadataUrl?.trim() || 'P2PHANDSHAKE',
    slackS: o.timeoutSlackS ?? MOONCAKE_DEFAULTS.timeoutSlackS,
    readyS: o.targetReadyS ?? MOONCAKE_DEFAULTS.targetReadyS,
    graceMs: o.stopGraceMs ?? MOONCAKE_DEFAULTS.stopGraceMs,
  };
}

/** Flags both sides get. `--undefok` lets a DRAM-only build (no --use_vram flag) accept them. */
function commonFlags(r: Resolved, deviceName: string | undefined): string[] {
  const flags = [
    `--protocol=${r.mcProtocol}`,
    `--metadata_server=${r.metadata}`,
    `--block_size=${r.blockSize}`,
    `--batch_size=${r.batchSize}`,
    `--threads=${r.threads}`,
    `--buffer_size=${r.bufferSize}`,
    '--use_vram=false',
    '--undefok=use_vram',
  ];
  if (r.mcProtocol === 'rdma') flags.push(deviceName ? `--device_name=${deviceName}` : '--auto_discovery=true');
  return flags;
}

/**
 * The environment both sides run with: ours plus `extra`, with MC_LOG_DIR removed (it sends glog
 * to files and the wrapper would never see a line), MC_TCP_BIND_ADDRESS on the local host (read
 * with a metadata server; P2P mode ignores it), MC_FORCE_TCP for tcp and MC_USE_IPV6 for an IPv6 host.
 */
export function mooncakeEnv(r: Pick<Resolved, 'localHost' | 'mcProtocol' | 'ipv6'>, extra: NodeJS.ProcessEnv = {}): { env: NodeJS.ProcessEnv; dropped: string[] } {
  const env: NodeJS.ProcessEnv = { ...process.env, MC_TCP_BIND_ADDRESS: r.localHost, ...(r.mcProtocol === 'tcp' ? { MC_FORCE_TCP: '1' } : {}), ...(r.ipv6 ? { MC_USE_IPV6: '1' } : {}), ...extra };
  const dropped: string[] = [];
  if (env.MC_LOG_DIR !== undefined) {
    delete env.MC_LOG_DIR;
    dropped.push('MC_LOG_DIR');
  }
  return { env, dropped };
}

function spawnMooncake(label: string, bin: string, args: string[], env: NodeJS.ProcessEnv, logger: Logger): ChildProc {
  return new ChildProc({ label, command: bin, args, env, lifetime: 'supervised', logger });
}

/**
 * Runs one block size: the target, an optional warmup initiator run (discarded), the measured
 * initiator run; parses it into a row. Never throws for a run that failed: the row says why.
 */
export async function runMooncakeRow(options: MooncakeOptions): Promise<MooncakeRowOutcome> {
  const logger = options.logger ?? silentLogger;
  const r = resolveOptions(options);
  const identity = {
    system: 'mooncake' as const,
    path: 'transfer-engine',
    op: 'read' as const,
    // What Mooncake runs, not what was asked: it has no shared-memory transport (shm runs its tcp).
    protocol: (r.mcProtocol === 'tcp' || r.mcProtocol === 'rdma' ? r.mcProtocol : r.protocol) as Protocol,
    blockSize: r.blockSize,
    batchSize: r.batchSize,
    threads: r.threads,
    latUnit: 'batch_call' as const,
    transports: [] as string[],
  };
  let usedTransport: string | null = null;
  const outcome = (row: Row, bin: string | null): MooncakeRowOutcome => ({ row, missing: bin === null && row.note.startsWith(MOONCAKE_MISSING), bin, mooncakeProtocol: r.mcProtocol, mooncakeDurationS: r.durationS, usedTransport });
  const found = findMooncakeBin(options.bin, { ...process.env, ...options.env });
  if (!found.path) {
    const what = describeBinProblem(found);
    return outcome(failedRow(identity, found.problem === 'missing' ? `${what}: ${MOONCAKE_HOWTO}` : `${MOONCAKE_BIN_NAME} cannot run: ${what}`), null);
  }
  const bin = found.path;
  if (options.signal?.aborted) return outcome(failedRow(identity, 'aborted by the user before it ran'), bin);
  const { env, dropped } = mooncakeEnv(r, options.env);
  const p2p = r.metadata === 'P2PHANDSHAKE';
  const common = commonFlags(r, options.deviceName);
  const serverName = async () => (p2p ? r.localHost : segmentId(r.localHost, await freePort(r.localHost)));
  const targetName = await serverName();
  const status = (s: string) => options.onStatus?.(`mooncake ${r.blockSize} B x${r.threads}: ${s}`);
  const notes: string[] = [];
  if (dropped.length) notes.push(`${dropped.join(', ')} removed from Mooncake's environment (it sends glog to files)`);
  if (r.ipv6) notes.push('IPv6: MC_USE_IPV6=1, segment id bracketed');
  let target: ChildProc | null = null;
  const initiatorLogs: string[] = [];
  try {
    status('starting the target');
    target = spawnMooncake('mooncake target', bin, ['--mode=target', `--local_server_name=${targetName}`, ...common], env, logger);
    let segment: string;
    try {
      const m = await target.waitForLine(LISTENING, r.readyS * 1000, options.signal);
      segment = p2p ? segmentId(m[1], m[2]) : targetName;
    } catch (err) {
      const why = (err as Error).message;
      if (options.signal?.aborted) return outcome(failedRow({ ...identity, transports: judgeNow(target, initiatorLogs).transports }, 'aborted by the user before it was measured'), bin);
      return outcome(failedRow(identity, `the target ${why.startsWith('exited') ? why : `never said where it listens (${why}; is a glog flag sending its log elsewhere?)`}; tail: ${target.tail()}`), bin);
    }
    logger.info(`mooncake target up: segment ${segment}`);
    const initiator = async (durationS: number, what: string) => {
      const args = ['--mode=initiator', `--local_server_name=${await serverName()}`, `--segment_id=${segment}`, '--operation=read', `--duration=${durationS}`, '--report_unit=GB', ...common];
      status(`${what} (${durationS} s)`);
      const end = await runToEnd(spawnMooncake(`mooncake initiator (${what})`, bin, args, env, logger), (durationS + r.slackS) * 1000, r.graceMs, options.signal);
      initiatorLogs.push(end.log);
      return end;
    };
    // The warmup is a separate initiator process: it warms the target (its buffers, its TCP
    // listener or RDMA QPs) and the page cache, never the measured initiator itself.
    if (r.warmupS > 0) {
      const w = await initiator(r.warmupS, 'warmup');
      if (w.aborted) return outcome(failedRow({ ...identity, transports: judgeNow(target, initiatorLogs).transports }, 'aborted by the user during the warmup run: Mooncake reports nothing partial'), bin);
      if (!w.result) return outcome(failedRow({ ...identity, transports: judgeNow(target, initiatorLogs).transports }, `the warmup run failed: ${w.why}`), bin);
      notes.push(`${r.warmupS} s warmup run discarded (a separate initiator: it warms the target side only)`);
    }
    const m = await initiator(r.durationS, 'measuring');
    // An aborted row keeps the transport the target (and initiator) had logged by then.
    if (m.aborted) return outcome(failedRow({ ...identity, transports: judgeNow(target, initiatorLogs).transports }, 'aborted by the user: the measured run was stopped, Mooncake reports nothing partial'), bin);
    const verdict = judgeNow(target, initiatorLogs, r.mcProtocol);
    usedTransport = verdict.used;
    if (!m.result) return outcome(failedRow({ ...identity, transports: verdict.transports }, m.why), bin);
    if (m.exit && (m.exit.code !== 0 || m.exit.signal)) notes.push(`the initiator ended (${describeExit(m.exit)}) after reporting`);
    if (verdict.mismatch) {
      const gbps = (m.result.batchCount * r.batchSize * r.blockSize) / m.result.durationS / 1e9;
      return outcome(failedRow({ ...identity, transports: verdict.transports, smoke: verdict.used === 'tcp' }, `${verdict.mismatch} (it measured ${round(gbps, 4)} GB/s over ${verdict.used ?? 'an unknown transport'})`), bin);
    }
    if (verdict.unconfirmed) notes.push(`Mooncake's log does not name a ${r.mcProtocol} transport: not confirmed`);
    return outcome(resultRow({ ...identity, transports: verdict.transports }, r, m.result, notes, verdict.used), bin);
  } finally {
    await target?.stop({ graceMs: r.graceMs });
  }
}

/** The verdict from the target's log so far and every initiator's log. */
function judgeNow(target: ChildProc, initiatorLogs: string[], asked = ''): TransportVerdict {
  return judgeTransport(asked, installedTransports(target.stderr()), installedTransports(initiatorLogs.at(-1) ?? ''));
}

interface RunEnd {
  result: MooncakeResult | null;
  exit: ChildExit | null;
  aborted: boolean;
  why: string;
  /** Its stderr (the last MiB). */
  log: string;
}

/** Waits for an initiator to exit (or the deadline, or Ctrl-C), reaps its group, parses its stderr. */
async function runToEnd(p: ChildProc, timeoutMs: number, graceMs: number, signal?: AbortSignal): Promise<RunEnd> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const ended = await Promise.race([
    p.exited.then(() => 'exit' as const),
    new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs))),
    new Promise<'abort'>((r) => {
      if (signal?.aborted) return r('abort');
      onAbort = () => r('abort');
      signal?.addEventListener('abort', onAbort, { once: true });
    }),
  ]);
  clearTimeout(timer);
  if (onAbort) signal?.removeEventListener('abort', onAbort);
  await p.stop({ graceMs });
  // 'exit' can come before the last output: read the pipes to their end (bounded: the group is dead).
  await p.drained();
  const log = p.stderr();
  const result = ended === 'exit' ? parseTestCompleted(log) : null;
  const exit = p.exitedState;
  let why = '';
  if (ended === 'timeout') why = `the initiator was still running ${timeoutMs / 1000} s after it started (hung?); its process group was killed; tail: ${p.tail()}`;
  else if (!result && exit && (exit.code !== 0 || exit.signal)) why = `the initiator ended (${describeExit(exit)}) before reporting; tail: ${p.tail()}`;
  else if (!result) why = `no "Test completed: duration …, batch count …, throughput …" line in the initiator's output; tail: ${p.tail()}`;
  return { result: result && result.durationS > 0 ? result : null, exit, aborted: ended === 'abort', why: why || `the initiator reported a zero duration; tail: ${p.tail()}`, log };
}

type Identity = { system: 'mooncake'; path: string; op: 'read'; protocol: Protocol; blockSize: number; batchSize: number; threads: number; latUnit: 'batch_call'; transports: string[] };

function resultRow(identity: Identity, r: Resolved, m: MooncakeResult, notes: string[], used: string | null): Row {
  const blocks = m.batchCount * r.batchSize;
  const bytes = blocks * r.blockSize;
  const unit = REPORT_UNITS[m.unit];
  const printedGbps = unit ? (m.throughput * unit) / 1e9 : null;
  const recomputed = bytes / m.durationS / 1e9;
  const ran = used ?? r.mcProtocol;
  const parts = [`transfer_engine_bench read, mooncake ${ran}${r.protocol === 'shm' && ran === 'tcp' ? ' on loopback (it has no shm DRAM transport)' : ''}`, ...notes];
  if (printedGbps !== null && unit) {
    // Its figure is rounded to its precision; a gap beyond that means we parsed something else.
    const slack = (0.006 * unit) / 1e9 + recomputed * 0.02;
    if (Math.abs(printedGbps - recomputed) > slack) parts.push(`Mooncake printed ${m.throughput} ${m.unit}/s, recomputed ${round(recomputed, 4)} GB/s`);
  }
  return makeRow({
    ...identity,
    calls: m.batchCount,
    pages: blocks,
    pagesRequested: blocks,
    ops: blocks,
    bytes,
    elapsedNs: m.durationS * 1e9,
    latency: null,
    histogram: null,
    hitRate: 'none',
    note: parts.join('; '),
    // Mooncake over TCP is a smoke figure, like our own tcp rows, whatever protocol it is matched to.
    smoke: ran === 'tcp',
    extra: {
      mooncake_batch_count: m.batchCount,
      mooncake_duration_s: m.durationS,
      mooncake_printed_gbps: printedGbps === null ? null : round(printedGbps, 6),
      mooncake_requested_duration_s: r.durationS,
    },
  });
}

// ------------------------------------------------------------------ the report

export async function runMooncake(options: MooncakeReportOptions): Promise<Report> {
  const started = new Date();
  const loadBefore = loadAverage();
  const host = collectLocalHost();
  const out = await runMooncakeRow(options);
  const r = resolveOptions(options);
  const ran = out.bin !== null && !out.row.note.startsWith('aborted by the user before');
  const notes = ran ? mooncakeNotes(r.threads, r.warmupS, r.durationS, options.durationS ?? MOONCAKE_DEFAULTS.durationS) : [`Mooncake did not run: ${out.row.note}`];
  if (options.signal?.aborted) notes.push('aborted by the user');
  return makeReport({
    command: options.command ?? `runMooncake(${JSON.stringify({ protocol: options.protocol })})`,
    host,
    date: started,
    loadavgBefore: loadBefore,
    meta: {
      mode: 'mooncake',
      protocol: options.protocol,
      transports: out.row.transports,
      smoke: out.row.smoke,
      device: options.deviceName ?? null,
      page_size: r.blockSize,
      batch_size: r.batchSize,
      concurrencies: [r.threads],
      duration_s: options.durationS ?? MOONCAKE_DEFAULTS.durationS,
      warmup_s: options.warmupS ?? MOONCAKE_DEFAULTS.warmupS,
      threads: r.threads,
      mooncake_bin: out.bin,
      mooncake_protocol: out.mooncakeProtocol,
      mooncake_transport: out.usedTransport,
      mooncake_duration_s: out.mooncakeDurationS,
      metadata_server: r.metadata,
      local_host: r.localHost,
    },
    results: markPeak([out.row]),
    notes,
  });
}

/** What a reader of a Mooncake row must know (only for runs that happened). */
export function mooncakeNotes(threads: number, warmupS: number, mooncakeDurationS: number, requestedS: number): string[] {
  const notes = [
    `Mooncake ran with --threads=${threads} (the same concurrency as ours; its own default is ${MOONCAKE_OWN_DEFAULTS.threads}) and ${warmupS > 0 ? `a discarded ${warmupS} s warmup run against the same target (a separate initiator process: it warms the target side only)` : 'no warmup'}; its own window includes thread start and join`,
    'Mooncake reports no latency; its GB/s is recomputed from batch count x batch x block over the duration it printed (2 dp), not its rounded GB/s',
    "the transport in a Mooncake row is the one its own log says it installed (a row fails when that is not the one asked for); Mooncake over TCP is smoke, like our tcp rows",
  ];
  if (mooncakeDurationS !== requestedS) notes.push(`Mooncake takes whole seconds: it ran ${mooncakeDurationS} s for the requested ${requestedS} s`);
  return notes;
}
