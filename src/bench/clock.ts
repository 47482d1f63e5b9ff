// Clocks for the benchmark engine: integer nanoseconds as plain numbers (no BigInt, no allocation).
//
// Measured on the 2-core dev box, Node 20.20, by benchmarks/bench-histogram.ts (figures in
// bench-results/histogram.md); ns per read, median of 5 x 5M reads, range over the quiet runs:
//   Math.round(performance.now() * 1e6)   42-45 ns   <- nowNs(): cheapest integer-ns clock
//   performance.now() * 1e6 (unrounded)   41-46 ns   (the rounding costs nothing measurable)
//   process.hrtime() -> s * 1e9 + ns      54-64 ns   (allocates a 2-element array per read)
//   Number(process.hrtime.bigint())       72-97 ns   (allocates a BigInt per read)
//   Date.now()                            44-56 ns   (1 ms resolution: useless for latency)
// Resolution: consecutive performance.now() reads differ by >= ~41 ns, never 0, i.e. the clock is
// not coarsened; performance.now() is (monotonic hrtime - thread origin) / 1e6, so * 1e6 lands
// within float noise of an integer and Math.round() restores the exact nanosecond.

import { performance } from 'node:perf_hooks';

/**
 * Monotonic nanoseconds since this thread's `performance.timeOrigin` (an integer).
 *
 * NOT comparable across threads: every worker_thread has its own origin (its start time). Use it
 * for intervals measured within one thread (`t0 = nowNs(); op(); hist.record(nowNs() - t0)`).
 * Exact to the nanosecond for ~104 days of thread lifetime (2^53 ns).
 */
export function nowNs(): number {
  return Math.round(performance.now() * 1e6);
}

/**
 * Wall-clock nanoseconds since the Unix epoch (an integer), monotonic within a thread.
 *
 * Comparable across threads of one process (and across processes on a host, to the precision of
 * the system clock): Node derives every thread's `timeOrigin` from the same process-wide clock —
 * measured: a worker's (wallNs - monotonic hrtime) offset equals the main thread's to within one
 * float step. Resolution is 256 ns, because epoch nanoseconds (~1.8e18) exceed 2^53; use it to
 * align windows and label runs, not to time short operations (use nowNs for that).
 */
export function wallNs(): number {
  return performance.timeOrigin * 1e6 + performance.now() * 1e6;
}
