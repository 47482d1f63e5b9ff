/**
 * A sweep worker (one piscina thread per concurrency slot). Opens its own store client (or
 * transport endpoint), so it drives its own endpoint (its own QP on RDMA), waits for the shared start flag, runs the closed
 * loop, and records every measured call's latency (integer ns) into its shared histogram: no
 * message per sample. Only calls that start and end inside the MEASURE phase count.
 */
import { nowNs } from '../clock.js';
import { SharedHistogram } from '../histogram.js';
import { openSession } from './drivers.js';
import { ControlBlock, Phase } from './control-block.js';
import type { WorkerResult, WorkerTask } from './protocol.js';

/** Calls each worker makes before it reports ready (at least one; the rest within the warmup time). */
const WARM_CALLS = 200;

export default async function runWorker(task: WorkerTask): Promise<WorkerResult> {
  const control = ControlBlock.attach(task.control);
  const hist = SharedHistogram.attach(task.histogram);
  const result: WorkerResult = { index: task.index, calls: 0, pagesRequested: 0, pages: 0, errors: 0, pagesVerified: 0, wrongPages: 0, firstError: null, lanes: [], rssBytes: 0 };
  const session = await openSession(task);
  try {
    const { driver } = session;
    // Calls before the start flag: connections are set up outside the measured window, and this
    // isolate's JIT has seen the hot path. The shared warmup is wall time, and 64 workers on 2
    // cores get ~60 ms of CPU each in a 2 s warmup: too little to tier up, so the window measured
    // the compiler too (+4..7% at 64 workers with these calls). Bounded by the warmup's length.
    const warmUntil = performance.now() + task.warmupMs;
    for (let i = 0; i < WARM_CALLS && (i === 0 || performance.now() < warmUntil); i++) await driver.call();
    control.markReady();
    await control.waitWhile(Phase.Init);
    for (;;) {
      const phase = control.phase;
      if (phase === Phase.Stop) break;
      const t0 = nowNs();
      try {
        const out = await driver.call();
        const t1 = nowNs();
        if (phase === Phase.Measure && control.phase === Phase.Measure) {
          hist.record(t1 - t0);
          result.calls++;
          result.pagesRequested += out.pagesRequested;
          result.pages += out.pages;
          result.pagesVerified += out.verified;
          result.wrongPages += out.wrongPages;
          control.countCall(task.index, out.pages);
        }
      } catch (err) {
        if (phase === Phase.Measure) {
          result.errors++;
          control.countError(task.index);
        }
        result.firstError ??= (err as Error).message;
        // A failing store must not spin: back off a little.
        await new Promise((r) => setTimeout(r, 5));
      }
    }
    result.lanes = session.lanes();
    return result;
  } finally {
    await session.close();
    control.markDone();
  }
}
