/**
 * The one child-process module: every process peercache-bench (and its tests) starts goes through
 * `ChildProc`. It spawns, keeps both pipes drained (a full pipe would block the child), splits
 * them into lines, turns JSON lines into typed messages, keeps a bounded tail for error notes,
 * waits for a line or a message (with a deadline, an abort signal, and the child's exit), stops
 * the child gracefully (SIGTERM or stdin closed, then SIGKILL), and makes sure nothing it started
 * outlives peercache-bench — also when peercache-bench itself is SIGKILLed or OOM-killed.
 *
 * How a child's lifetime is tied to ours (`lifetime`):
 * - 'supervised' (programs we did not write, e.g. Mooncake's transfer_engine_bench): a tiny Node
 *   supervisor (`node -e SUPERVISOR`) leads a new process group and runs the program in it. The
 *   supervisor reads a pipe from us; when that pipe closes (our process is gone, however it died)
 *   or its parent changes, it SIGKILLs the whole group. A wrapper script's children (the Python
 *   wheel's entry point runs the real binary as its child) are in the group too. Signals we send
 *   go to the group; the supervisor exits as the program did (same code, or the same signal).
 * - 'stdin' (our own Node children: producer-main, drive-child, test fixtures): the child reads
 *   its stdin and exits when it closes, which the kernel does when we die.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { constants as osConstants } from 'node:os';
import type { Logger } from '../log.js';
import { silentLogger } from '../log.js';
import { PeercacheError } from '../errors.js';

/** The limits every child shares (they used to differ per call site). */
export const CHILD_LIMITS = {
  /** Bytes of each stream's text kept for parsing (the last ones: the line we parse comes at the end). */
  keepBytes: 1 << 20,
  /** Lines kept for `tail()` (trimmed back to half when exceeded). */
  tailLines: 200,
  /** A line longer than this is cut in the tail (it is passed whole to listeners). */
  lineChars: 400,
  /** An unterminated line longer than this is dropped down to its last KiB. */
  partialChars: 64 * 1024,
  /** Default grace between the polite stop and SIGKILL. */
  stopGraceMs: 3000,
};

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** "code 1", "killed by SIGABRT", or "did not start". */
export function describeExit(s: ChildExit): string {
  return s.signal ? `killed by ${s.signal}` : s.code === null ? 'did not start' : `code ${s.code}`;
}

/** The shell's exit status for a process killed by `signal` (128 + its number: SIGINT 130, SIGTERM 143). */
export function signalExitCode(signal: NodeJS.Signals): number {
  return 128 + (osConstants.signals[signal] ?? 15);
}

/**
 * The supervisor, run as `node -e SUPERVISOR -- bin args…` in its own process group. CommonJS, no
 * files: it works the same from the sources (tsx) and from dist/. It ignores the polite signals
 * (they reach the program through the group), mirrors the program's exit, and kills the whole
 * group when its stdin (a pipe from the parent) ends or its parent changes.
 */
export const SUPERVISOR = `
const { spawn } = require('node:child_process');
const [bin, ...args] = process.argv.slice(1);
const parent = process.ppid;
const killAll = () => { try { process.kill(-process.pid, 'SIGKILL'); } catch {} process.exit(137); };
for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.on(s, () => {});
process.stdin.on('end', killAll);
process.stdin.on('error', killAll);
process.stdin.resume();
setInterval(() => { if (process.ppid !== parent) killAll(); }, 500).unref();
const child = spawn(bin, args, { stdio: ['ignore', 'inherit', 'inherit'] });
child.on('error', (e) => { process.stderr.write('spawn failed: ' + e.message + '\\n'); process.exit(e.code === 'ENOENT' ? 127 : 126); });
child.on('exit', (code, signal) => {
  if (!signal) process.exit(code === null ? 1 : code);
  for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP']) process.removeAllListeners(s);
  process.kill(process.pid, signal);
  setTimeout(() => process.exit(128 + (require('node:os').constants.signals[signal] || 0)), 200);
});
`;

export interface ChildOptions<M> {
  /** Names the child in logs and errors, e.g. "mooncake target". */
  label: string;
  command: string;
  args: string[];
  /** The whole environment (default: ours). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** See the module comment. */
  lifetime: 'supervised' | 'stdin';
  /** stdout lines this returns non-null for are messages (see `onMessage`/`next`), not lines. */
  parseMessage?: (line: string) => M | null;
  /** Bytes of each stream kept for `stdout()`/`stderr()`; default CHILD_LIMITS.keepBytes. */
  keepBytes?: number;
  /** Each line at debug level, prefixed with the label. */
  logger?: Logger;
}

type Stream = 'stdout' | 'stderr';

const live = new Set<ChildProc<unknown>>();
let exitHookInstalled = false;

/** Last resort: our process exiting (second Ctrl-C, an uncaught error) kills every child still running. */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const p of live) p.kill('SIGKILL');
  });
}

export class ChildProc<M = unknown> {
  readonly label: string;
  readonly proc: ChildProcess;
  /** The child's pid; for 'supervised', the supervisor's (the process group's id). */
  readonly pid: number;
  readonly exited: Promise<ChildExit>;
  /** Resolves when both pipes are closed (everything the child wrote has been read). */
  readonly closed: Promise<void>;
  private readonly supervised: boolean;
  private readonly keepBytes: number;
  private readonly logger: Logger;
  private readonly parseMessage?: (line: string) => M | null;
  private readonly text: Record<Stream, string> = { stdout: '', stderr: '' };
  private readonly partial: Record<Stream, string> = { stdout: '', stderr: '' };
  private readonly tailLines: string[] = [];
  private lineListeners: ((line: string, stream: Stream) => void)[] = [];
  private messageListeners: ((m: M) => boolean | void)[] = [];
  private readonly inbox: M[] = [];
  private exitState: ChildExit | null = null;

  constructor(o: ChildOptions<M>) {
    installExitHook();
    this.label = o.label;
    this.supervised = o.lifetime === 'supervised';
    this.keepBytes = o.keepBytes ?? CHILD_LIMITS.keepBytes;
    this.logger = o.logger ?? silentLogger;
    this.parseMessage = o.parseMessage;
    const [command, args] = this.supervised ? [process.execPath, ['-e', SUPERVISOR, '--', o.command, ...o.args]] : [o.command, o.args];
    this.proc = spawn(command, args, { detached: this.supervised, stdio: ['pipe', 'pipe', 'pipe'], env: o.env ?? process.env, cwd: o.cwd });
    this.proc.stdin!.on('error', () => {}); // a dead child's stdin: its exit is reported instead
    this.exited = new Promise((resolveExit) => {
      this.proc.once('exit', (code, signal) => {
        this.exitState = { code, signal };
        resolveExit(this.exitState);
      });
      // A spawn failure (EACCES, ENOENT) is an exit with no code.
      this.proc.once('error', (err) => {
        this.push('stderr', `spawn failed: ${err.message}\n`);
        this.exitState ??= { code: null, signal: null };
        resolveExit(this.exitState);
      });
    });
    this.closed = new Promise((r) => this.proc.once('close', () => r()));
    this.pid = this.proc.pid ?? -1;
    if (this.pid > 0) live.add(this as ChildProc<unknown>);
    void this.exited.then(() => {
      if (!this.supervised) live.delete(this as ChildProc<unknown>);
    });
    this.proc.stdout!.on('data', (d: Buffer) => this.push('stdout', d.toString()));
    this.proc.stderr!.on('data', (d: Buffer) => this.push('stderr', d.toString()));
  }

  private push(stream: Stream, text: string): void {
    this.text[stream] += text;
    if (this.text[stream].length > this.keepBytes) this.text[stream] = this.text[stream].slice(-(this.keepBytes >>> 1));
    const lines = (this.partial[stream] + text).split('\n');
    this.partial[stream] = lines.pop() ?? '';
    if (this.partial[stream].length > CHILD_LIMITS.partialChars) this.partial[stream] = this.partial[stream].slice(-1024);
    for (const raw of lines) {
      const line = raw.replace(/\r$/, '');
      if (!line.trim()) continue;
      if (stream === 'stdout' && this.parseMessage) {
        const m = this.parseMessage(line);
        if (m !== null) {
          this.deliver(m);
          continue;
        }
      }
      this.tailLines.push(line.length > CHILD_LIMITS.lineChars ? `${line.slice(0, CHILD_LIMITS.lineChars)}…` : line);
      if (this.tailLines.length > CHILD_LIMITS.tailLines) this.tailLines.splice(0, this.tailLines.length - (CHILD_LIMITS.tailLines >>> 1));
      if (this.logger.enabled('debug')) this.logger.debug(`${this.label}: ${line}`);
      for (const l of this.lineListeners) l(line, stream);
    }
  }

  private deliver(m: M): void {
    for (const l of this.messageListeners) if (l(m) === true) return;
    this.inbox.push(m);
  }

  get exitedState(): ChildExit | null {
    return this.exitState;
  }

  get alive(): boolean {
    return this.exitState === null;
  }

  /** The last `keepBytes` of stderr (where glog writes). */
  stderr(): string {
    return this.text.stderr;
  }

  /** The last `keepBytes` of stdout, messages included. */
  stdout(): string {
    return this.text.stdout;
  }

  /** The last `n` non-message lines of both streams, each cut to 160 characters, joined with " | ". */
  tail(n = 6): string {
    const lines = [...this.tailLines, this.partial.stderr, this.partial.stdout].filter((l) => l.trim());
    return lines.slice(-n).map((l) => (l.length > 160 ? `${l.slice(0, 160)}…` : l)).join(' | ') || 'no output';
  }

  /** Every line (not messages) as it arrives. */
  onLine(fn: (line: string, stream: Stream) => void): void {
    this.lineListeners.push(fn);
  }

  /** Every message as it arrives; returning true consumes it (it is not queued for `next`). */
  onMessage(fn: (m: M) => boolean | void): () => void {
    this.messageListeners.push(fn);
    return () => (this.messageListeners = this.messageListeners.filter((l) => l !== fn));
  }

  /** "<label> (pid N) exited (code 1): <last lines>". */
  exitDescription(lines = 2): string {
    const s = this.exitState ?? { code: null, signal: null };
    const tail = this.tail(lines);
    return `${this.label} (pid ${this.pid}) exited (${describeExit(s)})${tail !== 'no output' ? `: ${tail}` : ''}`;
  }

  /**
   * Resolves with the first value `match` returns for a line (already seen or to come); rejects
   * when the child exits first, at the deadline, or on abort.
   */
  private waitOn<T>(check: () => T | null, subscribe: (fn: () => void) => () => void, timeoutMs: number, what: string, signal?: AbortSignal): Promise<T> {
    return new Promise((resolveWait, reject) => {
      const now = check();
      if (now !== null) return resolveWait(now);
      if (this.exitState) return reject(new PeercacheError('ERR_CHILD_PROCESS', `exited (${describeExit(this.exitState)}) early`));
      let unsubscribe = () => {};
      const done = (fn: () => void) => {
        clearTimeout(timer);
        unsubscribe();
        signal?.removeEventListener('abort', onAbort);
        fn();
      };
      const onAbort = () => done(() => reject(new PeercacheError('ERR_ABORTED', 'aborted by the user')));
      const timer = setTimeout(() => done(() => reject(new PeercacheError('ERR_TIMEOUT', `no ${what} within ${Math.round(timeoutMs / 100) / 10} s`))), timeoutMs);
      unsubscribe = subscribe(() => {
        const v = check();
        if (v !== null) done(() => resolveWait(v));
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      void this.exited.then((s) => done(() => reject(new PeercacheError('ERR_CHILD_PROCESS', `exited (${describeExit(s)}) early`))));
    });
  }

  /** The first line matching `re` (one already read counts). */
  waitForLine(re: RegExp, timeoutMs: number, signal?: AbortSignal): Promise<RegExpMatchArray> {
    let latest: string | null = null;
    const seen = () => this.tailLines.map((l) => l.match(re)).find((m) => m) ?? null;
    return this.waitOn<RegExpMatchArray>(
      () => (latest === null ? seen() : latest.match(re)),
      (fn) => {
        const l = (line: string) => {
          latest = line;
          fn();
        };
        this.lineListeners.push(l);
        return () => (this.lineListeners = this.lineListeners.filter((x) => x !== l));
      },
      timeoutMs,
      `"${re.source}" line`,
      signal,
    );
  }

  /** The next message that matches (queued or to come), taken off the queue. */
  next<T extends M>(match: (m: M) => m is T, timeoutMs: number, what: string, signal?: AbortSignal): Promise<T>;
  next(match: (m: M) => boolean, timeoutMs: number, what: string, signal?: AbortSignal): Promise<M>;
  next(match: (m: M) => boolean, timeoutMs: number, what: string, signal?: AbortSignal): Promise<M> {
    const take = (): M | null => {
      const i = this.inbox.findIndex(match);
      return i >= 0 ? this.inbox.splice(i, 1)[0] : null;
    };
    return this.waitOn(take, (fn) => this.onMessage((m) => {
      if (!match(m)) return false;
      this.inbox.push(m);
      fn();
      return true;
    }), timeoutMs, what, signal);
  }

  /** One JSON line on the child's stdin. */
  send(msg: unknown): void {
    if (this.alive && this.proc.stdin!.writable) this.proc.stdin!.write(`${JSON.stringify(msg)}\n`);
  }

  /** Signals the child (a supervised child: its whole group); a child already gone is fine. */
  kill(sig: NodeJS.Signals): void {
    if (this.pid <= 0) return;
    try {
      process.kill(this.supervised ? -this.pid : this.pid, sig);
    } catch {
      /* ESRCH: nobody left */
    }
  }

  /**
   * Asks the child to stop (`via`: a signal, default SIGTERM, or 'stdin': close its stdin), and
   * SIGKILLs it after `graceMs` if it is still there. A supervised group gets a final SIGKILL in
   * any case (a wrapper's child may outlive the wrapper). Always resolves.
   */
  async stop(options: { via?: NodeJS.Signals | 'stdin'; graceMs?: number } = {}): Promise<void> {
    const graceMs = options.graceMs ?? CHILD_LIMITS.stopGraceMs;
    if (this.exitState === null) {
      if (options.via === 'stdin') this.proc.stdin!.end();
      else this.kill(options.via ?? 'SIGTERM');
      const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      if ((await Promise.race([this.exited, timer])) === 'timeout') {
        this.logger.debug(`${this.label}: still running ${graceMs} ms after ${options.via ?? 'SIGTERM'}, SIGKILL`);
        this.kill('SIGKILL');
        await Promise.race([this.exited, new Promise((r) => setTimeout(r, 5000).unref())]);
      }
    }
    if (this.supervised) this.kill('SIGKILL');
    this.proc.stdin!.destroy();
    live.delete(this as ChildProc<unknown>);
  }

  /** Waits for the pipes to reach their end, at most `ms` (the child may have left a writer behind). */
  async drained(ms = 2000): Promise<void> {
    await Promise.race([this.closed, new Promise((r) => setTimeout(r, ms).unref())]);
  }
}

export interface ChildRun extends ChildExit {
  stdout: string;
  stderr: string;
  /** It ran past `timeoutMs` and was stopped (SIGTERM, then SIGKILL). */
  timedOut: boolean;
}

export interface RunOptions extends Omit<ChildOptions<never>, 'parseMessage' | 'lifetime'> {
  /** Default 'stdin' (our own Node scripts); 'supervised' for programs we did not write. */
  lifetime?: ChildOptions<never>['lifetime'];
  /** Past this the child is stopped (SIGTERM, then SIGKILL); the run resolves with `timedOut`. */
  timeoutMs?: number;
  /** Each line as it arrives (e.g. to pass a child's stderr through to ours). */
  onLine?: (line: string, stream: Stream) => void;
}

/** Runs a program to its end through `ChildProc` and resolves with its exit and its whole output (up to `keepBytes` per stream). */
export async function runChild(o: RunOptions): Promise<ChildRun> {
  const child = new ChildProc<never>({ ...o, lifetime: o.lifetime ?? 'stdin' });
  if (o.onLine) child.onLine(o.onLine);
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((r) => {
    if (o.timeoutMs !== undefined) timer = setTimeout(() => r('timeout'), o.timeoutMs);
  });
  const timedOut = (await Promise.race([child.exited, deadline])) === 'timeout';
  clearTimeout(timer);
  if (!timedOut) await child.drained();
  await child.stop(); // after a timeout: SIGTERM, then SIGKILL; otherwise only a supervised group's stragglers
  return { ...(child.exitedState ?? { code: null, signal: null }), stdout: child.stdout(), stderr: child.stderr(), timedOut };
}

/** `runChild`, and its stdout when it exits 0; otherwise rejects with ERR_CHILD_PROCESS naming the exit and the last lines. */
export async function childOutput(o: RunOptions): Promise<string> {
  const r = await runChild(o);
  if (r.timedOut) throw new PeercacheError('ERR_TIMEOUT', `${o.label} did not finish within ${Math.round(o.timeoutMs! / 100) / 10} s: ${lastLines(r.stderr || r.stdout)}`);
  if (r.code !== 0) throw new PeercacheError('ERR_CHILD_PROCESS', `${o.label} exited (${describeExit(r)}): ${lastLines(r.stderr || r.stdout)}`);
  return r.stdout;
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ') || 'no output';
}

/** An `onLine` for `runChild`: the child's stderr lines on ours, as `stdio: 'inherit'` would show them. */
export function passStderr(line: string, stream: Stream): void {
  if (stream === 'stderr') process.stderr.write(`${line}\n`);
}
