/**
 * The fixed footprint: a get saturation sweep (shm, 128 KiB pages, batch 32, 1..64 workers) with
 * one host pool shared by each row's workers (--host-pool auto: 2 x 64 x 32 pages = 512 MiB in
 * every row), with and without V8's --single-threaded-gc (see src/bench/engine/gc-flags.ts), next
 * to per-worker pools (the footprint grows 64x from 1 to 64 workers). V8 flags are per process, so
 * each sweep runs in its own node process; sweeps alternate round by round. Prints each sweep's
 * pages/s per concurrency, its PEAK and the 64-worker row's ratio to the PEAK (target with the
 * shared pool: >= 0.8).
 *
 *   npx tsx benchmarks/bench-host-pool.ts [--rounds 1] [--duration 2] [--warmup 1] [--out bench-results/host-pool-shm.md]
 */
import { childOutput, passStderr } from '../src/bench/child-process.js';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { runSweep } from '../src/bench/sweep.js';
import { SINGLE_THREADED_GC } from '../src/bench/engine/gc-flags.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const concurrencies = [1, 2, 4, 8, 16, 32, 64];
type Variant = 'shared, single-threaded GC' | 'shared, default GC' | 'per-worker, single-threaded GC';
const variants: Variant[] = ['shared, single-threaded GC', 'shared, default GC', 'per-worker, single-threaded GC'];
type SweepOut = { pagesPerS: (number | null)[]; failures: string[]; poolBytes: number; cpuPct: (number | null)[] };

const durationS = Number(flag('--duration', '2'));
const warmupS = Number(flag('--warmup', '1'));

if (args[0] === '--child') {
  // One sweep in this process; the parent chose its node flags.
  const hostPool = flag('--host-pool', 'auto') === 'per-worker' ? 'per-worker' : 'auto';
  const report = await runSweep({ mode: 'saturation', op: 'get', protocol: 'shm', pageBytes: 131072, batchSize: 32, concurrencies, durationS, warmupS, hostPool });
  const out: SweepOut = {
    pagesPerS: report.results.map((x) => (x.ok ? x.pages_per_s : null)),
    failures: report.results.filter((x) => !x.ok).map((x) => `x${x.threads}: ${x.note}`),
    poolBytes: Number(report.meta.host_pool_bytes ?? 0),
    cpuPct: report.results.map((x) => x.cpu_client_pct),
  };
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

const rounds = Number(flag('--rounds', '1'));
const out = flag('--out', '');
const { log, save } = reportLog();
const sweeps: Record<Variant, SweepOut[]> = { 'shared, single-threaded GC': [], 'shared, default GC': [], 'per-worker, single-threaded GC': [] };
const loads: string[] = [];
const self = fileURLToPath(import.meta.url);
for (let r = 0; r < rounds; r++) {
  for (const v of r % 2 ? [...variants].reverse() : variants) {
    loads.push(loadavg()[0].toFixed(1));
    const nodeFlags = v.endsWith('single-threaded GC') ? [SINGLE_THREADED_GC] : [];
    const text = await childOutput({
      label: `host-pool sweep (${v})`,
      command: process.execPath,
      args: [...nodeFlags, '--import', 'tsx', self, '--child', '--host-pool', v.startsWith('per-worker') ? 'per-worker' : 'auto', '--duration', String(durationS), '--warmup', String(warmupS)],
      onLine: passStderr,
    });
    const sweep = JSON.parse(text.trim().split('\n').pop()!) as SweepOut;
    for (const f of sweep.failures) console.error(`${v}: ${f}`);
    sweeps[v].push(sweep);
    console.error(`round ${r + 1} ${v}: ${sweep.pagesPerS.map((x, i) => `${concurrencies[i]}:${x ?? 'failed'}`).join(' ')}`);
  }
}
const at = (v: Variant, i: number) => {
  const xs = sweeps[v].map((s) => s.pagesPerS[i]).filter((x): x is number => x !== null);
  return xs.length ? median(xs) : NaN;
};
const poolBytes = sweeps['shared, single-threaded GC'][0]?.poolBytes ?? 0;
log('# A fixed host pool across the sweep: get, shm, 128 KiB, batch 32, 1..64 workers');
log('');
log(`- date: ${new Date().toISOString()}; host: ${cpus()[0]?.model} x ${cpus().length}; node ${process.version}; 1-min load average before each sweep: ${loads.join(', ')}`);
log(`- command: \`npx tsx benchmarks/bench-host-pool.ts ${args.join(' ')}\``);
log(`- shared: one host pool of ${(poolBytes / 2 ** 20).toFixed(0)} MiB in every row, each worker cycling through its 1/N share; per-worker: each worker its own one-batch pool (4 MiB x N); ${rounds} round(s), sweeps alternating, ${durationS} s windows after ${warmupS} s warmup; working set 4096 pages`);
log(`- single-threaded GC: the sweep's node process started with \`${SINGLE_THREADED_GC}\` (what the peercache-bench executable does); default GC: without it. Each sweep in its own process.`);
log('');
log(`| sweep | ${concurrencies.map((c) => `x${c}`).join(' | ')} | PEAK (at) | x64 / PEAK | target |`);
log(`|---|${concurrencies.map(() => '---:').join('|')}|---:|---:|---|`);
for (const v of variants) {
  const xs = concurrencies.map((_, i) => at(v, i));
  const ok = xs.filter((x) => !Number.isNaN(x));
  const peak = ok.length ? Math.max(...ok) : NaN;
  const ratio = xs[xs.length - 1] / peak;
  const target = v.startsWith('shared') ? `>= 0.8 ${ratio >= 0.8 ? 'PASS' : 'FAIL'}` : '';
  log(`| ${v} | ${xs.map((x) => x.toFixed(0)).join(' | ')} | ${peak.toFixed(0)} (x${concurrencies[xs.indexOf(peak)]}) | ${ratio.toFixed(3)} | ${target} |`);
}
log('');
log('pages/s per row (median over rounds when more than one); NaN: the row failed (see the run\'s stderr).');
log('');
log('Client CPU % per row (100 = one core; median over rounds):');
log('');
log(`| sweep | ${concurrencies.map((c) => `x${c}`).join(' | ')} |`);
log(`|---|${concurrencies.map(() => '---:').join('|')}|`);
for (const v of variants) {
  const cpu = concurrencies.map((_, i) => {
    const xs = sweeps[v].map((s) => s.cpuPct[i]).filter((x): x is number => x !== null);
    return xs.length ? median(xs).toFixed(0) : '-';
  });
  log(`| ${v} | ${cpu.join(' | ')} |`);
}
save(out);
