/**
 * --interval: the interval series of a row (engine/intervals.ts), its report form (metrics
 * intervalOf, trials), the Markdown section, and the HdrHistogram interval log read back by
 * hdr-histogram-js's HistogramLogReader (what "standard tools read it" rests on).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import hdr from 'hdr-histogram-js';
import { SharedHistogram, countsIndex } from '../../src/bench/histogram.js';
import { IntervalSeries, toMeasured, type MeasuredInterval } from '../../src/bench/engine/intervals.js';
import { intervalOf, makeReport, makeRow, PERCENTILE_MIN_SAMPLES } from '../../src/bench/report/metrics.js';
import { combineTrials } from '../../src/bench/report/trials.js';
import { intervalSection, renderMarkdown, sparkline } from '../../src/bench/report/render.js';
import { renderHlog, rowTag, HLOG_UNIT_NS } from '../../src/bench/report/hlog.js';
import { renderCsv, rowRecords } from '../../src/bench/report/csv.js';
import type { Host, Interval, Report, Row } from '../../src/bench/report/types.js';
import { schemaErrors } from '../helpers/schema.js';

const host: Host = {
  platform: 'linux', os_release: '6.1.0', arch: 'x64', cpu_model: 'Test CPU', cpu_count: 2,
  node_version: 'v20.20.2', package_version: '0.1.0', ucx_version: '1.13.1', hostname: 'box',
};

/** Two workers' histograms and a page counter, recorded by hand between boundaries. */
function fixture() {
  const hs = [SharedHistogram.create(), SharedHistogram.create()];
  let pages = 0;
  const rec = (w: number, ns: number, n = 1, p = 32) => {
    for (let i = 0; i < n; i++) {
      hs[w].record(ns);
      pages += p;
    }
  };
  return { hs, rec, pages: () => pages };
}

/** Samples in the bucket that holds `ns`. */
const bucketCount = (h: SharedHistogram, ns: number): number => {
  const counts = new Float64Array(h.countsLength);
  h.addCountsTo(counts);
  return counts[countsIndex(ns)];
};

test('IntervalSeries: each interval is exactly what was recorded between its boundaries, stragglers land in the last one', () => {
  const { hs, rec, pages } = fixture();
  const s = new IntervalSeries('measure', hs, pages, 1_000n);
  rec(0, 5_000, 10);
  rec(1, 7_000, 5);
  s.tick(2_000n);
  rec(0, 5_000, 1);
  rec(1, 1_000_000, 3, 16);
  s.tick(3_000n);
  s.tick(4_000n); // an empty interval
  rec(0, 9_000, 2);
  s.close(5_000n);
  rec(1, 9_000, 4); // ended before the phase changed, recorded after: still the last interval's
  s.settle();
  s.settle(); // idempotent
  const iv = s.intervals;
  assert.equal(iv.map((i) => [i.startNs, i.endNs]), [[1_000n, 2_000n], [2_000n, 3_000n], [3_000n, 4_000n], [4_000n, 5_000n]]);
  assert.equal(iv.map((i) => i.count.reduce((a, b) => a + b, 0)), [15, 4, 0, 6]);
  assert.equal(iv.map((i) => i.pages), [15 * 32, 32 + 3 * 16, 0, 6 * 32]);
  const m = toMeasured(iv, 0n);
  assert.equal(m.map((x) => x.calls), [15, 4, 0, 6]);
  assert.equal(m.map((x) => [x.startS, x.durationS]), [[1e-6, 1e-6], [2e-6, 1e-6], [3e-6, 1e-6], [4e-6, 1e-6]]);
  // Bucket for bucket: the first interval holds 10 x 5 µs and 5 x 7 µs, nothing else.
  const first = SharedHistogram.decode(m[0].histogram!);
  assert.is(bucketCount(first, 5_000), 10);
  assert.is(bucketCount(first, 7_000), 5);
  assert.is(first.count, 15);
  assert.is(m[2].latency, null);
  assert.is(m[2].histogram, null);
  // The intervals add up to the workers' histograms exactly.
  const whole = SharedHistogram.merge(hs);
  const sum = SharedHistogram.merge(m.filter((x) => x.histogram).map((x) => SharedHistogram.decode(x.histogram!)));
  assert.is(sum.count, whole.count);
  assert.equal(sum.toHdr().toJSON(), whole.toHdr().toJSON());
  assert.is(SharedHistogram.decode(m[1].histogram!).valueAtPercentile(100)! >= 1_000_000 * 0.999, true);
});

test('IntervalSeries: tick after close throws; a series needs histograms', () => {
  const { hs, pages } = fixture();
  const s = new IntervalSeries('warmup', hs, pages, 0n);
  s.close(10n);
  assert.throws(() => s.tick(20n), /after close/);
  assert.throws(() => new IntervalSeries('warmup', [], pages, 0n), /no histograms/);
});

test('SharedHistogram.addCountsTo / fromCounts: a snapshot difference is the histogram of the samples in between', () => {
  const h = SharedHistogram.create();
  for (let i = 1; i <= 1000; i++) h.record(i * 1000);
  const a = new Float64Array(h.countsLength);
  h.addCountsTo(a);
  for (let i = 1; i <= 500; i++) h.record(i * 3000);
  const b = new Float64Array(h.countsLength);
  h.addCountsTo(b);
  const diff = SharedHistogram.fromCounts(b.map((x, i) => x - a[i]));
  const direct = SharedHistogram.create();
  for (let i = 1; i <= 500; i++) direct.record(i * 3000);
  assert.is(diff.count, 500);
  for (const q of [0, 50, 90, 99, 100]) assert.is(diff.valueAtPercentile(q), direct.valueAtPercentile(q), `p${q}`);
  assert.throws(() => h.addCountsTo(new Float64Array(3)), /counters/);
  assert.throws(() => SharedHistogram.fromCounts({ index: [0], count: [-1] }), /does not fit/);
});

const interval = (over: Partial<MeasuredInterval> = {}): MeasuredInterval => ({
  phase: 'measure', startS: 3.0004, durationS: 0.5, calls: 99, pages: 99 * 32, latency: null, histogram: null, ...over,
});

test('intervalOf: rates over the interval, the row\'s bytes per page, p99 null below the row\'s minimum samples', () => {
  const h = SharedHistogram.create();
  for (let i = 0; i < 99; i++) h.record(10_000 + i);
  const few = intervalOf(interval({ latency: h.summary() }), 131072);
  assert.is(few.start_s, 3);
  assert.is(few.pages_per_s, 6336);
  assert.is(few.throughput_gbps, 0.8305);
  assert.ok(few.lat_us_p50 !== null);
  assert.is(few.lat_us_p99, null, `99 samples < ${PERCENTILE_MIN_SAMPLES.p99}`);
  h.record(20_000);
  const enough = intervalOf(interval({ calls: 100, latency: h.summary() }), 131072, 2);
  assert.ok(enough.lat_us_p99 !== null && enough.lat_us_p99 >= enough.lat_us_p50!);
  assert.is(enough.trial, 2);
  assert.equal(intervalOf(interval({ durationS: 0 }), 1).pages_per_s, 0, 'never NaN');
});

/** A row measured with intervals: 4 measured intervals of 250 samples each, 1 warmup interval. */
function rowWithIntervals(seed: number): { row: Row; whole: SharedHistogram } {
  const raw: MeasuredInterval[] = [];
  const whole = SharedHistogram.create();
  const warm = SharedHistogram.create();
  for (let i = 0; i < 50; i++) warm.record(100_000 + i);
  raw.push({ phase: 'warmup', startS: 1, durationS: 0.5, calls: 50, pages: 1600, latency: warm.summary(), histogram: warm.encode() });
  for (let k = 0; k < 4; k++) {
    const h = SharedHistogram.create();
    for (let i = 0; i < 250; i++) h.record(20_000 + ((i * 7919 + k * 31 + seed) % 5000) * (k + 1));
    whole.add(h);
    raw.push({ phase: 'measure', startS: 1.5 + k * 0.5, durationS: 0.5, calls: 250, pages: 250 * 32, latency: h.summary(), histogram: h.encode() });
  }
  const row = makeRow({
    path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 131072, batchSize: 32, threads: 2, calls: whole.count, pages: whole.count * 32,
    elapsedNs: 2e9, latency: whole.summary(), histogram: whole.encode(), phase: 'single', intervals: raw,
  });
  return { row, whole };
}

function reportOf(results: Row[]): Report {
  return makeReport({
    command: 'peercache-bench throughput --protocol shm --interval 500ms',
    host,
    meta: { mode: 'throughput', protocol: 'shm', transports: ['sysv/memory'], interval_s: 0.5 },
    results,
    date: new Date(Date.UTC(2026, 11, 3, 12, 0, 0, 400)),
  });
}

test('rows: intervals null without --interval, the series with it; the report is schema-valid', () => {
  const { row } = rowWithIntervals(1);
  assert.is(row.intervals!.length, 5);
  assert.equal(row.intervals!.map((i) => i.phase), ['warmup', 'measure', 'measure', 'measure', 'measure']);
  assert.is(row.intervals!.filter((i) => i.phase === 'measure').reduce((s, i) => s + i.calls, 0), row.calls);
  const plain = makeRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 4096, batchSize: 1, threads: 1, calls: 1, pages: 1, elapsedNs: 1e9, latency: null });
  assert.is(plain.intervals, null);
  assert.is(schemaErrors(reportOf([row, plain])), null);
  const bad = structuredClone(row);
  delete (bad.intervals![0] as Partial<Interval>).lat_us_p99;
  assert.ok(schemaErrors(reportOf([bad])) !== null, 'an interval field is never absent');
});

test('CSV: no intervals column (the series is the JSON\'s and the .hlog\'s)', () => {
  const csv = renderCsv(rowRecords(reportOf([rowWithIntervals(1).row])));
  assert.not.match(csv, /intervals|object Object/);
});

test('combineTrials: every trial\'s intervals in run order, numbered', () => {
  const a = rowWithIntervals(1).row;
  const b = rowWithIntervals(2).row;
  const row = combineTrials([a, b]);
  assert.is(row.intervals!.length, 10);
  assert.equal(row.intervals!.map((i) => i.trial), [1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
  assert.equal(combineTrials([a]).intervals, a.intervals);
});

test('Markdown: an Intervals section with the measured range, shape and worst p99; none without intervals', () => {
  const { row } = rowWithIntervals(1);
  const lines = intervalSection({ results: [row] });
  assert.is(lines[0], '## Intervals');
  assert.match(lines.at(-1)!, /^\| 0 \| get \| 2 \| 32 \| 4 \| 16K \| 16K \| ████ \| [\d.]+ \| 3\.20K → 3\.20K \|$/);
  assert.match(renderMarkdown(reportOf([row])), /## Intervals/);
  assert.equal(intervalSection({ results: [{ ...row, intervals: null }] }), []);
  assert.is(sparkline([0, 1, 2, 4]), '▁▃▅█');
  assert.is(sparkline([0, 0]), '▁▁');
});

test('.hlog: HistogramLogReader reads every interval back, per tag, with the row\'s count and percentiles (in µs)', () => {
  const { row, whole } = rowWithIntervals(3);
  const { row: other } = rowWithIntervals(4);
  const report = reportOf([row, other]);
  const log = renderHlog(report)!;
  assert.match(log, /^#\[StartTime: 1796299200\.000 \(seconds since epoch\)/m);
  assert.match(log, /^#\[BaseTime: 1796299200\.000 /m);
  assert.match(log, /microseconds/);
  const reader = new hdr.HistogramLogReader(log, 64);
  const byTag = new Map<string, { count: number; starts: number[]; merged: ReturnType<typeof hdr.build> }>();
  for (let h = reader.nextIntervalHistogram(); h !== null; h = reader.nextIntervalHistogram()) {
    const e = byTag.get(h.tag) ?? { count: 0, starts: [], merged: hdr.build({ bitBucketSize: 64, highestTrackableValue: 3_600_000_000 }) };
    e.count += h.totalCount;
    e.starts.push(h.startTimeStampMsec);
    e.merged.add(h);
    byTag.set(h.tag, e);
  }
  assert.equal([...byTag.keys()], [`${rowTag(row, 0)}-warmup`, rowTag(row, 0), `${rowTag(other, 1)}-warmup`, rowTag(other, 1)]);
  assert.is(rowTag(row, 0), 'row=0-get-c2-b32');
  const mine = byTag.get(rowTag(row, 0))!;
  assert.is(mine.count, row.calls);
  assert.is(byTag.get(`${rowTag(row, 0)}-warmup`)!.count, 50);
  // Absolute times: BaseTime + start_s.
  assert.equal(mine.starts, [1796299200000 + 1500, 1796299200000 + 2000, 1796299200000 + 2500, 1796299200000 + 3000]);
  for (const [q, ours] of [[50, row.lat_us_p50], [99, row.lat_us_p99]] as const) {
    const theirs = mine.merged.getValueAtPercentile(q);
    assert.ok(Math.abs(theirs - ours!) <= ours! * 0.002 + 1, `p${q}: log ${theirs} µs vs row ${ours} µs`);
  }
  assert.ok(Math.abs(mine.merged.getValueAtPercentile(50) - whole.valueAtPercentile(50)! / HLOG_UNIT_NS) < 2);
  assert.is(renderHlog(reportOf([{ ...row, intervals: null }])), null, 'no intervals, no log');
});

test.run();
