/**
 * BusyPoll: after each answer, keeps the event loop polling its sockets for a while (a setImmediate
 * chain makes libuv's epoll_wait use a zero timeout) instead of sleeping, so the next request of a
 * burst is read by a running process rather than one the kernel has to wake. A wake-up costs a
 * halted vCPU, or a core in a deep C-state, 50–200 µs (bench-results/sglang-adapter-shm.md).
 * The price is CPU: up to `windowUs` of one core per answer, counted in `spunSeconds`.
 */
import { performance } from 'node:perf_hooks';

export class BusyPoll {
  /** CPU (wall) seconds spent polling so far. */
  spunSeconds = 0;
  private until = 0;
  private startedAt = 0;
  private pending: NodeJS.Immediate | null = null;

  constructor(readonly windowUs: number) {}

  /** Polls until `windowUs` from now (extends a poll already running). */
  extend(): void {
    if (this.windowUs <= 0) return;
    const now = performance.now();
    this.until = now + this.windowUs / 1000;
    if (this.pending) return;
    this.startedAt = now;
    this.pending = setImmediate(this.spin);
  }

  stop(): void {
    if (!this.pending) return;
    clearImmediate(this.pending);
    this.finish(performance.now());
  }

  private readonly spin = (): void => {
    const now = performance.now();
    if (now < this.until) this.pending = setImmediate(this.spin);
    else this.finish(now);
  };

  private finish(now: number): void {
    this.pending = null;
    this.spunSeconds += (now - this.startedAt) / 1000;
  }
}
