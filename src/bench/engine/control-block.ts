/**
 * The control block a row's main thread and its workers share (an Int32Array over a
 * SharedArrayBuffer), as an object: the row's phase, how many workers are ready and done, and
 * per-worker live counters the main thread reads for progress without messages. Every index into
 * the buffer lives in this file and nowhere else.
 *
 * Layout (Int32 slots):
 *   [0] phase      written by main: Init -> Warmup -> Measure -> Stop
 *   [1] ready      workers connected and waiting for Warmup
 *   [2] done       workers that finished and closed their session
 *   [3] (unused)   keeps the live counters 16-byte aligned
 *   then per worker w, four counters at HEADER + w * LIVE_FIELDS: calls, pages, errors
 *   (measured-window calls only), and warmup pages (calls completed in the warmup; counted only
 *   when the row records intervals, see engine/intervals.ts).
 */
import { InvalidArgumentError } from '../../errors.js';

export const Phase = { Init: 0, Warmup: 1, Measure: 2, Stop: 3 } as const;
export type PhaseCode = (typeof Phase)[keyof typeof Phase];

const PHASE = 0;
const READY = 1;
const DONE = 2;
const HEADER = 4;
const LIVE_FIELDS = 4;
const CALLS = 0;
const PAGES = 1;
const ERRORS = 2;
const WARM_PAGES = 3;

export interface LiveTotals {
  calls: number;
  pages: number;
  errors: number;
  /** Pages of calls completed in the warmup (interval rows only). */
  warmPages: number;
}

export class ControlBlock {
  private readonly a: Int32Array;

  private constructor(readonly buffer: SharedArrayBuffer, readonly workers: number) {
    this.a = new Int32Array(buffer);
  }

  /** A fresh block for `workers` workers, phase Init. */
  static create(workers: number): ControlBlock {
    if (!Number.isSafeInteger(workers) || workers < 1) throw new InvalidArgumentError(`ControlBlock: workers must be a positive integer, got ${workers}`);
    return new ControlBlock(new SharedArrayBuffer((HEADER + workers * LIVE_FIELDS) * 4), workers);
  }

  /** The same block seen from a worker (the buffer travelled in its task). */
  static attach(buffer: SharedArrayBuffer): ControlBlock {
    const slots = buffer.byteLength / 4;
    const workers = (slots - HEADER) / LIVE_FIELDS;
    if (!Number.isInteger(workers) || workers < 1) throw new InvalidArgumentError(`ControlBlock: a buffer of ${buffer.byteLength} bytes is not a control block`);
    return new ControlBlock(buffer, workers);
  }

  get phase(): PhaseCode {
    return Atomics.load(this.a, PHASE) as PhaseCode;
  }

  /** Main: moves every worker to `phase` and wakes the ones waiting. */
  setPhase(phase: PhaseCode): void {
    Atomics.store(this.a, PHASE, phase);
    Atomics.notify(this.a, PHASE);
  }

  /** Worker: resolves once the phase is no longer `phase` (without blocking its event loop). */
  async waitWhile(phase: PhaseCode): Promise<void> {
    while (Atomics.load(this.a, PHASE) === phase) {
      const w = Atomics.waitAsync(this.a, PHASE, phase, 1000);
      if (w.async) await w.value;
    }
  }

  /** Worker: connected and warmed; waiting for the start. */
  markReady(): void {
    Atomics.add(this.a, READY, 1);
    Atomics.notify(this.a, READY);
  }

  get ready(): number {
    return Atomics.load(this.a, READY);
  }

  /** Worker: finished and closed. */
  markDone(): void {
    Atomics.add(this.a, DONE, 1);
  }

  get done(): number {
    return Atomics.load(this.a, DONE);
  }

  /** Worker `w`: one measured call that completed `pages` pages. */
  countCall(w: number, pages: number): void {
    const base = HEADER + w * LIVE_FIELDS;
    Atomics.add(this.a, base + CALLS, 1);
    Atomics.add(this.a, base + PAGES, pages);
  }

  /** Worker `w`: one measured call that failed. */
  countError(w: number): void {
    Atomics.add(this.a, HEADER + w * LIVE_FIELDS + ERRORS, 1);
  }

  /** Worker `w`: one warmup call that completed `pages` pages (interval rows only). */
  countWarmCall(w: number, pages: number): void {
    Atomics.add(this.a, HEADER + w * LIVE_FIELDS + WARM_PAGES, pages);
  }

  /** Main: the live counters summed over every worker. */
  totals(): LiveTotals {
    const t: LiveTotals = { calls: 0, pages: 0, errors: 0, warmPages: 0 };
    for (let w = 0; w < this.workers; w++) {
      const base = HEADER + w * LIVE_FIELDS;
      t.calls += Atomics.load(this.a, base + CALLS);
      t.pages += Atomics.load(this.a, base + PAGES);
      t.errors += Atomics.load(this.a, base + ERRORS);
      t.warmPages += Atomics.load(this.a, base + WARM_PAGES);
    }
    return t;
  }
}
