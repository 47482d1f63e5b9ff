// SharedHistogram against hdr-histogram-js (the reference), merging, encoding, and recording from
// worker_threads. This file is also the workers' entry point (see the isMainThread branch below).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import hdr from 'hdr-histogram-js';
import { test } from 'uvu';
import { InvalidArgumentError } from '../../src/errors.js';
import * as assert from 'uvu/assert';
import { prng } from '../../src/bench/engine/arrival.js';
import {
  DEFAULT_HIGHEST_TRACKABLE_NS,
  HEADER_BYTES,
  SHARED_HISTOGRAM_BYTES,
  SharedHistogram,
  countsIndex,
  countsLengthFor,
  sharedHistogramBytes,
  valueFromIndex,
} from '../../src/bench/histogram.js';
import { nowNs, wallNs } from '../../src/bench/clock.js';

const HIGHEST = DEFAULT_HIGHEST_TRACKABLE_NS;
const PERCENTILES = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100];
// Every half percent as well, to hit the count-rounding edges of small histograms.
const SWEEP = [...PERCENTILES, ...Array.from({ length: 201 }, (_, i) => i / 2)];

/** Deterministic PRNG (mulberry32) in [0, 1): the open-loop scheduler's. */
const rng = prng;

/** A worker's samples: log-uniform 1 .. 1e9 ns, from its own seed. */
function workerSamples(seed: number, n: number): number[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => Math.round(10 ** (9 * r())));
}

if (!isMainThread) {
  // Worker: attach to the main thread's buffer, record, report.
  const { buffer, seed, n } = workerData as { buffer: SharedArrayBuffer; seed: number; n: number };
  const h = SharedHistogram.attach(buffer);
  for (const v of workerSamples(seed, n)) h.record(v);
  parentPort!.postMessage('done');
} else {
  defineTests();
  test.run();
}

function reference(highest = HIGHEST): hdr.JsHistogram {
  const ref = hdr.build({
    bitBucketSize: 64,
    autoResize: false,
    lowestDiscernibleValue: 1,
    highestTrackableValue: highest,
    numberOfSignificantValueDigits: 3,
  });
  if (!(ref instanceof hdr.JsHistogram)) throw new Error('expected a JsHistogram');
  return ref;
}

/** Records samples in ours and in hdr-histogram-js (fed the value ours records: < 1 becomes 1). */
function both(samples: readonly number[], highest = HIGHEST): { ours: SharedHistogram; ref: hdr.JsHistogram } {
  const ours = SharedHistogram.create({ highestTrackableValue: highest });
  const ref = reference(highest);
  for (const v of samples) {
    ours.record(v);
    ref.recordValue(Math.max(1, v));
  }
  return { ours, ref };
}

/** Throws unless ours agrees with the reference on every percentile, count, min, max and mean. */
function assertAgrees(ours: SharedHistogram, ref: hdr.JsHistogram, samples: readonly number[], what: string): void {
  assert.is(ours.count, ref.totalCount, `${what}: count`);
  assert.is(ours.count, samples.length, `${what}: count vs samples`);
  for (const p of SWEEP) {
    assert.is(ours.valueAtPercentile(p), ref.getValueAtPercentile(p), `${what}: p${p}`);
  }
  const clipped = samples.map((v) => Math.max(1, v));
  const exactSum = clipped.reduce((a, b) => a + b, 0);
  assert.is(ours.min, ref.minNonZeroValue, `${what}: min`);
  assert.is(ours.min, clipped.reduce((a, b) => Math.min(a, b)), `${what}: exact min`);
  assert.is(ours.max, ref.maxValue, `${what}: max`);
  assert.is(ours.max, clipped.reduce((a, b) => Math.max(a, b)), `${what}: exact max`);
  assert.is(ours.sum, exactSum, `${what}: sum`);
  // Ours is the exact mean; HDR's uses bucket midpoints, off by at most half a bucket (< 1/2048).
  const mean = ours.mean ?? NaN;
  assert.is(mean, exactSum / samples.length, `${what}: exact mean`);
  assert.ok(Math.abs(mean - ref.mean) <= ref.mean / 2048, `${what}: mean ${mean} vs hdr ${ref.mean}`);
}

function defineTests(): void {
  const r = rng(1);
  const boundaries = [0, 1, 2, 3, 1023, 1024, 1025, 2047, 2048, 2049, 2050, 4095, 4096, 4097, 8191, 8192, 8193];
  for (let k = 14; k <= 41; k++) boundaries.push(2 ** k - 1, 2 ** k, 2 ** k + 1);
  boundaries.push(HIGHEST - 1, HIGHEST);
  const distributions: Record<string, number[]> = {
    'uniform 1..1e6': Array.from({ length: 50_000 }, () => 1 + Math.floor(r() * 1e6)),
    'log-uniform 1..1e10': Array.from({ length: 50_000 }, () => Math.round(10 ** (10 * r()))),
    'log-uniform 1e9..1h': Array.from({ length: 20_000 }, () => Math.round(10 ** (9 + 3.556 * r()))),
    'constant 777': Array(1000).fill(777),
    'constant 2048': Array(1000).fill(2048),
    'constant 1 hour': Array(10).fill(HIGHEST),
    'bucket boundaries x3': [...boundaries, ...boundaries, ...boundaries],
    'zeros and ones': [0, 0, 1, 0, 1, 1, 0],
    'one sample 5000': [5000],
    'two samples': [10, 1_000_000],
    'ten samples': Array.from({ length: 10 }, (_, i) => (i + 1) * 1000),
    'bimodal 100 vs 1e8': Array.from({ length: 9999 }, (_, i) => (i % 100 === 0 ? 1e8 + i : 100 + (i % 7))),
  };

  for (const [name, samples] of Object.entries(distributions)) {
    test(`percentiles, count, min, max, mean agree with hdr-histogram-js: ${name}`, () => {
      const { ours, ref } = both(samples);
      assertAgrees(ours, ref, samples, name);
    });
  }

  test('the agreement check itself fails on a one-sample difference', () => {
    // uvu's assert.throws rethrows assertion failures, so catch them by hand.
    const fails = (f: () => void): boolean => {
      try {
        f();
        return false;
      } catch {
        return true;
      }
    };
    const samples = [100, 200, 300, 400];
    const a = both(samples);
    assert.not.ok(fails(() => assertAgrees(a.ours, a.ref, samples, 'same')));
    a.ref.recordValue(5000);
    assert.ok(fails(() => assertAgrees(a.ours, a.ref, samples, 'extra sample')));
    const b = both([2048, 2048]);
    b.ours.record(2049); // bucket [2048, 2049]
    b.ref.recordValue(2050); // the next bucket: p100 and max differ, count does not
    assert.ok(fails(() => assertAgrees(b.ours, b.ref, [2048, 2048, 2049], 'neighbour bucket')));
  });

  test('64-bit path: values up to 2^53 - 1 agree with hdr-histogram-js (highest = MAX_SAFE_INTEGER)', () => {
    const samples: number[] = [];
    for (let k = 0; k <= 52; k++) samples.push(2 ** k, 2 ** k + 1, 2 ** (k + 1) - 1);
    samples.push(Number.MAX_SAFE_INTEGER, 2 ** 32 + 12345, 2 ** 45 + 2 ** 33 + 7);
    const rr = rng(7);
    for (let i = 0; i < 5000; i++) samples.push(Math.floor(2 ** (53 * rr())));
    const { ours, ref } = both(samples, Number.MAX_SAFE_INTEGER);
    assertAgrees(ours, ref, samples, 'max safe');
    assert.is(ours.clamped, 0);
  });

  test('bucket index, bucket values and array length match hdr-histogram-js exactly', () => {
    const ref = reference(Number.MAX_SAFE_INTEGER);
    for (let k = 0; k <= 52; k++) {
      for (const v of [2 ** k - 1, 2 ** k, 2 ** k + 1, 3 * 2 ** k]) {
        if (v >= 0 && v <= Number.MAX_SAFE_INTEGER) assert.is(countsIndex(v), ref.countsArrayIndex(v), `index of ${v}`);
      }
    }
    for (let i = 0; i < ref.countsArrayLength; i++) {
      assert.is(valueFromIndex(i), ref.valueFromIndex(i), `value of index ${i}`);
    }
    for (const highest of [2, 2047, 2048, 4096, 1e6, HIGHEST, 2 ** 52, Number.MAX_SAFE_INTEGER]) {
      assert.is(countsLengthFor(highest), reference(highest).countsArrayLength, `length for ${highest}`);
    }
    assert.is(SHARED_HISTOGRAM_BYTES, HEADER_BYTES + 4 * countsLengthFor(HIGHEST));
    assert.is(SharedHistogram.create().buffer.byteLength, SHARED_HISTOGRAM_BYTES);
    assert.is(sharedHistogramBytes(1e6), HEADER_BYTES + 4 * reference(1e6).countsArrayLength);
  });

  test('record: < 1, NaN, fractions and values above highestTrackableValue', () => {
    const h = SharedHistogram.create({ highestTrackableValue: 1_000_000 });
    for (const v of [0, -5, NaN, -Infinity, 0.5]) h.record(v);
    assert.is(h.count, 5);
    assert.is(h.max, 1);
    assert.is(h.clamped, 0);
    h.record(1500.9); // floored
    assert.is(h.max, 1500);
    h.record(5_000_000);
    h.record(Infinity);
    assert.is(h.clamped, 2);
    assert.is(h.max, 1_000_000);
    assert.is(h.count, 8);
    assert.is(h.sum, 5 + 1500 + 2_000_000);
    assert.is(h.valueAtPercentile(100), reference(1_000_000).highestEquivalentValue(1_000_000));
  });

  test('summary: nulls when empty, never NaN; percentiles capped at the exact max', () => {
    const h = SharedHistogram.create();
    assert.equal(h.summary(), {
      count: 0, min_ns: null, max_ns: null, mean_ns: null, p50_ns: null,
      p90_ns: null, p95_ns: null, p99_ns: null, p999_ns: null, p9999_ns: null,
    });
    assert.is(h.valueAtPercentile(50), null);
    assert.is(h.mean, null);
    h.record(5000); // bucket [5000, 5003]
    assert.is(h.valueAtPercentile(50), 5003);
    assert.equal(h.summary(), {
      count: 1, min_ns: 5000, max_ns: 5000, mean_ns: 5000, p50_ns: 5000,
      p90_ns: 5000, p95_ns: 5000, p99_ns: 5000, p999_ns: 5000, p9999_ns: 5000,
    });
    const { ours, ref } = both(distributions['log-uniform 1..1e10']);
    const s = ours.summary();
    const cap = (p: number): number => Math.min(ref.getValueAtPercentile(p), ref.maxValue);
    assert.equal(
      [s.p50_ns, s.p90_ns, s.p95_ns, s.p99_ns, s.p999_ns, s.p9999_ns],
      [cap(50), cap(90), cap(95), cap(99), cap(99.9), cap(99.99)],
    );
    assert.ok(Object.values(s).every((v) => v !== null && Number.isFinite(v)));
    assert.throws(() => h.valueAtPercentile(-1), (e: unknown) => e instanceof InvalidArgumentError && e.code === 'ERR_INVALID_ARG');
    assert.throws(() => h.valueAtPercentile(NaN), (e: unknown) => e instanceof InvalidArgumentError && e.code === 'ERR_INVALID_ARG');
  });

  test('reset() empties everything; recording afterwards starts from scratch', () => {
    const h = SharedHistogram.create();
    for (const v of distributions['uniform 1..1e6']) h.record(v);
    h.record(HIGHEST * 2);
    h.reset();
    assert.is(h.count, 0);
    assert.is(h.clamped, 0);
    assert.is(h.sum, 0);
    assert.is(h.summary().p99_ns, null);
    h.record(42);
    assert.equal([h.min, h.max, h.valueAtPercentile(0), h.valueAtPercentile(100)], [42, 42, 42, 42]);
  });

  test('merge of several histograms == histogram of the union; add() keeps exact min/max/sum', () => {
    const all = distributions['log-uniform 1..1e10'];
    const parts = [0, 1, 2, 3].map(() => SharedHistogram.create());
    all.forEach((v, i) => parts[i % 4].record(v));
    parts[3].record(HIGHEST + 1); // a clamped one
    const union = SharedHistogram.create();
    for (const v of all) union.record(v);
    union.record(HIGHEST + 1);
    const merged = SharedHistogram.merge(parts);
    assert.equal(merged.summary(), union.summary());
    assert.equal([merged.sum, merged.clamped], [union.sum, 1]);
    for (const p of SWEEP) assert.is(merged.valueAtPercentile(p), union.valueAtPercentile(p), `p${p}`);
    assert.is(merged.encode(), union.encode());
    assert.is(parts[0].count + parts[1].count + parts[2].count + parts[3].count, merged.count);
    // add() into an existing one (the main thread's row)
    const row = SharedHistogram.create();
    for (const p of parts) row.add(p);
    assert.equal(row.summary(), union.summary());
    // an empty histogram merges as a no-op
    row.add(SharedHistogram.create());
    assert.equal(row.summary(), union.summary());
  });

  test('add()/merge() reject a different layout, an empty list, and a bucket overflow (without changing anything)', () => {
    const a = SharedHistogram.create();
    assert.throws(() => a.add(SharedHistogram.create({ highestTrackableValue: 1e6 })), /highestTrackableValue/);
    assert.throws(() => SharedHistogram.merge([]), /no histograms/);
    const full = SharedHistogram.create();
    full.record(777);
    full.record(5);
    new Uint32Array(full.buffer, HEADER_BYTES, full.countsLength)[countsIndex(777)] = 0xffffffff;
    const one = SharedHistogram.create();
    one.record(5);
    one.record(777);
    assert.throws(() => full.add(one), /2\^32 - 1/);
    assert.is(full.count, 2);
    assert.is(new Uint32Array(full.buffer, HEADER_BYTES, full.countsLength)[countsIndex(5)], 1);
  });

  test('toHdr()/encode() reproduce the same percentiles in hdr-histogram-js; decode() round-trips', () => {
    for (const name of ['log-uniform 1..1e10', 'bucket boundaries x3', 'one sample 5000']) {
      const samples = distributions[name];
      const { ours } = both(samples);
      const asHdr = ours.toHdr();
      const encoded = ours.encode();
      assert.type(encoded, 'string');
      const decoded = hdr.decodeFromCompressedBase64(encoded, 64);
      const back = SharedHistogram.decode(encoded);
      assert.is(asHdr.totalCount, ours.count);
      assert.is(decoded.totalCount, ours.count);
      assert.is(back.count, ours.count);
      for (const p of SWEEP) {
        const want = ours.valueAtPercentile(p);
        assert.is(asHdr.getValueAtPercentile(p), want, `${name} toHdr p${p}`);
        assert.is(decoded.getValueAtPercentile(p), want, `${name} decoded p${p}`);
        assert.is(back.valueAtPercentile(p), want, `${name} decode() p${p}`);
      }
      assert.is(back.encode(), encoded);
      // decode() only has buckets: min/max/mean are bucket values, within the precision.
      const [min, max, mean] = [back.min ?? NaN, back.max ?? NaN, back.mean ?? NaN];
      assert.ok(Math.abs(min - (ours.min ?? NaN)) <= (ours.min ?? 0) / 1024, `${name} min ${min}`);
      assert.ok(Math.abs(max - (ours.max ?? NaN)) <= (ours.max ?? 0) / 1024, `${name} max ${max}`);
      assert.ok(Math.abs(mean - (ours.mean ?? NaN)) <= (ours.mean ?? 0) / 1024, `${name} mean ${mean}`);
    }
    assert.throws(() => SharedHistogram.decode('not base64 of a histogram'));
  });

  test('attach(): same memory; wrong or short buffers throw a clear error', () => {
    const h = SharedHistogram.create();
    h.record(1234);
    const view = SharedHistogram.attach(h.buffer);
    view.record(99);
    assert.equal([h.count, h.min, view.max], [2, 99, 1234]);
    const re = /SharedHistogram\.attach: not a SharedHistogram buffer/;
    assert.throws(() => SharedHistogram.attach(new ArrayBuffer(SHARED_HISTOGRAM_BYTES) as unknown as SharedArrayBuffer), re);
    assert.throws(() => SharedHistogram.attach(new SharedArrayBuffer(16)), /header alone/);
    assert.throws(() => SharedHistogram.attach(new SharedArrayBuffer(SHARED_HISTOGRAM_BYTES)), /magic/);
    const short = new SharedArrayBuffer(SHARED_HISTOGRAM_BYTES - 4);
    new Uint8Array(short).set(new Uint8Array(h.buffer, 0, HEADER_BYTES));
    assert.throws(() => SharedHistogram.attach(short), /135228 bytes, expected 135232/);
    const badVersion = new SharedArrayBuffer(SHARED_HISTOGRAM_BYTES);
    new Uint8Array(badVersion).set(new Uint8Array(h.buffer));
    new Int32Array(badVersion)[1] = 99;
    assert.throws(() => SharedHistogram.attach(badVersion), /layout version 99/);
    assert.throws(() => SharedHistogram.create({ highestTrackableValue: 1.5 }), (e: unknown) => e instanceof InvalidArgumentError && e.code === 'ERR_INVALID_ARG');
  });

  test('4 worker_threads record into their own attached buffers; the merged row is exact', async () => {
    const n = 100_000;
    const seeds = [11, 22, 33, 44];
    const hists = seeds.map(() => SharedHistogram.create());
    // Workers run this file as TypeScript: register tsx in the worker, then import it.
    const tsxApi = import.meta.resolve('tsx/esm/api');
    const entry = `import(${JSON.stringify(tsxApi)}).then((m) => { m.register(); return import(${JSON.stringify(import.meta.url)}); })`;
    await Promise.all(
      seeds.map(
        (seed, i) =>
          new Promise<void>((resolve, reject) => {
            const w = new Worker(entry, { eval: true, workerData: { buffer: hists[i].buffer, seed, n } });
            w.once('message', () => void w.terminate().then(() => resolve(), reject));
            w.once('error', reject);
          }),
      ),
    );
    const union = SharedHistogram.create();
    const ref = reference();
    const all: number[] = [];
    for (const seed of seeds) {
      for (const v of workerSamples(seed, n)) {
        union.record(v);
        ref.recordValue(v);
        all.push(v);
      }
    }
    hists.forEach((h) => assert.is(h.count, n));
    const merged = SharedHistogram.merge(hists);
    assert.is(merged.count, 4 * n);
    assert.equal(merged.summary(), union.summary());
    assert.is(merged.sum, union.sum);
    assert.is(merged.encode(), union.encode());
    assertAgrees(merged, ref, all, 'workers');
  });

  test('clock: nowNs is an increasing integer; wallNs is epoch ns', () => {
    let prev = nowNs();
    for (let i = 0; i < 10_000; i++) {
      const t = nowNs();
      assert.ok(Number.isInteger(t) && t >= prev, `nowNs ${t} after ${prev}`);
      prev = t;
    }
    const w = wallNs();
    assert.ok(Number.isInteger(w));
    assert.ok(Math.abs(w / 1e6 - Date.now()) < 1000, `wallNs ${w} vs Date.now ${Date.now()}`);
  });
}
