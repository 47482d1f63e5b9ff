/**
 * BusyPoll: after each answer, keeps the event loop polling its sockets for a while (a setImmediate
 * chain makes libuv's epoll_wait use a zero timeout) instead of sleeping, so the next request of a
 * burst is read by a running process rather than one the kernel has to wake. A wake-up costs a
 * halted vCPU, or a core in a deep C-state, 50–200 µs (bench-results/sglang-adapter-shm.md).
 * The price is CPU: up to `windowUs` of one core per answer, counted in `spunSeconds`.
 */
import { performance } from 'node:perf_hooks';

/** What else a poll looks at (the server's lanes). */
export interface BusyPollHooks {
  /** The poll now lasts until this CLOCK_MONOTONIC time (ns): spin() is called at least once after it. */
  window(untilNs: bigint): void;
  /** Called on each turn of the poll, and once more when it ends. */
  spin(): void;
}

export class BusyPoll {
  /** CPU (wall) seconds spent polling so far. */
  spunSeconds = 0;
  /** CLOCK_MONOTONIC ns: the one clock both for when to stop and for what hooks.window() is told. */
  private untilNs = 0n;
  private startedAt = 0;
  private pending: NodeJS.Immediate | null = null;

  constructor(
    readonly windowUs: number,
    private readonly hooks?: BusyPollHooks,
  ) {}

  /** Polls until `windowUs` from now (extends a poll already running). */
  extend(): void {
    if (this.windowUs <= 0) return;
    this.untilNs = process.hrtime.bigint() + BigInt(Math.round(this.windowUs * 1000));
    this.hooks?.window(this.untilNs);
    if (this.pending) return;
    this.startedAt = performance.now();
    this.pending = setImmediate(this.spin);
  }

  stop(): void {
    if (!this.pending) return;
    clearImmediate(this.pending);
    this.finish(performance.now());
  }

  private readonly spin = (): void => {
    this.hooks?.spin();
    if (process.hrtime.bigint() < this.untilNs) this.pending = setImmediate(this.spin);
    else this.finish(performance.now());
  };

  private finish(now: number): void {
    this.pending = null;
    this.spunSeconds += (now - this.startedAt) / 1000;
    this.hooks?.spin(); // after the advertised end: what arrived just before it is not left waiting
  }
}
