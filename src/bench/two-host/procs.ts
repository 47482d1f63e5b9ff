/**
 * The parent side of `drive --processes N`: N child driver processes (drive-child.ts), each row
 * run on all of them with one common start time, their rows merged (merge.ts). Every wait has a
 * deadline; a child that dies or stalls fails the row it was in, and is started again for the
 * next row. Children are always reaped (stdin closed, then SIGKILL after a grace period).
 */
import { fileURLToPath } from 'node:url';
import type { Logger } from '../../log.js';
import { ChildProc } from '../child-process.js';
import { childExecArgv } from '../engine/entry.js';
import type { RowProgress } from '../engine/row.js';
import type { Row } from '../report/types.js';
import { parseChildMessage, wallNow, type ChildMessage, type ParentMessage } from './child-protocol.js';
import { mergeProcessRows, type ProcessRowResult } from './merge.js';
import { rowPlan, type DriveRowsConfig } from './plan.js';
import { PeercacheError } from '../../errors.js';

/** The child entry, next to this module: .ts from the sources (through tsx), .js when built. */
export function childEntry(): string {
  const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
  return fileURLToPath(new URL(`./drive-child${ext}`, import.meta.url));
}

/** Margin between the last `ready` and the common start: time for `go` to reach every child. */
const START_MARGIN_MS = 300;

/** One drive-child process: a ChildProc speaking child-protocol.ts, tied to us through its stdin. */
class Child {
  readonly proc: ChildProc<ChildMessage>;
  onProgress: ((p: RowProgress) => void) | null = null;

  constructor(
    readonly index: number,
    cfg: DriveRowsConfig,
    logger: Logger,
  ) {
    const childCfg: DriveRowsConfig = { ...cfg, node: { ...cfg.node, nodeId: `${cfg.node.nodeId}-${index + 1}` } };
    this.proc = new ChildProc<ChildMessage>({
      label: `drive process ${index + 1}`,
      command: process.execPath,
      args: [...childExecArgv(), childEntry(), JSON.stringify(childCfg)],
      lifetime: 'stdin',
      parseMessage: parseChildMessage,
      logger,
    });
    this.proc.onMessage((m) => {
      if (m.t !== 'progress') return false;
      this.onProgress?.(m.p);
      return true;
    });
  }

  get alive(): boolean {
    return this.proc.alive;
  }

  /** Why it is gone: "drive process N (pid P) exited (code 1): <last lines>". */
  get exited(): string | null {
    return this.proc.alive ? null : this.proc.exitDescription(2);
  }

  send(msg: ParentMessage): void {
    this.proc.send(msg);
  }

  /** The next message that matches, within `timeoutMs`; rejects when the child exits. */
  async next(match: (m: ChildMessage) => boolean, timeoutMs: number, what: string): Promise<ChildMessage> {
    try {
      return await this.proc.next(match, timeoutMs, what);
    } catch (err) {
      const msg = (err as Error).message;
      if (msg.startsWith('exited')) throw new PeercacheError('ERR_CHILD_PROCESS', this.proc.exitDescription(2));
      throw new PeercacheError('ERR_CHILD_PROCESS', `drive process ${this.index + 1} sent ${msg}`);
    }
  }

  /** Closes stdin (the child closes its node and exits); SIGKILL after `graceMs`. */
  stop(graceMs = 5000): Promise<void> {
    return this.proc.stop({ via: 'stdin', graceMs });
  }
}

export interface GroupRowContext {
  index: number;
  signal?: AbortSignal;
  onProgress?: (p: RowProgress) => void;
}

export class ProcessGroup {
  private readonly children: (Child | null)[];

  private constructor(
    private readonly n: number,
    private readonly cfg: DriveRowsConfig,
    private readonly logger: Logger,
  ) {
    this.children = new Array<Child | null>(n).fill(null);
  }

  /** Starts N children and waits until each one's node joined and checked serve. */
  static async start(n: number, cfg: DriveRowsConfig, logger: Logger): Promise<ProcessGroup> {
    const g = new ProcessGroup(n, cfg, logger);
    const started = await Promise.allSettled(Array.from({ length: n }, (_, i) => g.ensure(i)));
    const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      await g.close();
      throw failed.reason as Error;
    }
    return g;
  }

  /** A live, hello'd child in slot i (started again if the previous one died). */
  private async ensure(i: number): Promise<Child> {
    const existing = this.children[i];
    if (existing?.alive) return existing;
    const child = new Child(i, this.cfg, this.logger);
    this.children[i] = child;
    const first = await child
      .next((m) => m.t === 'hello' || m.t === 'error', this.cfg.node.connectTimeoutMs + 30_000, 'hello')
      .catch(async (err: unknown) => {
        await child.stop(0);
        throw err;
      });
    if (first.t === 'error') {
      await child.stop();
      throw new PeercacheError('ERR_CHILD_PROCESS', `drive process ${i + 1} could not start: ${first.message}`);
    }
    return child;
  }

  async runRow(ctx: GroupRowContext): Promise<Row> {
    const plan = rowPlan(this.cfg, ctx.index);
    const results: ProcessRowResult[] = Array.from({ length: this.n }, (_, i) => ({ process: i, row: null, startedAtMs: null }));
    const live: (Child | null)[] = await Promise.all(
      Array.from({ length: this.n }, (_, i) =>
        this.ensure(i).catch((err: unknown) => {
          results[i].error = (err as Error).message;
          return null;
        }),
      ),
    );
    const stop = () => {
      for (const c of live) c?.send({ t: 'stop' });
    };
    ctx.signal?.addEventListener('abort', stop, { once: true });
    const latest = new Map<number, RowProgress>();
    try {
      for (const c of live) {
        if (!c) continue;
        c.onProgress = (p) => {
          latest.set(c.index, p);
          const all = [...latest.values()];
          ctx.onProgress?.({ ...p, threads: p.threads * this.n, pagesPerS: all.reduce((s, x) => s + x.pagesPerS, 0), gbps: all.reduce((s, x) => s + x.gbps, 0) });
        };
      }
      const row = ctx.index;
      const isResult = (m: ChildMessage) => m.t === 'result' && m.row === row;
      const early = new Map<number, ChildMessage>();
      let failure: string | null = live.some((c) => c === null) ? 'a drive process could not be started' : null;
      // Without every process the row is not run at all (a partial row would not be N processes).
      const ran = failure === null;
      if (ran) {
        for (const c of live) c!.send({ t: 'run', row });
        // Ready, or an early result (its workers could not connect), from every child.
        const readyWait = this.cfg.readyTimeoutMs + 15_000;
        await Promise.all(
          live.map(async (c) => {
            try {
              const m = await c!.next((x) => (x.t === 'ready' && x.row === row) || isResult(x), readyWait, `ready for row ${row + 1}`);
              if (m.t === 'result') {
                early.set(c!.index, m);
                failure ??= `drive process ${c!.index + 1} failed before the start`;
              }
            } catch (err) {
              results[c!.index].error = (err as Error).message;
              failure ??= (err as Error).message;
            }
          }),
        );
      }
      if (failure === null) {
        const at = wallNow() + START_MARGIN_MS + 10 * this.n;
        for (const c of live) c!.send({ t: 'go', row, at });
        this.logger.debug(`row ${row + 1}: all ${this.n} driver processes ready; common start in ${Math.round(at - wallNow())} ms`);
      } else if (ran) {
        for (const c of live) c?.send({ t: 'abort', row, reason: failure });
      }
      const resultWait = (failure === null ? (this.cfg.warmupS + this.cfg.durationS) * 1000 : 0) + 60_000;
      await Promise.all(
        live.map(async (c, i) => {
          if (!ran) {
            results[i].error ??= 'not run: another drive process could not be started';
            return;
          }
          if (!c || results[i].error !== undefined) {
            // It never started or stalled: it cannot take part in later rows as it is.
            if (c?.alive) await c.stop(1000);
            return;
          }
          try {
            const m = early.get(i) ?? (await c.next(isResult, resultWait, `result for row ${row + 1}`));
            if (m.t === 'result') {
              results[i].row = m.result;
              results[i].startedAtMs = m.startedAtMs;
            }
          } catch (err) {
            results[i].error = (err as Error).message;
            if (c.alive) await c.stop(1000);
          }
        }),
      );
    } finally {
      ctx.signal?.removeEventListener('abort', stop);
      for (const c of live) if (c) c.onProgress = null;
    }
    return mergeProcessRows(results, {
      path: plan.path,
      rowOp: plan.rowOp,
      protocol: plan.task.store.protocol,
      blockSize: plan.task.pageBytes,
      batchSize: plan.batchSize,
      threads: plan.threads,
      components: plan.components,
      tokensPerPage: plan.tokensPerPage,
      phase: plan.phase,
      latUnit: plan.latUnit,
      note: plan.note,
    });
  }

  /** Stops every child (their nodes leave the cluster); always resolves. */
  async close(): Promise<void> {
    await Promise.all(this.children.map((c) => c?.stop()));
  }
}
