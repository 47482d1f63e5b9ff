/** The row's control block as an object, and the row outcome union flattened by report/ only. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { ControlBlock, Phase } from '../../src/bench/engine/control-block.js';
import { outcomeToRow, type Measurement, type RowIdentity } from '../../src/bench/report/outcome.js';

test('ControlBlock: phase, ready/done and live counters, seen the same from an attached copy', () => {
  const main = ControlBlock.create(3);
  const w = ControlBlock.attach(main.buffer);
  assert.is(w.workers, 3);
  assert.is(w.phase, Phase.Init);
  main.setPhase(Phase.Measure);
  assert.is(w.phase, Phase.Measure);
  w.markReady();
  w.markReady();
  assert.is(main.ready, 2);
  w.countCall(0, 32);
  w.countCall(2, 32);
  w.countCall(2, 16);
  w.countError(1);
  w.countWarmCall(1, 7);
  assert.equal(main.totals(), { calls: 3, pages: 80, errors: 1, warmPages: 7 });
  w.markDone();
  assert.is(main.done, 1);
  assert.throws(() => ControlBlock.create(0), /positive integer/);
  assert.throws(() => ControlBlock.attach(new SharedArrayBuffer(6)), /not a control block/);
});

test('ControlBlock: a worker thread waiting for the start wakes when main sets the phase', async () => {
  const main = ControlBlock.create(1);
  const src = `
    const { workerData, parentPort } = require('node:worker_threads');
    const a = new Int32Array(workerData);
    const keep = setInterval(() => {}, 1000); // waitAsync alone does not keep a thread alive (piscina's workers are kept)
    (async () => {
      Atomics.add(a, 1, 1); Atomics.notify(a, 1);
      while (Atomics.load(a, 0) === 0) { const w = Atomics.waitAsync(a, 0, 0, 1000); if (w.async) await w.value; }
      parentPort.postMessage(Atomics.load(a, 0));
      clearInterval(keep);
    })();`;
  const worker = new Worker(src, { eval: true, workerData: main.buffer });
  while (main.ready < 1) await new Promise((r) => setTimeout(r, 5));
  main.setPhase(Phase.Warmup);
  const seen = await new Promise((r) => worker.once('message', r));
  await worker.terminate();
  assert.is(seen, Phase.Warmup);
});

test('ControlBlock.waitWhile returns once the phase moves on', async () => {
  const c = ControlBlock.create(1);
  const t = setInterval(() => {}, 1000);
  setTimeout(() => c.setPhase(Phase.Stop), 20);
  await c.waitWhile(Phase.Init);
  clearInterval(t);
  assert.is(c.phase, Phase.Stop);
});

const identity: RowIdentity = {
  path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 4096, batchSize: 4, threads: 2, components: 1, tokensPerPage: 16, phase: 'sweep', latUnit: 'batch_call', note: 'batch_get_v1 mla',
};
const m: Measurement = {
  calls: 10, pagesRequested: 40, pages: 40, errors: 0, pagesVerified: null, wrongPages: 0, elapsedNs: 2e9, latency: null, histogram: null, hitRate: 'get', transports: ['sysv/memory'], cpu: 50, rssPerWorker: 100, firstError: null,
};

test('outcomeToRow: measured, aborted (partial window or none) and failed', () => {
  const ok = outcomeToRow({ kind: 'measured', identity, measurement: m });
  assert.ok(ok.ok);
  assert.is(ok.pages_per_s, 20);
  assert.is(ok.duration_s, 2);
  assert.is(ok.note, 'batch_get_v1 mla');
  const part = outcomeToRow({ kind: 'aborted', identity, measurement: { ...m, elapsedNs: 0.5e9 } });
  assert.is(part.duration_s, 0.5);
  assert.match(part.note, /aborted: measured 0\.50 s of the window/);
  const none = outcomeToRow({ kind: 'aborted', identity, measurement: null });
  assert.not.ok(none.ok);
  assert.is(none.note, 'aborted before it was measured');
  const failed = outcomeToRow({ kind: 'failed', identity, reason: 'worker crashed', transports: [], calls: 3, errors: 1 });
  assert.not.ok(failed.ok);
  assert.is(failed.note, 'failed: worker crashed');
  assert.is(failed.calls, 3);
  const wrong = outcomeToRow({ kind: 'measured', identity, measurement: { ...m, pagesVerified: 40, wrongPages: 2 } });
  assert.not.ok(wrong.ok);
  assert.match(wrong.note, /WRONG PAGES: 2 of 40 verified pages/);
  assert.is(wrong.pages_verified, 40);
  assert.is(wrong.wrong_pages, 2);
  assert.is(ok.pages_verified, null, 'verify off: null');
  assert.is(ok.wrong_pages, null);
});

test.run();
