/** Honest numbers: the percentile-sample rule, aborted rows, and where PEAK may (not) be. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { makeReport, makeRow, type LatencySummary, type RowInput } from '../../src/bench/report/metrics.js';
import { markPeak, markPeakFor } from '../../src/bench/report/peak.js';
import { outcomeToRow } from '../../src/bench/report/outcome.js';
import { hicacheCells, HICACHE_COLUMNS, noteCell } from '../../src/bench/report/render.js';
import { addRatios } from '../../src/bench/compare.js';
import type { Row } from '../../src/bench/report/types.js';
import { schemaErrors } from '../helpers/schema.js';

const SEC = 1e9;
const lat = (count: number): LatencySummary => ({
  count, min_ns: 1000, max_ns: 9000, mean_ns: 2000, p50_ns: 2000, p90_ns: 3000, p95_ns: 4000, p99_ns: 5000, p999_ns: 8000, p9999_ns: 9000,
});
const row = (over: Partial<RowInput> = {}): Row =>
  makeRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 131072, batchSize: 32, threads: 1, calls: 5000, pages: 1000, elapsedNs: SEC, latency: lat(5000), phase: 'sweep', ...over });

test('percentiles: p999 null below 1000 samples, p99 below 100, p95 below 20, p90 below 10; never the max', () => {
  const at = (n: number) => row({ calls: n, latency: lat(n) });
  const r226 = at(226);
  assert.is(r226.calls, 226);
  assert.is(r226.lat_us_p999, null);
  assert.is(r226.lat_us_p99, 5);
  assert.is(r226.lat_us_max, 9);
  assert.is(at(999).lat_us_p999, null);
  assert.is(at(1000).lat_us_p999, 8);
  assert.is(at(99).lat_us_p99, null);
  assert.is(at(100).lat_us_p99, 5);
  assert.is(at(19).lat_us_p95, null);
  assert.is(at(20).lat_us_p95, 4);
  assert.is(at(9).lat_us_p90, null);
  assert.is(at(10).lat_us_p90, 3);
  const one = at(1);
  assert.is(one.lat_us_p50, 2);
  assert.is(one.lat_us_max, 9);
});

test('percentiles: the table says why a percentile is missing', () => {
  const cells = hicacheCells(row({ calls: 226, latency: lat(226) }));
  const p999 = cells[HICACHE_COLUMNS.findIndex((c) => c.header === 'p999 µs')];
  const p99 = cells[HICACHE_COLUMNS.findIndex((c) => c.header === 'p99 µs')];
  assert.is(p999, 'n/a (<1000 calls)');
  assert.is(p99, '5.0');
});

test('aborted rows: aborted true, the window they measured, never PEAK even when fastest', () => {
  const identity = { path: 'hicache-get', op: 'get' as const, protocol: 'shm' as const, blockSize: 131072, batchSize: 32, threads: 4, components: 1, tokensPerPage: 64, phase: 'sweep' as const, latUnit: 'batch_call' as const, note: 'batch_get_v1' };
  const m = { calls: 5000, pagesRequested: 160000, pages: 160000, errors: 0, pagesVerified: null, wrongPages: 0, elapsedNs: 0.86e9, latency: lat(5000), histogram: null, hitRate: 'get' as const, transports: [], cpu: null, rssPerWorker: null, firstError: null };
  const aborted = outcomeToRow({ kind: 'aborted', identity, measurement: m });
  assert.is(aborted.aborted, true);
  assert.is(aborted.duration_s, 0.86);
  assert.match(noteCell(aborted), /^ABORTED; batch_get_v1; aborted: measured 0\.86 s of the window/);
  const full = outcomeToRow({ kind: 'measured', identity: { ...identity, threads: 2 }, measurement: { ...m, pages: 1000, elapsedNs: 3e9 } });
  assert.is(full.aborted, false);
  const marked = markPeak([full, aborted]);
  assert.equal(marked.map((r) => r.peak), [true, false]);
  assert.equal(markPeak([aborted]).map((r) => r.peak), [false]);
  const rep = makeReport({ command: 'x', host: { platform: 'linux', os_release: '6', arch: 'x64', cpu_model: 'c', cpu_count: 2, node_version: 'v20', package_version: '0.1.0', ucx_version: null, hostname: 'h' }, meta: { mode: 'saturation', protocol: 'shm' }, results: marked });
  assert.is(schemaErrors(rep), null);
});

test('PEAK: never in latency or throughput modes, never on a latency-baseline row', () => {
  const rows = [row({ threads: 1, pages: 10 }), row({ threads: 8, pages: 20 })];
  assert.equal(markPeakFor('latency', rows).map((r) => r.peak), [false, false]);
  assert.equal(markPeakFor('throughput', rows).map((r) => r.peak), [false, false]);
  assert.equal(markPeakFor('saturation', rows).map((r) => r.peak), [false, true]);
  const baseline = row({ phase: 'latency-baseline', batchSize: 1, pages: 999 });
  assert.equal(markPeakFor('suite', [baseline, ...rows]).map((r) => r.peak), [false, false, true]);
});

test('PEAK: per block size and per measure (compare never picks across block sizes)', () => {
  const small = row({ path: 'transport-read', op: 'read', blockSize: 4096, pages: 1000 });
  const big = row({ path: 'transport-read', op: 'read', blockSize: 1 << 20, pages: 1000 });
  const marked = markPeak([small, big]);
  assert.equal(marked.map((r) => r.peak), [true, true]);
});

test('compare: an aborted row never feeds a ratio', () => {
  // Both over tcp (a ratio is only printed between rows on the same transport).
  const mc = row({ system: 'mooncake', path: 'transfer-engine', op: '', protocol: 'tcp', transports: ['mooncake/tcp'], pages: 0, ops: 1000, bytes: 1e9 });
  const ours = row({ path: 'transport-read', op: 'read', protocol: 'tcp' });
  const cut = { ...row({ path: 'store-get', op: 'read', protocol: 'tcp' }), aborted: true };
  const rows = [mc, ours, cut];
  addRatios(rows, [131072]);
  assert.ok(ours.extra?.ratio_vs_mooncake !== undefined);
  assert.is(cut.extra?.ratio_vs_mooncake, undefined);
});

test.run();
