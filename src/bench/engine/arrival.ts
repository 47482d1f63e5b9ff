/**
 * Open-loop arrivals (wrk2's model): each worker has its own timeline of intended call starts at
 * a fixed mean rate, constant (evenly spaced) or poisson (exponential gaps, seeded so a run can be
 * repeated). Calls are timed from their intended start (response latency: no coordinated
 * omission) and from their actual start (service latency).
 */
import { InvalidArgumentError } from '../../errors.js';

export type ArrivalKind = 'constant' | 'poisson';
export const ARRIVAL_KINDS: readonly ArrivalKind[] = ['constant', 'poisson'];

/** mulberry32: a small, fast, seedable PRNG with a uniform output in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The intended start times (ns from the schedule's start) of one worker's calls. */
export class ArrivalSchedule {
  private readonly gapNs: number;
  private readonly random: () => number;
  private t = 0;

  /** `rate`: calls per second on this timeline. */
  constructor(readonly rate: number, readonly kind: ArrivalKind, seed = 1) {
    if (!(rate > 0) || !Number.isFinite(rate)) throw new InvalidArgumentError(`ArrivalSchedule: rate must be a number > 0, got ${rate}`);
    this.gapNs = 1e9 / rate;
    this.random = prng(seed);
  }

  /** The next call's intended start, ns from the schedule's start (the first is one gap in, or a random one). */
  next(): number {
    // 1 - U is in (0, 1]: the log is finite.
    this.t += this.kind === 'constant' ? this.gapNs : -Math.log(1 - this.random()) * this.gapNs;
    return this.t;
  }
}
