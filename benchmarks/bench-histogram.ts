// Record-path and clock micro-benchmarks for src/bench/histogram.ts and src/bench/clock.ts.
// Every figure is the median of 5 timed runs, all in this one process. The runs are interleaved
// (round r times every candidate once), so a burst of load from other jobs on this shared machine
// hits all candidates alike instead of one of them, and the ratios compare like with like.
// Each run is timed twice: wall clock, and this process's CPU time (process.cpuUsage). The CPU time
// is the cost of the work itself: it leaves out the time slices the OS gave to other jobs on this
// shared 2-core machine, which inflate the wall clock by up to 3x under load. The record target is
// judged on CPU time, the loop target on wall clock (the stricter one); both are printed.
// Usage: npx tsx benchmarks/bench-histogram.ts [--iterations N] [--write]
//   --write  also writes bench-results/histogram.md (figures, command line, date, host)
import { writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createHistogram, performance } from 'node:perf_hooks';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import hdr from 'hdr-histogram-js';
import { HEADER_BYTES, SharedHistogram, countsIndex } from '../src/bench/histogram.js';
import { nowNs, wallNs } from '../src/bench/clock.js';

const args = process.argv.slice(2);
const itArg = args.indexOf('--iterations');
const N = itArg >= 0 ? Number(args[itArg + 1]) : 10_000_000;
const CLOCK_N = Math.max(1, Math.floor(N / 2));
const RUNS = 5;
const RECORD_TARGET_NS = 25;
const LOOP_TARGET_PER_S = 2_000_000;

// Same inputs for every histogram: log-uniform latencies 1 µs .. 10 ms (a spread of buckets, so
// no candidate gets a single hot counter), read round-robin from a small array.
const MASK = 4095;
const values = new Float64Array(MASK + 1);
let seed = 42;
for (let i = 0; i < values.length; i++) {
  seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
  values[i] = Math.round(10 ** (3 + (4 * seed) / 2 ** 32));
}
const HIGHEST = 3_600_000_000_000;

let sink = 0; // keeps results alive so loops are not dead code

interface Row {
  name: string;
  n: number;
  body: (n: number) => void;
  times: number[]; // wall ns per iteration, one per run
  cpuTimes: number[]; // CPU ns per iteration, one per run
  median: number;
  min: number;
  cpuMedian: number;
}
const records: Row[] = [];
const clocks: Row[] = [];
const others: Row[] = [];
const log = (s: string): void => void process.stdout.write(s + '\n');

function row(list: Row[], name: string, n: number, body: (n: number) => void): Row {
  const r: Row = { name, n, body, times: [], cpuTimes: [], median: NaN, min: NaN, cpuMedian: NaN };
  list.push(r);
  return r;
}
const recordRow = (name: string, body: (n: number) => void): Row => row(records, name, N, body);
const clockRow = (name: string, body: (n: number) => void): Row => row(clocks, name, CLOCK_N, body);

log(`node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? '?'}; ${N.toLocaleString()} records per run, median of ${RUNS}`);

const baseline = recordRow('loop baseline (read value, no record)', (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += values[i & MASK];
  sink += s;
});

const ours = SharedHistogram.create({ highestTrackableValue: HIGHEST });
const oursRow = recordRow('ours SharedHistogram.record (Atomics.add)', (n) => {
  for (let i = 0; i < n; i++) ours.record(values[i & MASK]);
  sink += ours.count;
  ours.reset();
});

// The rejected design, on the same layout: identical code but a plain `counts[i]++`.
const plainHist = SharedHistogram.create({ highestTrackableValue: HIGHEST });
const plainHeader = new Float64Array(plainHist.buffer, 0, HEADER_BYTES / 8);
const plainCounts = new Uint32Array(plainHist.buffer, HEADER_BYTES, plainHist.countsLength);
function plainRecord(valueNs: number): void {
  const h = plainHeader;
  let v = Math.floor(valueNs);
  if (!(v >= 1)) v = 1;
  else if (v > HIGHEST) {
    v = HIGHEST;
    h[7]++;
  }
  h[3]++;
  h[4] += v;
  if (v < h[5]) h[5] = v;
  if (v > h[6]) h[6] = v;
  plainCounts[countsIndex(v)]++;
}
const plainRow = recordRow('ours, plain-store variant (not used)', (n) => {
  for (let i = 0; i < n; i++) plainRecord(values[i & MASK]);
  sink += plainHist.count;
  plainHist.reset();
});

const sab = new Uint32Array(new SharedArrayBuffer(4 * (MASK + 1)));
recordRow('bare Atomics.add on SAB Uint32 (floor)', (n) => {
  for (let i = 0; i < n; i++) Atomics.add(sab, i & MASK, 1);
  sink += sab[0];
});

const hdrOpts = { lowestDiscernibleValue: 1, highestTrackableValue: HIGHEST, numberOfSignificantValueDigits: 3 as const, autoResize: false };
const js64 = hdr.build({ ...hdrOpts, bitBucketSize: 64 });
const js64Row = recordRow('hdr-histogram-js JS recordValue (64-bit)', (n) => {
  for (let i = 0; i < n; i++) js64.recordValue(values[i & MASK]);
  sink += js64.totalCount;
  js64.reset();
});
const js32 = hdr.build({ ...hdrOpts, bitBucketSize: 32 });
const js32Row = recordRow('hdr-histogram-js JS recordValue (32-bit)', (n) => {
  for (let i = 0; i < n; i++) js32.recordValue(values[i & MASK]);
  sink += js32.totalCount;
  js32.reset();
});
hdr.initWebAssemblySync();
const wasm = hdr.build({ ...hdrOpts, bitBucketSize: 64, useWebAssembly: true });
const wasmRow = recordRow('hdr-histogram-js wasm recordValue (64-bit)', (n) => {
  for (let i = 0; i < n; i++) wasm.recordValue(values[i & MASK]);
  sink += wasm.totalCount;
  wasm.reset();
});
const ph = createHistogram({ lowest: 1, highest: HIGHEST, figures: 3 });
const phRow = recordRow('perf_hooks RecordableHistogram.record', (n) => {
  for (let i = 0; i < n; i++) ph.record(values[i & MASK]);
  sink += ph.count;
  ph.reset();
});

const base = process.hrtime()[0];
clockRow('nowNs() = Math.round(performance.now()*1e6)', (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += nowNs();
  sink += s;
});
clockRow('performance.now()*1e6 (not integer)', (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += performance.now() * 1e6;
  sink += s;
});
clockRow('process.hrtime() -> s*1e9+ns', (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) {
    const t = process.hrtime();
    s += (t[0] - base) * 1e9 + t[1];
  }
  sink += s;
});
clockRow('Number(process.hrtime.bigint())', (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += Number(process.hrtime.bigint());
  sink += s;
});
clockRow('wallNs() (epoch, cross-thread)', (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += wallNs();
  sink += s;
});
clockRow('Date.now() (1 ms resolution)', (n) => {
  let s = 0;
  for (let i = 0; i < n; i++) s += Date.now();
  sink += s;
});

let noopCalls = 0;
function noop(): void {
  noopCalls++;
}
const loopHist = SharedHistogram.create({ highestTrackableValue: HIGHEST });
const loop = row(others, 'no-op loop: t0 = nowNs(); noop(); record(nowNs() - t0)', N, (n) => {
  for (let i = 0; i < n; i++) {
    const t0 = nowNs();
    noop();
    loopHist.record(nowNs() - t0);
  }
  sink += loopHist.count;
  loopHist.reset();
});
// reset() between warmup and measurement must be cheap.
const resetHist = SharedHistogram.create({ highestTrackableValue: HIGHEST });
const resetM = row(others, `reset() (${resetHist.countsLength} counters)`, 2_000, (n) => {
  for (let i = 0; i < n; i++) resetHist.reset();
});

const all = [...records, ...clocks, ...others];
const loadBefore = loadavg();
for (const r of all) {
  r.body(Math.min(r.n, 1_000_000)); // warmup: let the JIT settle on every loop
  r.body(Math.min(r.n, 1_000_000));
}
for (let run = 0; run < RUNS; run++) {
  for (const r of all) {
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    r.body(r.n);
    r.times.push(Number(process.hrtime.bigint() - t0) / r.n);
    const c = process.cpuUsage(c0);
    r.cpuTimes.push(((c.user + c.system) * 1000) / r.n);
  }
}
wasm.destroy();
const loadAfter = loadavg();
for (const r of all) {
  const sorted = [...r.times].sort((a, b) => a - b);
  r.median = sorted[RUNS >> 1];
  r.min = sorted[0];
  r.cpuMedian = [...r.cpuTimes].sort((a, b) => a - b)[RUNS >> 1];
}
const line = (r: Row): string =>
  `  ${r.name.padEnd(56)} ${r.median.toFixed(1).padStart(7)} ns  (min ${r.min.toFixed(1).padStart(5)}, cpu ${r.cpuMedian.toFixed(1).padStart(5)})`;
log('\nmedian wall ns, (min wall ns, median CPU ns)');
log('\nns per record (value array read + record):');
records.forEach((r) => log(line(r)));
log('\nns per clock read:');
clocks.forEach((r) => log(line(r)));
const loopPerS = 1e9 / loop.median;
log('\nmeasured no-op loop, one thread:');
log(line(loop) + `  = ${(loopPerS / 1e6).toFixed(2)} M calls/s`);
log(`  reset(): ${(resetM.median / 1000).toFixed(1)} µs`);
const load = (l: number[]): string => l.map((x) => x.toFixed(2)).join(' ');

// Their CPU time / ours: > 1 means ours is faster.
const ratio = (a: Row, b: Row): string =>
  `${(b.cpuMedian / a.cpuMedian).toFixed(2)}x (${b.cpuMedian.toFixed(1)} / ${a.cpuMedian.toFixed(1)} CPU ns)`;
const recordPass = oursRow.cpuMedian <= RECORD_TARGET_NS;
const loopPass = loopPerS >= LOOP_TARGET_PER_S;
const loopCpuPerS = 1e9 / loop.cpuMedian;
const summary = [
  `hdr-histogram-js JS 64-bit / ours: ${ratio(oursRow, js64Row)}`,
  `hdr-histogram-js JS 32-bit / ours: ${ratio(oursRow, js32Row)}`,
  `hdr-histogram-js wasm / ours:      ${ratio(oursRow, wasmRow)}`,
  `perf_hooks record / ours:          ${ratio(oursRow, phRow)}`,
  `ours Atomics.add vs plain store:   +${(oursRow.cpuMedian - plainRow.cpuMedian).toFixed(1)} CPU ns per record`,
  `record <= ${RECORD_TARGET_NS} ns: ${recordPass ? 'PASS' : 'FAIL'} (CPU ${oursRow.cpuMedian.toFixed(1)} ns, wall ${oursRow.median.toFixed(1)} ns, best wall ${oursRow.min.toFixed(1)} ns; loop baseline ${baseline.median.toFixed(1)} ns)`,
  `no-op loop >= ${LOOP_TARGET_PER_S / 1e6} M calls/s: ${loopPass ? 'PASS' : 'FAIL'} (wall ${(loopPerS / 1e6).toFixed(2)} M calls/s, CPU ${(loopCpuPerS / 1e6).toFixed(2)} M calls/s)`,
];
log('\n' + summary.join('\n'));
if (sink === 42.5) log(String(noopCalls)); // never true; defeats dead-code elimination

if (args.includes('--write')) {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..');
  const out = join(root, 'bench-results', 'histogram.md');
  const table = (rows: Row[]): string =>
    [
      '| what | median wall ns | min wall ns | median CPU ns |',
      '|---|---:|---:|---:|',
      ...rows.map((r) => `| ${r.name} | ${r.median.toFixed(1)} | ${r.min.toFixed(1)} | ${r.cpuMedian.toFixed(1)} |`),
    ].join('\n');
  const md = [
    '# SharedHistogram record path and clocks',
    '',
    `- command: \`npx tsx benchmarks/bench-histogram.ts ${args.join(' ')}\``,
    `- date: ${new Date().toISOString()}`,
    `- host: node ${process.version}, ${cpus().length} x ${cpus()[0]?.model ?? '?'} (shared, noisy dev machine; load average ${load(loadBefore)} before, ${load(loadAfter)} after)`,
    `- method: one process, ${N.toLocaleString()} records per run (${CLOCK_N.toLocaleString()} clock reads), median of ${RUNS} interleaved runs (each run times every row once) after 2 warmup passes; inputs are 4096 log-uniform values 1 µs..10 ms read round-robin`,
    '',
    '## ns per record',
    '',
    table(records),
    '',
    '## ns per clock read',
    '',
    table(clocks),
    '',
    '## measured no-op loop (one thread, nowNs + record)',
    '',
    `${(loopPerS / 1e6).toFixed(2)} M calls/s wall (${loop.median.toFixed(1)} ns per call, min ${loop.min.toFixed(1)} ns; CPU ${loop.cpuMedian.toFixed(1)} ns); reset(): ${(resetM.median / 1000).toFixed(1)} µs`,
    '',
    '## verdict',
    '',
    ...summary.map((s) => `- ${s}`),
    '',
    '## notes',
    '',
    '- Ratios are the other implementation\'s median CPU time / ours (> 1: ours is faster). All rows include the ~1-2 ns loop baseline.',
    '- Counts use `Atomics.add` (lock-free atomic counts, as required) although a plain `counts[i]++` is faster (row "plain-store variant"): it still meets the 25 ns target, and it keeps counts well defined under the JS memory model for a reader on another thread while the writer records, with no hand-off fence to forget.',
    '- Clock: `nowNs()` = `Math.round(performance.now() * 1e6)` is the cheapest integer-ns clock (rounding costs nothing measurable); `process.hrtime()` allocates an array and `hrtime.bigint()` a BigInt per read. `wallNs()` is the cross-thread comparable one (256 ns steps).',
    '- hdr-histogram-js wasm records about as fast as ours, but its counts live in its module\'s own (non-shared) memory in each thread, so the main thread cannot read them without a copy and a message. hdr-histogram-js JS varies from run to run here (compare its median and min columns).',
    `- The machine is shared with other jobs (see the load averages above): the 5 runs of ours took ${oursRow.times.map((t) => t.toFixed(1)).join(', ')} ns wall, ${oursRow.cpuTimes.map((t) => t.toFixed(1)).join(', ')} ns CPU. When other jobs hold a core the wall clock grows but the CPU time does not, hence the record verdict on CPU time.`,
    '',
  ].join('\n');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, md);
  log(`\nwrote ${out}`);
}
