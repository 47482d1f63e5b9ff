/** The knee rule on synthetic curves, and the SLO peak. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { kneeIndex, markKneeAndSlo } from '../../src/bench/report/knee.js';
import { makeRow, type LatencySummary } from '../../src/bench/report/metrics.js';
import { markPeak } from '../../src/bench/report/peak.js';
import { plotReport } from '../../src/bench/report/plot.js';
import { makeReport } from '../../src/bench/report/metrics.js';
import type { Row } from '../../src/bench/report/types.js';
import { schemaErrors } from '../helpers/schema.js';

const pts = (t: number[], l: number[]) => t.map((throughput, i) => ({ throughput, latency: l[i] }));

test('knee: linear scaling then a ceiling (closed loop, Little: L = N / T)', () => {
  // N = 1,2,4,8,16; throughput saturates at 4 workers; latency = N / T.
  const n = [1, 2, 4, 8, 16];
  const t = [100, 200, 380, 400, 400];
  assert.is(kneeIndex(pts(t, n.map((x, i) => x / t[i]))), 2);
});

test('knee: none while throughput still grows faster than latency; none under 3 points', () => {
  assert.is(kneeIndex(pts([100, 200, 400, 800], [1, 1, 1.1, 1.2])), null);
  assert.is(kneeIndex(pts([100, 100], [1, 2])), null);
  assert.is(kneeIndex(pts([100, 150, 160], [1, 1, null as unknown as number])), null);
});

test('knee: latency grows first, throughput barely moves (a knee at the first point)', () => {
  assert.is(kneeIndex(pts([100, 110, 115], [1, 2, 4])), 0);
});

const SEC = 1e9;
const lat = (p50us: number, p99us: number): LatencySummary => ({ count: 10_000, min_ns: 1, max_ns: p99us * 2000, mean_ns: p50us * 1000, p50_ns: p50us * 1000, p90_ns: p99us * 800, p95_ns: p99us * 900, p99_ns: p99us * 1000, p999_ns: p99us * 1500, p9999_ns: null });
const sweepRow = (threads: number, pagesPerS: number, p50: number, p99: number, over: Partial<Row> = {}): Row => ({
  ...makeRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 131072, batchSize: 32, threads, calls: 10_000, pages: pagesPerS, elapsedNs: SEC, latency: lat(p50, p99), phase: 'sweep' }),
  ...over,
});

test('SLO peak: the best row whose p99 meets the SLO; knee marked; aborted rows never', () => {
  const rows = [sweepRow(1, 100, 10, 20), sweepRow(2, 200, 10, 25), sweepRow(4, 380, 10.5, 40), sweepRow(8, 400, 20, 90), sweepRow(16, 410, 39, 300)];
  const marked = markKneeAndSlo(markPeak(rows), 50);
  assert.equal(marked.map((r) => r.peak), [false, false, false, false, true]);
  assert.equal(marked.map((r) => r.slo_peak), [false, false, true, false, false]);
  assert.equal(marked.map((r) => r.knee), [false, false, true, false, false]);
  const none = markKneeAndSlo(rows, null);
  assert.ok(none.every((r) => r.slo_peak === null));
  const withAborted = markKneeAndSlo([...rows.slice(0, 2), { ...rows[2], aborted: true }, rows[3]], 100);
  assert.equal(withAborted.map((r) => r.slo_peak), [false, false, false, true]);
  const baseline = markKneeAndSlo([{ ...rows[0], phase: 'latency-baseline' }], 100);
  assert.is(baseline[0].knee, null);
  assert.is(baseline[0].slo_peak, false);
});

test('plot marks the SLO peak and the knee; the report validates', async () => {
  const rows = markKneeAndSlo(markPeak([sweepRow(1, 100, 10, 20), sweepRow(2, 200, 10, 25), sweepRow(4, 380, 10.5, 40), sweepRow(8, 400, 20, 90)]), 50);
  const report = makeReport({
    command: 'x', host: { platform: 'linux', os_release: '6', arch: 'x64', cpu_model: 'c', cpu_count: 2, node_version: 'v20', package_version: '0.1.0', ucx_version: null, hostname: 'h' },
    meta: { mode: 'saturation', protocol: 'shm', slo_p99_us: 50 }, results: rows,
  });
  assert.is(schemaErrors(report), null);
  const svg = await plotReport(report);
  assert.ok(svg!.includes('>SLO-PEAK p99 40 µs ≤ 50 · knee<'), 'one label for the SLO peak and knee at 4 workers');
  assert.ok(svg!.includes('>PEAK 400 pages/s<'));
});

test.run();
