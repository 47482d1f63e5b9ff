/** Repeated trials: the statistics on fixed samples, and one row from N trial rows. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ci95, ci95Positive, cv, mean, median, stdev, t975 } from '../../src/bench/report/stats.js';
import { combineTrials } from '../../src/bench/report/trials.js';
import { makeRow, failedRow, type LatencySummary } from '../../src/bench/report/metrics.js';
import { markPeak } from '../../src/bench/report/peak.js';
import { SharedHistogram } from '../../src/bench/histogram.js';
import type { Row } from '../../src/bench/report/types.js';

const close = (a: number, b: number, eps = 1e-3) => assert.ok(Math.abs(a - b) <= eps, `${a} vs ${b}`);

test('stats: median, mean, sample stdev, cv on fixed samples', () => {
  assert.is(median([3, 1, 2]), 2);
  assert.is(median([4, 1, 3, 2]), 2.5);
  assert.is(median([]), null);
  assert.is(mean([10, 12, 14]), 12);
  assert.is(stdev([10, 12, 14]), 2);
  assert.is(stdev([5]), null);
  close(cv([10, 12, 14])!, 2 / 12, 1e-12);
  assert.is(cv([0, 0]), null);
});

test('stats: 95% CI of the mean with Student t (n=3: t=4.303; n=5: t=2.776; big n ~ 1.96)', () => {
  const [lo, hi] = ci95([10, 12, 14])!;
  // 12 ± 4.303 × 2 / √3 = 12 ± 4.9687
  close(lo, 7.0313);
  close(hi, 16.9687);
  const [lo5, hi5] = ci95([1, 2, 3, 4, 5])!;
  // 3 ± 2.776 × 1.5811 / √5 = 3 ± 1.9630
  close(lo5, 1.037);
  close(hi5, 4.963);
  assert.is(ci95([7]), null);
  assert.is(t975(1), 12.706);
  assert.is(t975(1000), 1.96);
  assert.throws(() => t975(0), /degrees of freedom/);
});

const SEC = 1e9;
function trial(pages: number, p99us: number, samples = [100_000, 200_000]): Row {
  const h = SharedHistogram.create();
  for (const v of samples) h.record(v);
  const lat: LatencySummary = { count: 1000, min_ns: 1000, max_ns: p99us * 2000, mean_ns: 2000, p50_ns: 2000, p90_ns: 3000, p95_ns: 4000, p99_ns: p99us * 1000, p999_ns: p99us * 1500, p9999_ns: null };
  return makeRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 131072, batchSize: 32, threads: 4, tokensPerPage: 64, calls: 1000, pages, pagesRequested: pages, elapsedNs: SEC, latency: lat, histogram: h.encode(), phase: 'sweep', note: 'batch_get_v1' });
}

test('combineTrials: medians, summed counters, CI, cv, merged histogram; not noisy under 5%', () => {
  const row = combineTrials([trial(10_000, 100), trial(10_400, 120), trial(10_200, 90)]);
  assert.is(row.trials, 3);
  assert.is(row.pages_per_s, 10_200);
  assert.is(row.pages, 30_600);
  assert.is(row.calls, 3000);
  assert.is(row.duration_s, 3);
  assert.is(row.lat_us_p99, 100);
  assert.is(row.lat_us_max, 240);
  assert.is(row.tokens_per_s, 10_200 * 64);
  const [lo, hi] = row.pages_per_s_ci95!;
  // On log values (the geometric mean 10199 × / ÷ e^(4.303 × s_log / √3)): 9713.7 .. 10707.9
  close(lo, 9713.7, 0.05);
  close(hi, 10707.9, 0.05);
  assert.ok(row.throughput_gbps_ci95 !== null && row.lat_us_p99_ci95 !== null);
  close(row.cv!, 200 / 10200, 1e-4);
  assert.is(row.noisy, false);
  assert.is(SharedHistogram.decode(row.histogram!).count, 6);
  assert.match(row.note, /median of 3 trials \(cv 2\.0%\)/);
});

test("a noisy row's 95% CI stays positive (issue 26: [-2840, 23499] pages/s at 4 workers) and holds the median", () => {
  // mean ± t·s would be [-15422, 39155] here.
  const row = combineTrials([trial(2_600, 100), trial(24_000, 900), trial(9_000, 300)]);
  for (const [field, ci] of [['pages_per_s', row.pages_per_s_ci95], ['throughput_gbps', row.throughput_gbps_ci95], ['lat_us_p99', row.lat_us_p99_ci95]] as const) {
    assert.ok(ci !== null, field);
    const median = row[field]!;
    assert.ok(ci![0] > 0, `${field} CI ${ci} goes below zero`);
    assert.ok(ci![0] <= median && median <= ci![1], `${field} CI ${ci} misses the median ${median}`);
  }
  close(row.pages_per_s_ci95![0], 518.5, 0.5);
  close(row.pages_per_s_ci95![1], 131284.8, 1);
  // A trial that moved nothing has no logarithm: the plain interval, clipped at zero.
  assert.equal(ci95Positive([0, 10, 20]), [0, ci95([0, 10, 20])![1]]);
});

test('combineTrials: a noisy row (cv over the threshold), and a custom threshold', () => {
  const trials = [trial(10_000, 100), trial(14_000, 100), trial(9_000, 100)];
  const noisy = combineTrials(trials);
  assert.is(noisy.noisy, true);
  assert.match(noisy.note, /NOISY/);
  assert.is(combineTrials(trials, 0.5).noisy, false);
});

test('combineTrials: one trial has trials 1 and null spread; a failed trial fails the row', () => {
  const one = combineTrials([trial(10_000, 100)]);
  assert.is(one.trials, 1);
  assert.is(one.cv, null);
  assert.is(one.noisy, null);
  assert.is(one.pages_per_s_ci95, null);
  const failed = failedRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 131072, batchSize: 32, threads: 4 }, 'failed: worker crashed');
  assert.is(failed.trials, 0);
  const row = combineTrials([trial(10_000, 100), failed]);
  assert.not.ok(row.ok);
  assert.match(row.note, /trial 2 of 2 failed/);
});

test('PEAK compares medians, not one lucky trial', () => {
  // Row A: one very fast trial, median 10k; row B: steady at 12k.
  const a = combineTrials([trial(10_000, 100), trial(30_000, 100), trial(9_000, 100)]);
  const b = combineTrials([trial(12_000, 100), trial(12_100, 100), trial(11_900, 100)]);
  assert.equal(markPeak([a, { ...b, threads: 8 }]).map((r) => r.peak), [false, true]);
});

test.run();
