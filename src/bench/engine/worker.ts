/**
 * A sweep worker (one piscina thread per concurrency slot). Opens its own store client (or
 * transport endpoint), so it drives its own endpoint (its own QP on RDMA), waits for the shared start flag, runs the closed
 * loop, and records every measured call's latency (integer ns) into its shared histogram: no
 * message per sample. Only calls that start and end inside the MEASURE phase count. With
 * --interval the calls that start and end inside the WARMUP phase go to a warmup histogram of
 * their own (never the row's), so the interval series shows the warmup too.
 */
import { nowNs } from '../clock.js';
import { SharedHistogram } from '../histogram.js';
import { openSession } from './drivers.js';
import { ArrivalSchedule } from './arrival.js';
import { ControlBlock, Phase } from './control-block.js';
import type { WorkerResult, WorkerTask } from './protocol.js';

/** Calls each worker makes before it reports ready (at least one; the rest within the warmup time). */
const WARM_CALLS = 200;

export default async function runWorker(task: WorkerTask): Promise<WorkerResult> {
  const control = ControlBlock.attach(task.control);
  const hist = SharedHistogram.attach(task.histogram);
  const warm = task.warmHistogram ? SharedHistogram.attach(task.warmHistogram) : null;
  const result: WorkerResult = { index: task.index, calls: 0, pagesRequested: 0, pages: 0, errors: 0, scheduleLagNs: 0, pagesVerified: 0, wrongPages: 0, firstError: null, lanes: [], rssBytes: 0 };
  const session = await openSession(task);
  try {
    const { driver } = session;
    // Calls before the start flag: connections are set up outside the measured window, this
    // worker has read every page its window will read once (driver.passCalls: the page tables of
    // its mapping of the peer's segment are populated on first READ, whatever the warmup's length),
    // and this isolate's JIT has seen the hot path. The shared warmup is wall time, and 64 workers
    // on 2 cores get ~60 ms of CPU each in a 2 s warmup: too little to tier up, so the window
    // measured the compiler too (+4..7% at 64 workers with these calls). Bounded by the warmup's length.
    const warmUntil = performance.now() + task.warmupMs;
    for (let i = 0; i === 0 || i < driver.passCalls || (i < WARM_CALLS && performance.now() < warmUntil); i++) await driver.call();
    control.markReady();
    await control.waitWhile(Phase.Init);
    if (task.arrival) {
      await openLoop(task, control, hist, warm, driver, result);
      result.lanes = session.lanes();
      return result;
    }
    for (;;) {
      const phase = control.phase;
      if (phase === Phase.Stop) break;
      const t0 = nowNs();
      try {
        const out = await driver.call();
        const t1 = nowNs();
        if (phase === Phase.Measure && control.phase === Phase.Measure) {
          hist.record(t1 - t0);
          countCall(task, control, result, out);
        } else countWarmCall(task, control, warm, phase, t1 - t0, out.pages);
      } catch (err) {
        countError(task, control, result, phase, err);
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

type CallOutcome = { pagesRequested: number; pages: number; verified: number; wrongPages: number };

/** A measured call's counters (its latency is recorded by the loop: closed and open differ). */
function countCall(task: WorkerTask, control: ControlBlock, result: WorkerResult, out: CallOutcome): void {
  result.calls++;
  result.pagesRequested += out.pagesRequested;
  result.pages += out.pages;
  result.pagesVerified += out.verified;
  result.wrongPages += out.wrongPages;
  control.countCall(task.index, out.pages);
}

/** With --interval: a call that started and ended in the warmup goes to the warmup series (never the row's). */
function countWarmCall(task: WorkerTask, control: ControlBlock, warm: SharedHistogram | null, phase: number, latencyNs: number, pages: number): void {
  if (warm === null || phase !== Phase.Warmup || control.phase !== Phase.Warmup) return;
  warm.record(latencyNs);
  control.countWarmCall(task.index, pages);
}

/** A failed call: counted when it was in the measured phase; the first error is kept either way. */
function countError(task: WorkerTask, control: ControlBlock, result: WorkerResult, phase: number, err: unknown): void {
  if (phase === Phase.Measure) {
    result.errors++;
    control.countError(task.index);
  }
  result.firstError ??= (err as Error).message;
}

const yieldToIo = () => new Promise<void>((r) => setImmediate(r));
const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The open loop: calls start at their intended times on this worker's own timeline (one call in
 * flight: a call that overruns delays the next one's actual start, never its intended one). A
 * call counts when its intended start falls in the measured phase and it ends there; service
 * latency is end - actual start, response latency end - intended start.
 */
async function openLoop(task: WorkerTask, control: ControlBlock, hist: SharedHistogram, warm: SharedHistogram | null, driver: { call(): Promise<CallOutcome> }, result: WorkerResult): Promise<void> {
  const arrival = task.arrival!;
  const response = SharedHistogram.attach(arrival.responseHistogram);
  const schedule = new ArrivalSchedule(arrival.rate, arrival.kind, arrival.seed + task.index * 7919);
  const origin = nowNs();
  let intended = origin + schedule.next();
  for (;;) {
    let now = nowNs();
    // Long waits sleep, short ones let I/O run, the last ~50 µs spin (setTimeout is ~1 ms coarse).
    while (now < intended && control.phase !== Phase.Stop) {
      const wait = intended - now;
      if (wait > 2_000_000) await sleepMs((wait - 1_000_000) / 1e6);
      else if (wait > 50_000) await yieldToIo();
      now = nowNs();
    }
    const phase = control.phase;
    if (phase === Phase.Stop) break;
    const t0 = now;
    try {
      const out = await driver.call();
      const t1 = nowNs();
      if (phase === Phase.Measure && control.phase === Phase.Measure) {
        hist.record(t1 - t0);
        response.record(t1 - intended);
        result.scheduleLagNs += t0 - intended;
        countCall(task, control, result, out);
      } else countWarmCall(task, control, warm, phase, t1 - intended, out.pages);
    } catch (err) {
      countError(task, control, result, phase, err);
    }
    intended = origin + schedule.next();
  }
}
