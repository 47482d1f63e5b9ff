/**
 * V8's background GC and oversubscribed workers. Each sweep worker is an isolate; with V8's default
 * (concurrent) GC, every isolate's cppgc sweeper re-posts an incremental sweep task to its event loop
 * while its background sweep waits for a platform thread — a busy loop that, with 64 workers on 2
 * cores, took ~90% of the machine's CPU at 100 calls/s and cut the get x64 row to 0.34 of x4.
 * `--single-threaded-gc` keeps each isolate's GC on its own thread; it must be given when node
 * starts (V8 aborts when it is set later), so the peercache-bench executable starts with it.
 * Measured side by side in bench-results/host-pool-shm.md.
 */
import os from 'node:os';

export const SINGLE_THREADED_GC = '--single-threaded-gc';

/** True when this process's V8 runs its GC on the isolates' own threads. */
export function singleThreadedGc(execArgv: readonly string[] = process.execArgv): boolean {
  return execArgv.includes(SINGLE_THREADED_GC);
}

/**
 * A note for a run whose widest row puts more than 4 workers on each core while V8 runs its GC in
 * background tasks, else null.
 */
export function gcFlagNote(widestWorkers: number, cores = os.availableParallelism(), execArgv: readonly string[] = process.execArgv): string | null {
  if (singleThreadedGc(execArgv) || widestWorkers <= 4 * cores) return null;
  return (
    `${widestWorkers} workers on ${cores} cores without node ${SINGLE_THREADED_GC}: V8's background GC tasks cost oversubscribed workers ` +
    `much of their CPU (the x64 get row lost ~55% of its throughput to them on 2 cores); run the peercache-bench executable, or start node with ${SINGLE_THREADED_GC}`
  );
}
