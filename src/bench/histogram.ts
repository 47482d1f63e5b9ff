// Shared-memory HDR latency histogram: one worker records into its own SharedArrayBuffer with no
// allocation and no messages; the main thread attach()es the buffers and merges them into a row.
//
// Bucket math is HdrHistogram's (HdrHistogram_c / hdr-histogram-js) for lowestDiscernibleValue = 1
// and 3 significant digits: 2048 sub-buckets, bucket b >= 1 covers [1024 * 2^b, 2048 * 2^b) in
// steps of 2^b, so the counts index of every value is identical to hdr-histogram-js's and
// percentiles agree exactly (test/bench/histogram.test.ts checks both).
//
// Layout of the buffer (little-endian host order, as typed arrays are):
//   bytes  0..15  Int32[4]   magic, layout version, significant digits, counts length
//   bytes 16..63  Float64[6] highestTrackableValue, count, sum, min, max, clamped
//   bytes 64..    Uint32[countsLength] counts
// The header is written with plain stores (one writer per histogram) *before* the Atomics.add of
// the count in record(); read it after the writer has handed off (worker finished or posted a
// message). Counts are Uint32: one bucket holds at most 2^32 - 1 samples within one row (4.3 G;
// 35 min of 2 M/s calls all landing in one bucket); add()/merge() throw rather than wrap.
// count, sum and clamped are Float64: exact up to 2^53 (sum: 104 days of summed latency).

import hdr from 'hdr-histogram-js';
import type { Histogram as HdrHistogram } from 'hdr-histogram-js';
import { InvalidArgumentError } from '../errors.js';

const MAGIC = 0x48445231; // 'HDR1'
const LAYOUT_VERSION = 1;
const SIGNIFICANT_DIGITS = 3;
// subBucketCount = 2^ceil(log2(2 * 10^digits)) = 2048 -> half count 1024 = 2^10.
const SUB_BUCKET_HALF_MAG = 10;
const SUB_BUCKET_HALF_COUNT = 1 << SUB_BUCKET_HALF_MAG; // 1024
const SUB_BUCKET_COUNT = SUB_BUCKET_HALF_COUNT * 2; // 2048
const SUB_BUCKET_MASK = SUB_BUCKET_COUNT - 1; // 2047
const TWO_POW_32 = 4294967296;
const MAX_COUNT = 0xffffffff;

const I32_MAGIC = 0;
const I32_VERSION = 1;
const I32_DIGITS = 2;
const I32_LENGTH = 3;
const F64_HIGHEST = 2;
const F64_COUNT = 3;
const F64_SUM = 4;
const F64_MIN = 5;
const F64_MAX = 6;
const F64_CLAMPED = 7;
/** Bytes before the counts array. */
export const HEADER_BYTES = 64;

/** 1 hour in ns: a request slower than that is a failure, not a latency; 33,792 counters (132 KiB). */
export const DEFAULT_HIGHEST_TRACKABLE_NS = 3_600_000_000_000;

// 2^-b for the >= 2^32 record path (multiplying by an exact power of two is exact).
const INV_POW2 = new Float64Array(64);
for (let b = 0; b < 64; b++) INV_POW2[b] = 2 ** -b;

export interface SharedHistogramOptions {
  /** Largest value kept at full precision; larger values are recorded as this and counted in `clamped`. */
  highestTrackableValue?: number;
}

export interface LatencySummary {
  count: number;
  min_ns: number | null;
  max_ns: number | null;
  mean_ns: number | null;
  p50_ns: number | null;
  p90_ns: number | null;
  p95_ns: number | null;
  p99_ns: number | null;
  p999_ns: number | null;
  p9999_ns: number | null;
}

/** Counts-array length for a highest trackable value (hdr-histogram-js's getBucketsNeededToCoverValue). */
export function countsLengthFor(highestTrackableValue: number): number {
  let smallestUntrackable = SUB_BUCKET_COUNT;
  let buckets = 1;
  while (smallestUntrackable <= highestTrackableValue) {
    if (smallestUntrackable > Number.MAX_SAFE_INTEGER / 2) {
      buckets++;
      break;
    }
    smallestUntrackable *= 2;
    buckets++;
  }
  return (buckets + 1) * SUB_BUCKET_HALF_COUNT;
}

/** Buffer size for a histogram; preallocate one per worker. */
export function sharedHistogramBytes(highestTrackableValue = DEFAULT_HIGHEST_TRACKABLE_NS): number {
  return HEADER_BYTES + 4 * countsLengthFor(checkHighest(highestTrackableValue));
}

/** Buffer size with the default highestTrackableValue (135,232 bytes). */
export const SHARED_HISTOGRAM_BYTES = sharedHistogramBytes();

function checkHighest(v: number): number {
  if (!Number.isSafeInteger(v) || v < 2) {
    throw new InvalidArgumentError(`highestTrackableValue must be a safe integer >= 2, got ${v}`);
  }
  return v;
}

/** Counts index of an integer value in [0, 2^53): bucket from a 64-bit count-leading-zeros. */
export function countsIndex(v: number): number {
  if (v < TWO_POW_32) {
    // bucket = 53 - clz64(v | mask) = 21 - clz32(v | mask); index = bucket * 1024 + (v >> bucket)
    const b = 21 - Math.clz32(v | SUB_BUCKET_MASK);
    return (b << SUB_BUCKET_HALF_MAG) + (v >>> b);
  }
  const b = 53 - Math.clz32(v / TWO_POW_32); // clz32 truncates the high word to uint32
  return (b << SUB_BUCKET_HALF_MAG) + ((v * INV_POW2[b]) >>> 0);
}

/** Lowest value of the bucket at a counts index (hdr's valueFromIndex). */
export function valueFromIndex(i: number): number {
  const b = (i >> SUB_BUCKET_HALF_MAG) - 1;
  if (b < 0) return i; // lower half of bucket 0: unit resolution
  return ((i & (SUB_BUCKET_HALF_COUNT - 1)) + SUB_BUCKET_HALF_COUNT) * 2 ** b;
}

/** Width of the bucket at a counts index (1 in bucket 0). */
function bucketWidth(i: number): number {
  const b = (i >> SUB_BUCKET_HALF_MAG) - 1;
  return b < 0 ? 1 : 2 ** b;
}

/**
 * Main: `const h = SharedHistogram.create()`, pass `h.buffer` to the worker; worker:
 * `const w = SharedHistogram.attach(buffer)`, `w.reset()` after warmup, `w.record(nowNs() - t0)`
 * per call; main, after the workers hand off: `SharedHistogram.merge(hs).summary()` / `.encode()`.
 * One writer per histogram (record/reset/add are not safe from two threads at once).
 */
export class SharedHistogram {
  readonly buffer: SharedArrayBuffer;
  readonly highestTrackableValue: number;
  readonly countsLength: number;
  private readonly header: Float64Array;
  private readonly counts: Uint32Array;

  private constructor(buffer: SharedArrayBuffer) {
    const i32 = new Int32Array(buffer, 0, 4);
    this.buffer = buffer;
    this.header = new Float64Array(buffer, 0, HEADER_BYTES / 8);
    this.highestTrackableValue = this.header[F64_HIGHEST];
    this.countsLength = i32[I32_LENGTH];
    this.counts = new Uint32Array(buffer, HEADER_BYTES, this.countsLength);
  }

  /** A new, empty histogram in a new SharedArrayBuffer (send `.buffer` to a worker and attach it there). */
  static create(options: SharedHistogramOptions = {}): SharedHistogram {
    const highest = checkHighest(options.highestTrackableValue ?? DEFAULT_HIGHEST_TRACKABLE_NS);
    const length = countsLengthFor(highest);
    const buffer = new SharedArrayBuffer(HEADER_BYTES + 4 * length);
    const i32 = new Int32Array(buffer, 0, 4);
    i32[I32_MAGIC] = MAGIC;
    i32[I32_VERSION] = LAYOUT_VERSION;
    i32[I32_DIGITS] = SIGNIFICANT_DIGITS;
    i32[I32_LENGTH] = length;
    new Float64Array(buffer, 0, HEADER_BYTES / 8)[F64_HIGHEST] = highest;
    const h = new SharedHistogram(buffer);
    h.reset();
    return h;
  }

  /** A view of a buffer made by create() (in another thread); throws if it is not one. */
  static attach(buffer: SharedArrayBuffer): SharedHistogram {
    const bad = (why: string): never => {
      throw new InvalidArgumentError(`SharedHistogram.attach: not a SharedHistogram buffer (${why})`);
    };
    if (!(buffer instanceof SharedArrayBuffer)) bad(`expected a SharedArrayBuffer, got ${Object.prototype.toString.call(buffer)}`);
    if (buffer.byteLength < HEADER_BYTES) bad(`${buffer.byteLength} bytes, the header alone is ${HEADER_BYTES}`);
    const i32 = new Int32Array(buffer, 0, 4);
    if (i32[I32_MAGIC] !== MAGIC) bad(`magic 0x${(i32[I32_MAGIC] >>> 0).toString(16)}, expected 0x${MAGIC.toString(16)}`);
    if (i32[I32_VERSION] !== LAYOUT_VERSION) bad(`layout version ${i32[I32_VERSION]}, expected ${LAYOUT_VERSION}`);
    if (i32[I32_DIGITS] !== SIGNIFICANT_DIGITS) bad(`${i32[I32_DIGITS]} significant digits, expected ${SIGNIFICANT_DIGITS}`);
    const highest = new Float64Array(buffer, 0, 4)[F64_HIGHEST];
    if (!Number.isSafeInteger(highest) || highest < 2) bad(`highestTrackableValue ${highest}`);
    const length = countsLengthFor(highest);
    if (i32[I32_LENGTH] !== length) bad(`counts length ${i32[I32_LENGTH]}, expected ${length}`);
    const want = HEADER_BYTES + 4 * length;
    if (buffer.byteLength !== want) bad(`${buffer.byteLength} bytes, expected ${want}`);
    return new SharedHistogram(buffer);
  }

  /**
   * Records one value in integer ns. Hot path: no allocation, no throw. Values < 1 (and NaN) count
   * as 1; values above highestTrackableValue count as it and bump `clamped`; fractions are floored.
   */
  record(valueNs: number): void {
    const h = this.header;
    let v = Math.floor(valueNs);
    if (!(v >= 1)) v = 1;
    else if (v > this.highestTrackableValue) {
      v = this.highestTrackableValue;
      h[F64_CLAMPED]++;
    }
    h[F64_COUNT]++;
    h[F64_SUM] += v;
    if (v < h[F64_MIN]) h[F64_MIN] = v;
    if (v > h[F64_MAX]) h[F64_MAX] = v;
    // Last, so the seq-cst RMW also orders the header stores above before it.
    Atomics.add(this.counts, countsIndex(v), 1);
  }

  /** Empties the histogram (e.g. after warmup); a 132 KiB fill, ~10 µs. Writer side only. */
  reset(): void {
    this.counts.fill(0);
    const h = this.header;
    h[F64_COUNT] = 0;
    h[F64_SUM] = 0;
    h[F64_MIN] = Infinity;
    h[F64_MAX] = 0;
    h[F64_CLAMPED] = 0;
    Atomics.store(this.counts, 0, 0); // fence: publish the cleared header
  }

  get count(): number {
    return this.header[F64_COUNT];
  }
  get sum(): number {
    return this.header[F64_SUM];
  }
  /** Exact smallest recorded value (after the < 1 -> 1 rule); null when empty. */
  get min(): number | null {
    return this.count === 0 ? null : this.header[F64_MIN];
  }
  /** Exact largest recorded value (after clamping); null when empty. */
  get max(): number | null {
    return this.count === 0 ? null : this.header[F64_MAX];
  }
  /** Exact mean (sum / count), not HDR's bucket-midpoint mean; null when empty. */
  get mean(): number | null {
    const n = this.count;
    return n === 0 ? null : this.header[F64_SUM] / n;
  }
  /** Samples above highestTrackableValue (recorded as highestTrackableValue). */
  get clamped(): number {
    return this.header[F64_CLAMPED];
  }

  /**
   * HdrHistogram's getValueAtPercentile, bit for bit: the highest value equivalent to the bucket
   * holding the percentile (lowest equivalent for p = 0). `percentile` in [0, 100]; null when empty.
   */
  valueAtPercentile(percentile: number): number | null {
    if (!(percentile >= 0)) throw new InvalidArgumentError(`percentile must be in [0, 100], got ${percentile}`);
    const total = this.count;
    if (total === 0) return null;
    const fp = (Math.min(percentile, 100) / 100) * total;
    // HDR rounds up but forgives one ulp of float error so e.g. 50% of 10 is 5, not 6.
    const ulp = 2 ** (Math.floor(Math.log2(fp)) - 52);
    const target = Math.max(Math.ceil(fp - ulp), 1);
    const counts = this.counts;
    let running = 0;
    for (let i = 0; i < counts.length; i++) {
      running += counts[i];
      if (running >= target) {
        const low = valueFromIndex(i);
        return percentile === 0 ? low : low + bucketWidth(i) - 1;
      }
    }
    return this.header[F64_MAX]; // unreachable while counts agree with count
  }

  /**
   * The row's numbers. Percentiles are valueAtPercentile() capped at the exact max, so a
   * percentile never reads above max_ns (HDR's bucket top can exceed it by < 0.1%).
   */
  summary(): LatencySummary {
    const max = this.max;
    const p = (q: number): number | null => {
      const v = this.valueAtPercentile(q);
      return v === null || max === null ? null : Math.min(v, max);
    };
    return {
      count: this.count,
      min_ns: this.min,
      max_ns: max,
      mean_ns: this.mean,
      p50_ns: p(50),
      p90_ns: p(90),
      p95_ns: p(95),
      p99_ns: p(99),
      p999_ns: p(99.9),
      p9999_ns: p(99.99),
    };
  }

  /** Adds other's samples to this one (same highestTrackableValue). Throws before changing anything if a bucket would pass 2^32 - 1. */
  add(other: SharedHistogram): void {
    if (other.countsLength !== this.countsLength || other.highestTrackableValue !== this.highestTrackableValue) {
      throw new InvalidArgumentError(
        `SharedHistogram.add: highestTrackableValue ${other.highestTrackableValue} != ${this.highestTrackableValue}`,
      );
    }
    const src = other.counts;
    const dst = this.counts;
    Atomics.load(src, 0); // fence: see the other writer's header and counts
    for (let i = 0; i < src.length; i++) {
      if (src[i] !== 0 && dst[i] + src[i] > MAX_COUNT) {
        throw new InvalidArgumentError(`SharedHistogram.add: bucket ${valueFromIndex(i)} ns would exceed 2^32 - 1 samples`);
      }
    }
    for (let i = 0; i < src.length; i++) if (src[i] !== 0) Atomics.add(dst, i, src[i]);
    const h = this.header;
    const o = other.header;
    h[F64_COUNT] += o[F64_COUNT];
    h[F64_SUM] += o[F64_SUM];
    h[F64_CLAMPED] += o[F64_CLAMPED];
    if (o[F64_MIN] < h[F64_MIN]) h[F64_MIN] = o[F64_MIN];
    if (o[F64_MAX] > h[F64_MAX]) h[F64_MAX] = o[F64_MAX];
  }

  /** A new histogram holding the union of the given ones (e.g. one per worker). */
  static merge(histograms: readonly SharedHistogram[]): SharedHistogram {
    if (histograms.length === 0) throw new InvalidArgumentError('SharedHistogram.merge: no histograms');
    const out = SharedHistogram.create({ highestTrackableValue: histograms[0].highestTrackableValue });
    for (const h of histograms) out.add(h);
    return out;
  }

  /**
   * Adds this histogram's bucket counts to `acc` (length countsLength), for interval snapshots
   * taken while its writer records: each bucket is read once, so a sample recorded during the copy
   * is either in this snapshot or in the next one, never lost or counted twice (a bucket count only
   * grows between resets). Reader side; allocates nothing.
   */
  addCountsTo(acc: Float64Array): void {
    if (acc.length !== this.countsLength) throw new InvalidArgumentError(`SharedHistogram.addCountsTo: ${acc.length} counters, expected ${this.countsLength}`);
    const src = this.counts;
    Atomics.load(src, 0); // fence: see the writer's stores so far
    for (let i = 0; i < src.length; i++) acc[i] += src[i];
  }

  /**
   * A histogram of given bucket counts (e.g. the difference of two addCountsTo() snapshots:
   * bucket-wise subtraction is exact for HDR histograms). Like decode(), only the buckets are
   * known: min/max/mean come from bucket values. `counts` is dense (countsLength) or sparse
   * ({ index, count } pairs).
   */
  static fromCounts(counts: ArrayLike<number> | { index: ArrayLike<number>; count: ArrayLike<number> }, highestTrackableValue = DEFAULT_HIGHEST_TRACKABLE_NS): SharedHistogram {
    const out = SharedHistogram.create({ highestTrackableValue });
    const put = (i: number, c: number) => {
      if (c === 0) return;
      if (!Number.isSafeInteger(i) || i < 0 || i >= out.countsLength || !Number.isSafeInteger(c) || c < 0 || c > MAX_COUNT) {
        throw new InvalidArgumentError(`SharedHistogram.fromCounts: bucket ${i} (count ${c}) does not fit`);
      }
      out.putBucket(i, c);
    };
    if ('index' in counts) {
      for (let k = 0; k < counts.index.length; k++) put(counts.index[k], counts.count[k]);
    } else {
      for (let i = 0; i < counts.length; i++) put(i, counts[i]);
    }
    return out;
  }

  /** Adds `c` samples at counts index `i` with bucket-valued header figures (decode and fromCounts). */
  private putBucket(i: number, c: number): void {
    this.counts[i] += c;
    const h = this.header;
    const low = valueFromIndex(i);
    const width = bucketWidth(i);
    h[F64_COUNT] += c;
    h[F64_SUM] += (low + Math.floor(width / 2)) * c; // HDR's median equivalent value
    if (low < h[F64_MIN]) h[F64_MIN] = low;
    const top = Math.min(low + width - 1, this.highestTrackableValue);
    if (top > h[F64_MAX]) h[F64_MAX] = top;
  }

  /**
   * An hdr-histogram-js histogram (64-bit counts) with the same buckets, for its percentiles and
   * encoding. `unit` > 1 rescales (1000: values in µs, for the interval log): each bucket's samples
   * go in at its median value / unit, rounded, so the result has its own buckets (3 digits again)
   * and percentiles within a bucket's width plus one unit of this one's.
   */
  toHdr(unit = 1): HdrHistogram {
    if (!(unit >= 1) || !Number.isSafeInteger(unit)) throw new InvalidArgumentError(`SharedHistogram.toHdr: unit must be a positive integer, got ${unit}`);
    const out = hdr.build({
      bitBucketSize: 64,
      autoResize: false,
      lowestDiscernibleValue: 1,
      highestTrackableValue: Math.max(2, Math.ceil(this.highestTrackableValue / unit)),
      numberOfSignificantValueDigits: SIGNIFICANT_DIGITS,
    });
    const counts = this.counts;
    for (let i = 0; i < counts.length; i++) {
      if (counts[i] === 0) continue;
      const v = unit === 1 ? valueFromIndex(i) : Math.round((valueFromIndex(i) + Math.floor(bucketWidth(i) / 2)) / unit);
      out.recordValueWithCount(v, counts[i]);
    }
    return out;
  }

  /** HdrHistogram V2 compressed base64 (readable by every HdrHistogram port), for the JSON artifact. */
  encode(): string {
    return hdr.encodeIntoCompressedBase64(this.toHdr());
  }

  /**
   * Inverse of encode() (or any HdrHistogram V2 base64 with 3 digits and lowest value 1). The
   * encoding keeps only buckets, so min/max/mean come back as bucket values, not exact ones.
   */
  static decode(base64: string): SharedHistogram {
    const src = hdr.decodeFromCompressedBase64(base64, 64);
    if (!(src instanceof hdr.JsHistogram)) throw new InvalidArgumentError('SharedHistogram.decode: unexpected histogram type');
    if (src.numberOfSignificantValueDigits !== SIGNIFICANT_DIGITS || src.lowestDiscernibleValue !== 1) {
      throw new InvalidArgumentError(
        `SharedHistogram.decode: needs ${SIGNIFICANT_DIGITS} digits and lowest value 1, got ` +
          `${src.numberOfSignificantValueDigits} and ${src.lowestDiscernibleValue}`,
      );
    }
    const out = SharedHistogram.create({ highestTrackableValue: src.highestTrackableValue });
    for (let i = 0; i < src.countsArrayLength; i++) {
      const c = src.getCountAtIndex(i);
      if (c === 0) continue;
      if (i >= out.countsLength || c > MAX_COUNT) {
        throw new InvalidArgumentError(`SharedHistogram.decode: bucket ${i} (count ${c}) does not fit`);
      }
      out.putBucket(i, c);
    }
    return out;
  }
}
