/**
 * The Mooncake baseline: wraps kvcache-ai/Mooncake's own `transfer_engine_bench` (installed by
 * the user: `--mooncake-bin` or PATH) and reports its result as a row of our schema.
 *
 * Fixes to the original wrapper (reference §1.8, §6.2):
 * - threads and warmup default to ours (the original ran Mooncake with 4 threads against our 1,
 *   and no warmup); the warmup is a discarded initiator run against the same target, since the
 *   tool has no warmup of its own;
 * - bytes are recomputed from `batch count × batch × block` over the duration Mooncake printed
 *   (its 2-decimal GB/s is off by up to ±25% at 4 KiB; the original also assumed the duration);
 * - no metadata server: the target runs in P2PHANDSHAKE mode and its segment id is read from its
 *   log (or `--metadata-url` is used as given);
 * - `MC_TCP_BIND_ADDRESS` keeps both sides on the local host's loopback (without it Mooncake
 *   advertises the first non-loopback address);
 * - every child runs in its own process group that is always reaped (SIGTERM, then SIGKILL of the
 *   whole group, also on timeout, Ctrl-C and exit), and its pipes are read while it runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { silentLogger, type Logger } from '../log.js';
import type { Protocol } from '../transport/types.js';
import { round } from './report/format.js';
import { collectLocalHost } from './report/host.js';
import { failedRow, makeReport, makeRow } from './report/metrics.js';
import { loadAverage } from './report/manifest.js';
import { markPeak } from './report/peak.js';
import type { Report, Row } from './report/types.js';
import { freePort } from './engine/net.js';

export const MOONCAKE_BIN_NAME = 'transfer_engine_bench';
/** Every row of a missing binary starts with this (compare tells such rows from real failures). */
export const MOONCAKE_MISSING = `${MOONCAKE_BIN_NAME} not found`;
export const MOONCAKE_HOWTO =
  'install Mooncake (pip install mooncake-transfer-engine, whose wheel ships transfer_engine_bench, or build kvcache-ai/Mooncake with BUILD_EXAMPLES=ON) and pass --mooncake-bin <path> or put it on PATH';

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

/** The target's `… listening on <host>:<port>` (IPv6 hosts come bracketed). */
const LISTENING = /Transfer Engine RPC using [^,]*, listening on (\[[^\]]+\]|[^\s:]*):(\d+)/;

// ------------------------------------------------------------------ finding the binary

function isExecutable(path: string): boolean {
  try {
    if (!statSync(path).isFile()) return false;
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The binary to run: an explicit path, or a name on PATH. null with where it looked. */
export function findMooncakeBin(bin: string | undefined, env: NodeJS.ProcessEnv = process.env): { path: string | null; looked: string } {
  const name = bin?.trim() || MOONCAKE_BIN_NAME;
  if (name.includes('/')) {
    const path = resolve(name);
    return { path: isExecutable(path) ? path : null, looked: path };
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const path = join(dir, name);
    if (isExecutable(path)) return { path, looked: 'PATH' };
  }
  return { path: null, looked: `${name} on PATH` };
}

// ------------------------------------------------------------------ process groups

const live = new Set<GroupProcess>();
let exitHookInstalled = false;

/** Last resort: a parent that exits (second Ctrl-C, an uncaught error) kills every group it started. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.killGroup('SIGKILL');
  });
}

/**
 * A child in its own process group (`detached`), so a wrapper script (the wheel's entry point runs
 * the real binary as its child) cannot leave the real process behind. Both pipes are read as the
 * child writes (a full pipe would block it); the last lines are kept for notes.
 */
export class GroupProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves when both pipes are closed (everything the group wrote has been read). */
  readonly closed: Promise<void>;
  private readonly tailLines: string[] = [];
  private stderrText = '';
  private partial: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
  private listeners: ((line: string) => void)[] = [];
  private exitState: { code: number | null; signal: NodeJS.Signals | null } | null = null;

  constructor(
    readonly label: string,
    bin: string,
    args: string[],
    env: NodeJS.ProcessEnv,
    private readonly logger: Logger,
  ) {
    installExitHook();
    this.child = spawn(bin, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env });
    this.exited = new Promise((resolveExit) => {
      this.child.once('exit', (code, signal) => {
        this.exitState = { code, signal };
        resolveExit(this.exitState);
      });
      // A spawn failure (EACCES, ENOENT after the check) is an exit with no code.
      this.child.once('error', (err) => {
        this.push('stderr', `spawn failed: ${err.message}\n`);
        this.exitState ??= { code: null, signal: null };
        resolveExit(this.exitState);
      });
    });
    this.closed = new Promise((r) => this.child.once('close', () => r()));
    this.pid = this.child.pid ?? -1;
    if (this.pid > 0) live.add(this);
    this.child.stdout!.on('data', (d: Buffer) => this.push('stdout', d.toString()));
    this.child.stderr!.on('data', (d: Buffer) => this.push('stderr', d.toString()));
  }

  private push(stream: 'stdout' | 'stderr', text: string): void {
    if (stream === 'stderr') {
      this.stderrText += text;
      // The line we parse comes at the end; a chatty child must not grow this without bound.
      if (this.stderrText.length > 1 << 20) this.stderrText = this.stderrText.slice(-(1 << 19));
    }
    const lines = (this.partial[stream] + text).split('\n');
    this.partial[stream] = lines.pop() ?? '';
    if (this.partial[stream].length > 64 * 1024) this.partial[stream] = this.partial[stream].slice(-1024);
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      if (!line.trim()) continue;
      this.tailLines.push(line.length > 400 ? `${line.slice(0, 400)}…` : line);
      if (this.tailLines.length > 200) this.tailLines.splice(0, this.tailLines.length - 100);
      if (this.logger.enabled('debug')) this.logger.debug(`${this.label}: ${line}`);
      for (const l of this.listeners) l(line);
    }
  }

  get exitedState(): { code: number | null; signal: NodeJS.Signals | null } | null {
    return this.exitState;
  }

  /** Everything on stderr (the last MiB), where glog writes. */
  stderr(): string {
    return this.stderrText + this.partial.stderr;
  }

  /** The last `n` lines of both streams, each cut to 160 characters, joined with " | ". */
  tail(n = 6): string {
    const lines = [...this.tailLines, this.partial.stderr, this.partial.stdout].filter((l) => l.trim());
    return lines.slice(-n).map((l) => (l.length > 160 ? `${l.slice(0, 160)}…` : l)).join(' | ') || 'no output';
  }

  /** Resolves with the first line matching `re`; rejects when the child exits first or on timeout. */
  waitFor(re: RegExp, timeoutMs: number, signal?: AbortSignal): Promise<RegExpMatchArray> {
    return new Promise((resolveLine, reject) => {
      const seen = this.tailLines.map((l) => l.match(re)).find((m) => m);
      if (seen) return resolveLine(seen);
      const done = (fn: () => void) => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== onLine);
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onLine = (line: string) => {
        const m = line.match(re);
        if (m) done(() => resolveLine(m));
      };
      const onAbort = () => done(() => reject(new Error('aborted by the user')));
      const timer = setTimeout(() => done(() => reject(new Error(`no "${re.source}" line within ${timeoutMs / 1000} s`))), timeoutMs);
      this.listeners.push(onLine);
      signal?.addEventListener('abort', onAbort, { once: true });
      void this.exited.then((s) => done(() => reject(new Error(`exited (${describeExit(s)}) early`))));
    });
  }

  /** Signals the whole group; a group already gone is fine. */
  killGroup(sig: NodeJS.Signals): void {
    if (this.pid <= 0) return;
    try {
      process.kill(-this.pid, sig);
    } catch {
      /* ESRCH: nobody left in the group */
    }
  }

  /**
   * SIGTERM to the group, SIGKILL after `graceMs` if the leader is still there, and a final
   * SIGKILL to the group in any case (a wrapper's child may outlive the wrapper).
   */
  async stop(graceMs: number): Promise<void> {
    if (this.exitState === null) {
      this.killGroup('SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([this.exited, timer])) === 'timeout') {
        this.logger.debug(`${this.label}: still running ${graceMs} ms after SIGTERM, SIGKILL`);
        this.killGroup('SIGKILL');
        await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      }
    }
    this.killGroup('SIGKILL');
    live.delete(this);
  }
}

function describeExit(s: { code: number | null; signal: NodeJS.Signals | null }): string {
  return s.signal ? `killed by ${s.signal}` : s.code === null ? 'did not start' : `code ${s.code}`;
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
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`mooncake: ${name} must be a positive integer, got ${v}`);
  }
  const durationS = o.durationS ?? MOONCAKE_DEFAULTS.durationS;
  const warmupS = o.warmupS ?? MOONCAKE_DEFAULTS.warmupS;
  if (!(durationS > 0) || !(warmupS >= 0)) throw new RangeError('mooncake: durationS must be > 0 and warmupS >= 0');
  return {
    protocol: o.protocol,
    mcProtocol: o.mooncakeProtocol ?? mooncakeProtocolFor(o.protocol),
    blockSize,
    batchSize,
    threads,
    ...mooncakeSeconds(durationS, warmupS),
    bufferSize: o.bufferSize ?? Math.max(4 * blockSize * batchSize * threads, 256 * 2 ** 20),
    localHost: o.localHost ?? '127.0.0.1',
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
    protocol: r.protocol,
    blockSize: r.blockSize,
    batchSize: r.batchSize,
    threads: r.threads,
    latUnit: 'batch_call' as const,
    transports: [`mooncake/${r.mcProtocol}`],
  };
  const outcome = (row: Row, bin: string | null): MooncakeRowOutcome => ({ row, missing: bin === null, bin, mooncakeProtocol: r.mcProtocol, mooncakeDurationS: r.durationS });
  const found = findMooncakeBin(options.bin, { ...process.env, ...options.env });
  if (!found.path) {
    return outcome(failedRow({ ...identity, transports: [] }, `${MOONCAKE_MISSING} (looked at ${found.looked}): ${MOONCAKE_HOWTO}`), null);
  }
  const bin = found.path;
  if (options.signal?.aborted) return outcome(failedRow(identity, 'aborted by the user before it ran'), bin);
  // One host: both sides bind and advertise the local address (else Mooncake advertises the first
  // non-loopback one); tcp without falling back to an HCA.
  const env: NodeJS.ProcessEnv = { ...process.env, MC_TCP_BIND_ADDRESS: r.localHost, ...(r.mcProtocol === 'tcp' ? { MC_FORCE_TCP: '1' } : {}), ...options.env };
  const p2p = r.metadata === 'P2PHANDSHAKE';
  const common = commonFlags(r, options.deviceName);
  const targetName = p2p ? r.localHost : `${r.localHost}:${await freePort(r.localHost)}`;
  const status = (s: string) => options.onStatus?.(`mooncake ${r.blockSize} B x${r.threads}: ${s}`);
  const notes: string[] = [];
  let target: GroupProcess | null = null;
  try {
    status('starting the target');
    target = new GroupProcess('mooncake target', bin, ['--mode=target', `--local_server_name=${targetName}`, ...common], env, logger);
    let segment: string;
    try {
      const m = await target.waitFor(LISTENING, r.readyS * 1000, options.signal);
      segment = p2p ? `${m[1]}:${m[2]}` : targetName;
    } catch (err) {
      const why = (err as Error).message;
      if (options.signal?.aborted) return outcome(failedRow(identity, 'aborted by the user before it was measured'), bin);
      return outcome(failedRow(identity, `the target ${why.startsWith('exited') ? why : `never said where it listens (${why}; is MC_LOG_DIR sending its log elsewhere?)`}; tail: ${target.tail()}`), bin);
    }
    logger.info(`mooncake target up: segment ${segment}`);
    const initiator = async (durationS: number, what: string) => {
      const args = ['--mode=initiator', `--local_server_name=${p2p ? r.localHost : `${r.localHost}:${await freePort(r.localHost)}`}`, `--segment_id=${segment}`, '--operation=read', `--duration=${durationS}`, '--report_unit=GB', ...common];
      status(`${what} (${durationS} s)`);
      return runToEnd(new GroupProcess(`mooncake initiator (${what})`, bin, args, env, logger), (durationS + r.slackS) * 1000, r.graceMs, options.signal);
    };
    if (r.warmupS > 0) {
      const w = await initiator(r.warmupS, 'warmup');
      if (w.aborted) return outcome(failedRow(identity, 'aborted by the user during the warmup run'), bin);
      if (!w.result) return outcome(failedRow(identity, `the warmup run failed: ${w.why}`), bin);
      notes.push(`${r.warmupS} s warmup run discarded`);
    }
    const m = await initiator(r.durationS, 'measuring');
    if (m.aborted) return outcome(failedRow(identity, 'aborted by the user: the measured run was stopped, Mooncake reports nothing partial'), bin);
    if (!m.result) return outcome(failedRow(identity, m.why), bin);
    if (m.exit && (m.exit.code !== 0 || m.exit.signal)) notes.push(`the initiator ended (${describeExit(m.exit)}) after reporting`);
    return outcome(resultRow(identity, r, m.result, notes), bin);
  } finally {
    await target?.stop(r.graceMs);
  }
}

interface RunEnd {
  result: MooncakeResult | null;
  exit: { code: number | null; signal: NodeJS.Signals | null } | null;
  aborted: boolean;
  why: string;
}

/** Waits for an initiator to exit (or the deadline, or Ctrl-C), reaps its group, parses its stderr. */
async function runToEnd(p: GroupProcess, timeoutMs: number, graceMs: number, signal?: AbortSignal): Promise<RunEnd> {
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
  await p.stop(graceMs);
  // 'exit' can come before the last output: read the pipes to their end (bounded: the group is dead).
  await Promise.race([p.closed, new Promise((r) => setTimeout(r, 2000).unref())]);
  const result = ended === 'exit' ? parseTestCompleted(p.stderr()) : null;
  const exit = p.exitedState;
  let why = '';
  if (ended === 'timeout') why = `the initiator was still running ${timeoutMs / 1000} s after it started (hung?); its process group was killed; tail: ${p.tail()}`;
  else if (!result && exit && (exit.code !== 0 || exit.signal)) why = `the initiator ended (${describeExit(exit)}) before reporting; tail: ${p.tail()}`;
  else if (!result) why = `no "Test completed: duration …, batch count …, throughput …" line in the initiator's output; tail: ${p.tail()}`;
  return { result: result && result.durationS > 0 ? result : null, exit, aborted: ended === 'abort', why: why || `the initiator reported a zero duration; tail: ${p.tail()}` };
}

function resultRow(identity: { system: 'mooncake'; path: string; op: 'read'; protocol: Protocol; blockSize: number; batchSize: number; threads: number; latUnit: 'batch_call'; transports: string[] }, r: Resolved, m: MooncakeResult, notes: string[]): Row {
  const blocks = m.batchCount * r.batchSize;
  const bytes = blocks * r.blockSize;
  const unit = REPORT_UNITS[m.unit];
  const printedGbps = unit ? (m.throughput * unit) / 1e9 : null;
  const recomputed = bytes / m.durationS / 1e9;
  const parts = [`transfer_engine_bench read, mooncake ${r.mcProtocol}${r.protocol === 'shm' && r.mcProtocol === 'tcp' ? ' on loopback (it has no shm DRAM transport)' : ''}`, ...notes];
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
  const notes = mooncakeNotes(r.threads, r.warmupS, r.durationS, options.durationS ?? MOONCAKE_DEFAULTS.durationS);
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
      device: options.deviceName ?? null,
      page_size: r.blockSize,
      batch_size: r.batchSize,
      concurrencies: [r.threads],
      duration_s: options.durationS ?? MOONCAKE_DEFAULTS.durationS,
      warmup_s: options.warmupS ?? MOONCAKE_DEFAULTS.warmupS,
      threads: r.threads,
      mooncake_bin: out.bin,
      mooncake_protocol: out.mooncakeProtocol,
      mooncake_duration_s: out.mooncakeDurationS,
      metadata_server: r.metadata,
      local_host: r.localHost,
    },
    results: markPeak([out.row]),
    notes,
  });
}

/** What a reader of a Mooncake row must know. */
export function mooncakeNotes(threads: number, warmupS: number, mooncakeDurationS: number, requestedS: number): string[] {
  const notes = [
    `Mooncake ran with --threads=${threads} (the same concurrency as ours) and ${warmupS > 0 ? `a discarded ${warmupS} s warmup run against the same target` : 'no warmup'}; its own window includes thread start and join`,
    'Mooncake reports no latency; its GB/s is recomputed from batch count x batch x block over the duration it printed (2 dp), not its rounded GB/s',
  ];
  if (mooncakeDurationS !== requestedS) notes.push(`Mooncake takes whole seconds: it ran ${mooncakeDurationS} s for the requested ${requestedS} s`);
  return notes;
}
