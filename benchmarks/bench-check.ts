/**
 * `npm run bench:check`: a short run (~3 min) of the speed ratios, each against its anchor
 * measured in the same run, compared with the committed values in bench-results/baseline.json.
 * Prints them side by side and names every ratio that fell by more than its measured noise
 * (exit 1). Run it before a change that touches a hot path lands.
 *
 *   npm run bench:check                         compare with the baseline
 *   npm run bench:check -- --only exists,attach run some parts only (--baseline <file>: another baseline)
 *   npm run bench:check -- --update --runs 3 --why "<why the baseline moves>"
 *                                               measure --runs times and write the baseline:
 *                                               each ratio's median, and its noise (the largest
 *                                               relative distance of a run from that median, at
 *                                               least --min-noise, default 0.05)
 *
 * Every part is a script of its own (benchmarks/bench-*.ts, benchmarks/bench-sglang.py) run with short
 * settings; each prints one `RATIOS {json}` line. Needs `npm run build` (the sweeps and the
 * sidecar run the built package), redis-server, ucx_perftest and iperf3.
 */
import { runChild } from '../src/bench/child-process.js';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { args, flag } from './lib/cli.js';
import { median } from './lib/stats.js';

const root = fileURLToPath(new URL('..', import.meta.url));
// --baseline: another file (the test of this script uses one of its own).
const baselinePath = flag('--baseline', `${root}bench-results/baseline.json`);

interface Part {
  name: string;
  command: string[];
  /** Each ratio this part prints: whether higher is better, and what it says. */
  ratios: Record<string, { better: 'higher' | 'lower'; what: string }>;
}

const tsx = [process.execPath, '--import', 'tsx'];
const parts: Part[] = [
  {
    name: 'exists',
    command: [...tsx, '--expose-gc', 'benchmarks/bench-exists.ts', '--rounds', '3', '--calls', '1000', '--memory-keys', '20000'],
    ratios: {
      exists1_vs_redis_get: { better: 'lower', what: 'exists of 1 page (directory replica) / a redis-benchmark GET, p50' },
      exists128_vs_redis_mget: { better: 'lower', what: 'exists of 128 pages (replica) / a redis-benchmark MGET of 128, p50' },
      exists1_roundtrip_vs_redis_get: { better: 'lower', what: 'exists of 1 page without a replica (one round trip) / a redis-benchmark GET' },
    },
  },
  {
    name: 'attach',
    command: [...tsx, 'benchmarks/bench-attach.ts', '--sizes', '1g,4g'],
    ratios: { attach_largest_vs_smallest: { better: 'lower', what: "a peer's attach of a 4 GiB shm segment / of a 1 GiB one (1: flat)" } },
  },
  {
    name: 'dataplane',
    command: [...tsx, 'benchmarks/bench-dataplane.ts', '--hot-only', '--seconds', '0.5', '--rounds', '3'],
    ratios: {
      read_vs_perftest_128k: { better: 'higher', what: 'shm READ / ucx_perftest ucp_get, 128 KiB, batch 32' },
      read_vs_perftest_1024k: { better: 'higher', what: 'shm READ / ucx_perftest ucp_get, 1 MiB, batch 32' },
    },
  },
  {
    name: 'store',
    command: [...tsx, 'benchmarks/bench-store.ts', '--seconds', '1', '--working-set', '2048'],
    ratios: { store_get_vs_read: { better: 'higher', what: 'batchGetV1 (location cache) / the bare READ of the same bytes' } },
  },
  {
    name: 'suite',
    // The sweep runs in this child's process: --single-threaded-gc as the peercache-bench
    // executable starts node (without it V8's background GC costs 64 workers on 2 cores ~40%).
    command: [process.execPath, '--single-threaded-gc', '--import', 'tsx', 'benchmarks/bench-suite.ts', '--rounds', '1', '--duration', '1', '--warmup', '0.5'],
    ratios: {
      get_peak_vs_read: { better: 'higher', what: 'get PEAK of a saturation sweep / the bare READ' },
      x64_vs_peak: { better: 'higher', what: 'get at 64 workers / get PEAK' },
    },
  },
  {
    name: 'set-tcp',
    command: [...tsx, 'benchmarks/bench-set-tcp.ts', '--rounds', '1', '--duration', '1', '--warmup', '0.3'],
    ratios: {
      set1_vs_memcpy1: { better: 'higher', what: 'shm set x1 / memcpy x1 over the same footprint' },
      set2_vs_memcpy2: { better: 'higher', what: 'shm set x2 / memcpy x2 over the same footprint' },
      tcp_get1_vs_iperf1: { better: 'higher', what: 'tcp get x1 / iperf3 loopback, 1 stream' },
      tcp_get2_vs_iperf2: { better: 'higher', what: 'tcp get x2 / iperf3 loopback, 2 streams' },
    },
  },
  {
    name: 'set-model',
    // A set at a real page (DeepSeek-V3's 4.3 MiB MLA page, batch 8): what a prefill node's backup
    // thread does; the 128 KiB rows above are bound by the directory's round trip instead.
    command: [...tsx, 'benchmarks/bench-set-tcp.ts', '--model', 'deepseek-v3', '--only', 'shm', '--rounds', '1', '--duration', '1', '--warmup', '0.3'],
    ratios: {
      set1_vs_memcpy1_deepseek_v3: { better: 'higher', what: 'shm set x1 / memcpy x1, DeepSeek-V3 pages (4.3 MiB, batch 8)' },
      set2_vs_memcpy2_deepseek_v3: { better: 'higher', what: 'shm set x2 / memcpy x2, DeepSeek-V3 pages (4.3 MiB, batch 8)' },
    },
  },
  {
    name: 'adapter',
    command: ['python3', 'benchmarks/bench-sglang.py', '--iterations', '60', '--rounds', '1'],
    ratios: { adapter_get_vs_store: { better: 'higher', what: "the SGLang adapter's zero-copy batch_get_v1 / the store's own call, p50" } },
  },
];

interface BaselineEntry {
  value: number;
  noise: number;
  better: 'higher' | 'lower';
  what: string;
  /** The update that wrote it (an `updates` entry's when). */
  when?: string;
}
/** One `--update`: why, when, under what load, with what command, and which ratios it wrote. */
interface BaselineUpdate {
  why: string;
  when: string;
  load: string;
  command: string;
  ratios: string[];
}
interface Baseline {
  /** The newest update's why/when/load/command (older ones are in `updates`). */
  why: string;
  when: string;
  load: string;
  command: string;
  ratios: Record<string, BaselineEntry>;
  /** Every update, oldest first: an `--only` update moves some ratios and keeps the others' record. */
  updates?: BaselineUpdate[];
}

const only = flag('--only', '').split(',').filter(Boolean);
const update = args.includes('--update');
const runs = update ? Number(flag('--runs', '3')) : 1;
const minNoise = Number(flag('--min-noise', '0.05'));
const why = flag('--why', '');
if (update && !why.trim()) {
  console.error('bench:check --update needs --why "<why the baseline moves>" (it is written into bench-results/baseline.json)');
  process.exit(2);
}
const unknown = only.filter((n) => !parts.some((p) => p.name === n));
if (unknown.length) {
  console.error(`bench:check --only: unknown part(s) ${unknown.join(', ')}; parts: ${parts.map((p) => p.name).join(', ')}`);
  process.exit(2);
}
if (!existsSync(`${root}dist/cli/peercache-bench.js`)) {
  console.error('bench:check needs the built package: run `npm run build` first');
  process.exit(2);
}

const chosen = parts.filter((p) => only.length === 0 || only.includes(p.name));
const samples: Record<string, number[]> = {};
const failedParts: string[] = [];
const t0 = Date.now();
const load0 = loadavg()[0];
for (let run = 0; run < runs; run++) {
  for (const part of chosen) {
    const started = Date.now();
    process.stderr.write(`bench:check: ${part.name}${runs > 1 ? ` (run ${run + 1}/${runs})` : ''} ... `);
    const r = await runChild({ label: part.name, command: part.command[0], args: part.command.slice(1), cwd: root, timeoutMs: 240_000, keepBytes: 64 << 20 });
    const line = r.stdout.split('\n').reverse().find((l) => l.startsWith('RATIOS '));
    if (r.code !== 0 || line === undefined) {
      process.stderr.write(`FAILED (exit ${r.code ?? r.signal})\n${r.stderr.slice(-1500)}\n`);
      failedParts.push(part.name);
      continue;
    }
    const got = JSON.parse(line.slice('RATIOS '.length)) as Record<string, number>;
    for (const name of Object.keys(part.ratios)) if (Number.isFinite(got[name])) (samples[name] ??= []).push(got[name]);
    process.stderr.write(`${((Date.now() - started) / 1000).toFixed(0)} s\n`);
  }
}
const load1 = loadavg()[0];
const elapsed = (Date.now() - t0) / 1000;
const meta = Object.fromEntries(chosen.flatMap((p) => Object.entries(p.ratios)));

if (update) {
  const prior: Baseline | null = existsSync(baselinePath) ? (JSON.parse(readFileSync(baselinePath, 'utf8')) as Baseline) : null;
  // Entries of a baseline written before updates were kept belong to its one header.
  const ratios: Record<string, BaselineEntry> = Object.fromEntries(Object.entries(prior?.ratios ?? {}).map(([n, e]) => [n, { ...e, when: e.when ?? prior!.when }]));
  const when = new Date().toISOString();
  for (const [name, xs] of Object.entries(samples)) {
    const value = median(xs);
    const spread = Math.max(...xs.map((x) => Math.abs(x - value) / value));
    ratios[name] = { value: round(value), noise: round(Math.max(minNoise, spread)), better: meta[name].better, what: meta[name].what, when };
  }
  const header = {
    why,
    when,
    load: `1-min load ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end; ${runs} runs in ${elapsed.toFixed(0)} s`,
    command: `npm run bench:check -- ${args.join(' ')}`,
  };
  // A baseline written before updates were kept: its header becomes the first update.
  const earlier: BaselineUpdate[] = prior === null ? [] : (prior.updates ?? [{ why: prior.why, when: prior.when, load: prior.load, command: prior.command, ratios: Object.keys(prior.ratios) }]);
  const baseline: Baseline = { ...header, ratios, updates: [...earlier, { ...header, ratios: Object.keys(samples) }] };
  writeFileSync(baselinePath, JSON.stringify(baseline, null, 2) + '\n');
  console.log(`bench:check: wrote ${Object.keys(samples).length} ratios to ${baselinePath} (${why})`);
}

const baseline: Baseline | null = existsSync(baselinePath) ? (JSON.parse(readFileSync(baselinePath, 'utf8')) as Baseline) : null;
const fell: string[] = [];
const rows: string[][] = [['ratio', 'baseline', 'now', 'noise', '', 'what']];
for (const name of Object.keys(meta)) {
  const xs = samples[name];
  const now = xs ? median(xs) : NaN;
  const b = baseline?.ratios[name];
  let status = '';
  if (!xs) status = 'not measured';
  else if (!b) status = 'no baseline';
  else {
    const change = b.better === 'higher' ? (b.value - now) / b.value : (now - b.value) / b.value;
    if (change > b.noise) {
      status = `FELL ${(change * 100).toFixed(0)}%`;
      fell.push(name);
    } else status = change < -b.noise ? 'better' : 'ok';
  }
  rows.push([name, b ? b.value.toFixed(3) : '-', Number.isFinite(now) ? now.toFixed(3) : '-', b ? `±${(b.noise * 100).toFixed(0)}%` : '-', status, `${meta[name].what} (${meta[name].better} is better)`]);
}
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
console.log();
for (const r of rows) console.log(r.map((cell, c) => (c === 1 || c === 2 ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ').trimEnd());
console.log();
console.log(`bench:check: ${elapsed.toFixed(0)} s, 1-min load ${load0.toFixed(1)} → ${load1.toFixed(1)} (2 vCPUs are shared here: a high load moves every figure)${baseline ? '' : '; no baseline yet'}`);
if (baseline) {
  // The updates the compared ratios come from (a ratio without its own `when`: the file's header).
  const whens = new Set(Object.keys(meta).flatMap((n) => (baseline.ratios[n] ? [baseline.ratios[n].when ?? baseline.when] : [])));
  for (const w of whens) {
    const u = baseline.updates?.find((x) => x.when === w);
    console.log(`bench:check: baseline of ${w} (${u?.why ?? baseline.why})`);
  }
}
if (failedParts.length) console.log(`bench:check: part(s) that did not run: ${failedParts.join(', ')}`);
if (fell.length) console.log(`bench:check: fell by more than their noise: ${fell.join(', ')}`);
process.exit(fell.length || failedParts.length ? 1 : 0);

function round(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}
