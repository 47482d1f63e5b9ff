/** runSweep(): the programmatic engine, end to end on shm with real processes and threads. */
import { test } from 'uvu';
import { performance } from 'node:perf_hooks';
import { execSync } from 'node:child_process';
import * as assert from 'uvu/assert';
import { runSweep, SweepConfigError, type SweepOptions } from '../../src/bench/sweep.js';
import type { RowProgress } from '../../src/bench/engine/row.js';
import { schemaErrors } from '../helpers/schema.js';
import { SharedHistogram } from '../../src/bench/histogram.js';

const small = { protocol: 'shm' as const, pageBytes: 16384, workingSet: 128, durationS: 0.6, warmupS: 0.2 };

test('a saturation sweep: one row per concurrency, rows merged from per-worker histograms, verified bytes, PEAK marked', async () => {
  const progress: RowProgress[] = [];
  const t0 = performance.now();
  const report = await runSweep({ ...small, mode: 'saturation', op: 'get', concurrencies: [1, 3], verify: true, sloP99Us: 1e9, onProgress: (p) => progress.push(p) });
  const wallS = (performance.now() - t0) / 1000;
  assert.is(schemaErrors(report), null);
  assert.is(report.results.length, 2);
  const [a, b] = report.results;
  for (const r of report.results) {
    assert.ok(r.ok, r.note);
    assert.is(r.hit_rate, 1);
    assert.ok(r.calls > 0 && r.lat_us_p50 !== null && r.histogram !== null);
    assert.is(r.pages, r.calls * 32, 'every call read its whole batch');
    // The window is never cut short, and lies inside the call (no upper bound in seconds: a loaded host stretches it).
    assert.ok(r.duration_s >= small.durationS - 0.05 && r.duration_s < wallS, `window ${r.duration_s} s of ${small.durationS} s, call ${wallS} s`);
    assert.ok(r.transports.some((t) => /^(sysv|posix)\//.test(t)), r.transports.join());
    assert.ok(r.cpu_client_pct !== null && r.rss_per_worker_bytes !== null);
  }
  assert.equal([a.threads, b.threads], [1, 3]);
  assert.is(report.results.filter((r) => r.peak).length, 1);
  assert.is(report.results.filter((r) => r.slo_peak).length, 1, 'an SLO every row meets: one SLO peak');
  assert.ok(report.results.every((r) => typeof r.knee === 'boolean'));
  assert.is(report.meta.slo_p99_us, 1e9);
  assert.ok(report.manifest.loadavg_before !== null && report.manifest.ucx_transports.length > 0);
  assert.is(report.manifest.client_cpu_pct.length, 2);
  assert.is(report.meta.transports.length > 0, true);
  assert.ok(progress.some((p) => p.stage === 'measure' || p.stage === 'done'));
  // "done" says the row's rate (it said 0 pages/s), the same as the row's within rounding.
  const done = progress.filter((p) => p.stage === 'done');
  assert.is(done.length, 2);
  done.forEach((p, i) => assert.ok(Math.abs(p.pagesPerS - report.results[i].pages_per_s) <= 0.01 * report.results[i].pages_per_s, `done ${p.pagesPerS} vs row ${report.results[i].pages_per_s}`));
});

test('suite on tcp: latency baseline + get/set/exists sweeps; every row marked smoke', async () => {
  const report = await runSweep({ ...small, protocol: 'tcp', mode: 'suite', concurrencies: [1, 2], durationS: 0.4 });
  assert.is(schemaErrors(report), null);
  assert.equal(report.results.map((r) => `${r.op}x${r.threads}${r.phase === 'latency-baseline' ? 'L' : ''}`), ['getx1L', 'setx1L', 'existsx1L', 'getx1', 'getx2', 'setx1', 'setx2', 'existsx1', 'existsx2']);
  assert.ok(report.results.every((r) => r.ok && r.smoke), report.results.map((r) => r.note).join(' | '));
  assert.is(report.meta.publishable, false);
  assert.is(report.results.filter((r) => r.peak).length, 3, 'one PEAK per op sweep');
  assert.ok(report.results.slice(0, 3).every((r) => r.batch_size === 1 && r.lat_unit === 'page'));
});

test('abort: the row in progress keeps what was measured, later rows are not run, the report is still valid', async () => {
  const controller = new AbortController();
  let abortedAt = Number.POSITIVE_INFINITY;
  // Abort half a second into the first row's measured window (however long its start took).
  let armed = false;
  const onProgress = (p: RowProgress) => {
    if (p.stage === 'measure' && !armed) {
      armed = true;
      setTimeout(() => {
        abortedAt = Date.now();
        controller.abort();
      }, 300);
    }
  };
  const report = await runSweep({ ...small, mode: 'saturation', op: 'get', concurrencies: [1, 2, 4], durationS: 5, signal: controller.signal, onProgress });
  assert.ok(Date.now() - abortedAt < 5000, 'stopped promptly');
  assert.is(schemaErrors(report), null);
  assert.ok(report.results.length >= 1 && report.results.length < 3, `${report.results.length} rows`);
  assert.ok(report.notes.some((n) => /abort/.test(n)), report.notes.join());
  const first = report.results[0];
  assert.ok(first.ok && first.aborted && /aborted: measured [\d.]+ s of the window/.test(first.note) && first.duration_s < 5, first.note);
  assert.not.ok(first.peak, 'an aborted row is never PEAK');
  assert.not.ok(report.results.some((r) => r.peak && r.aborted));
});

test('--repeat 2: each row two windows, median and spread; latency and throughput modes have no PEAK', async () => {
  const report = await runSweep({ ...small, mode: 'throughput', op: 'get', concurrencies: [2], repeat: 2 });
  assert.is(schemaErrors(report), null);
  const [r] = report.results;
  assert.ok(r.ok, r.note);
  assert.is(r.trials, 2);
  assert.ok(r.cv !== null && r.throughput_gbps_ci95 !== null && r.lat_us_p99_ci95 !== null && typeof r.noisy === 'boolean');
  assert.match(r.note, /median of 2 trials/);
  assert.not.ok(r.peak, 'throughput mode: no PEAK');
  assert.is(report.meta.repeat, 2);
});

test('a fixed host pool shared by every row: the same footprint at every concurrency, verified reads land in each worker\'s share', async () => {
  const report = await runSweep({ ...small, mode: 'saturation', op: 'get', concurrencies: [1, 4], batchSize: 8, verify: true });
  assert.is(schemaErrors(report), null);
  // auto: 2 x the widest row's in-flight pages (4 workers x batch 8).
  assert.is(report.meta.host_pool_pages, 64);
  assert.is(report.meta.host_pool_bytes, 64 * 16384);
  assert.ok(report.notes.some((n) => /^host pool: 1 MiB \(64 pages\) in every row, shared by its workers/.test(n)), report.notes.join(' | '));
  for (const r of report.results) {
    assert.ok(r.ok, r.note);
    assert.match(r.note, /host pool 1 MiB shared by \d/);
    assert.is(r.wrong_pages, 0);
    assert.is(r.pages_verified, r.pages);
  }
  const perWorker = await runSweep({ ...small, mode: 'throughput', op: 'get', concurrencies: [2], batchSize: 8, verify: true, hostPool: 'per-worker' });
  assert.ok(perWorker.results[0].ok, perWorker.results[0].note);
  assert.is(perWorker.meta.host_pool, 'per-worker');
  assert.is(perWorker.meta.host_pool_bytes, null);
});

test('saturation --rate-sweep: open-loop rows at one concurrency, latency vs offered load, both latencies', async () => {
  const report = await runSweep({ ...small, mode: 'saturation', op: 'get', concurrencies: [2], batchSize: 4, rateSweep: [100, 400], arrival: 'poisson' });
  assert.is(schemaErrors(report), null);
  assert.equal(report.results.map((r) => r.rate_offered), [100, 400]);
  for (const r of report.results) {
    assert.ok(r.ok, r.note);
    assert.is(r.arrival, 'poisson');
    assert.is(r.threads, 2);
    assert.ok(r.rate_achieved! > 0 && r.response_lat_us_p50 !== null && r.response_histogram !== null);
    assert.match(r.note, /open loop \d+ calls\/s poisson/);
  }
  assert.is(report.meta.arrival, 'poisson');
  const closed = await runSweep({ ...small, mode: 'throughput', op: 'exists', concurrencies: [1] });
  assert.is(closed.results[0].arrival, 'closed');
  assert.is(closed.results[0].rate_offered, null);
  assert.is(closed.results[0].response_lat_us_p99, null);
});

test('intervalS: open-loop intervals are the response histogram cut in time, bucket for bucket, every trial\'s; closed loop the service one', async () => {
  const report = await runSweep({ ...small, mode: 'throughput', op: 'get', concurrencies: [2], batchSize: 4, rate: 400, repeat: 2, intervalS: 0.2 });
  assert.is(schemaErrors(report), null);
  const [r] = report.results;
  assert.ok(r.ok, r.note);
  const ivs = r.intervals!;
  assert.equal([...new Set(ivs.map((i) => i.trial))], [1, 2]);
  for (const t of [1, 2]) {
    const phases = ivs.filter((i) => i.trial === t).map((i) => i.phase);
    assert.ok(phases[0] === 'warmup' && phases.at(-1) === 'measure' && phases.indexOf('measure') > 0, phases.join());
  }
  const measured = ivs.filter((i) => i.phase === 'measure');
  assert.is(measured.reduce((s, i) => s + i.calls, 0), r.calls);
  const cut = SharedHistogram.merge(measured.filter((i) => i.histogram).map((i) => SharedHistogram.decode(i.histogram!)));
  assert.equal(cut.toHdr().toJSON(), SharedHistogram.decode(r.response_histogram!).toHdr().toJSON(), 'response latency, exactly');
  assert.is(report.meta.interval_s, 0.2);
  const progress: RowProgress[] = [];
  const closed = await runSweep({ ...small, mode: 'throughput', op: 'exists', concurrencies: [1], intervalS: 0.1, onProgress: (p) => progress.push(p) });
  // Progress keeps its 500 ms pace however short the interval (0.6 s window: 6 intervals, at most 2 progress lines).
  const during = progress.filter((p) => p.stage === 'measure').length;
  assert.ok(during >= 1 && during <= 3, `${during} progress events in the window`);
  assert.ok(closed.results[0].intervals!.filter((i) => i.phase === 'measure').length >= 4);
  const c = closed.results[0];
  const cc = SharedHistogram.merge(c.intervals!.filter((i) => i.phase === 'measure' && i.histogram).map((i) => SharedHistogram.decode(i.histogram!)));
  assert.equal(cc.toHdr().toJSON(), SharedHistogram.decode(c.histogram!).toHdr().toJSON(), 'service latency, exactly');
  assert.is(c.intervals!.filter((i) => i.phase === 'measure').reduce((s, i) => s + i.pages, 0), c.pages);
  const plain = await runSweep({ ...small, mode: 'throughput', op: 'exists', concurrencies: [1], durationS: 0.2 });
  assert.is(plain.results[0].intervals, null);
  assert.is(plain.meta.interval_s, null);
});

test('--op prefetch: one request per call, exists in 128-key chunks then gets of the hit prefix; hit ratio; readers per key', async () => {
  const report = await runSweep({ ...small, mode: 'throughput', op: 'prefetch', concurrencies: [2], prefixPages: 300, hitRatio: 0.5, readersPerKey: 2, verify: true });
  assert.is(schemaErrors(report), null);
  const [r] = report.results;
  assert.ok(r.ok, r.note);
  assert.is(r.op, 'prefetch');
  assert.is(r.lat_unit, 'request');
  assert.is(r.pages_requested, r.calls * 300, 'every request asks for its 300 pages');
  assert.is(r.pages, r.calls * 150, 'and loads its 150-page hit prefix');
  assert.is(r.hit_rate, 0.5);
  assert.is(r.pages_verified, r.pages);
  assert.is(r.wrong_pages, 0);
  assert.match(r.note, /300 pages\/request, hit ratio 0.5, 2 readers\/key/);
  assert.is(report.meta.prefix_pages, 300);
});

test('bad options are clear errors before anything starts', async () => {
  const cases: [Partial<SweepOptions>, RegExp][] = [
    [{ concurrencies: [] }, /concurrencies must be a non-empty list/],
    [{ concurrencies: [0] }, /concurrencies must be a non-empty list/],
    [{ pageBytes: 1 << 30 }, /over maxBytes .*: lower workingSet, pageBytes, batchSize or the largest of concurrencies, or raise maxBytes$/],
    [{ batchSize: 0 }, /batchSize must be a positive integer/],
    [{ intervalS: 0.05 }, /intervalS must be a number of seconds >= 0.1/],
    [{ intervalS: Number.NaN }, /intervalS must be/],
  ];
  for (const [opts, pattern] of cases) {
    try {
      await runSweep({ ...small, mode: 'saturation', ...opts });
      assert.unreachable();
    } catch (err) {
      assert.instance(err, SweepConfigError);
      assert.match((err as Error).message, pattern);
    }
  }
  try {
    await runSweep({ ...small, mode: 'latency', protocol: 'rdma' });
  } catch (err) {
    assert.match((err as Error).message, /protocol 'rdma' cannot run here|no usable/i);
  }
});

test('the producer dies after the first row: later rows fail with the reason (ok:false), the sweep goes on, the report is valid', async () => {
  let killed = false;
  const report = await runSweep({
    ...small,
    mode: 'saturation',
    op: 'get',
    concurrencies: [1, 2, 1],
    onRow: () => {
      if (!killed) {
        killed = true;
        // The producer is this process's child running producer-main.
        execSync(`pkill -KILL -P ${process.pid} -f producer-main || true`);
      }
    },
  });
  assert.is(schemaErrors(report), null);
  assert.is(report.results.length, 3);
  assert.ok(report.results[0].ok);
  for (const r of report.results.slice(1)) {
    assert.not.ok(r.ok, 'rows after the producer died cannot succeed');
    assert.ok(r.note.length > 0);
  }
});

test.run();
