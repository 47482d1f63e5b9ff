/**
 * The fixed footprint: a get saturation sweep (shm, 128 KiB pages, batch 32, 1..64 workers) with
 * one host pool shared by each row's workers (--host-pool auto: 2 x 64 x 32 pages = 512 MiB in
 * every row) next to per-worker pools (the footprint grows 64x from 1 to 64 workers), sweeps
 * alternating in one run. Prints each sweep's pages/s per concurrency, its PEAK and the 64-worker
 * row's ratio to the PEAK (target with the shared pool: >= 0.8).
 *
 *   npx tsx scripts/bench-host-pool.ts [--rounds 1] [--duration 2] [--warmup 1] [--out bench-results/host-pool-shm.md]
 */
import { cpus, loadavg } from 'node:os';
import { runSweep } from '../src/bench/sweep.js';
import type { Row } from '../src/bench/report/types.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const rounds = Number(flag('--rounds', '1'));
const durationS = Number(flag('--duration', '2'));
const warmupS = Number(flag('--warmup', '1'));
const out = flag('--out', '');
const concurrencies = [1, 2, 4, 8, 16, 32, 64];
const { log, save } = reportLog();
type Variant = 'shared' | 'per-worker';
const variants: Variant[] = ['shared', 'per-worker'];
const sweeps: Record<Variant, Row[][]> = { shared: [], 'per-worker': [] };
const loads: string[] = [];
let poolBytes = 0;
for (let r = 0; r < rounds; r++) {
  for (const v of r % 2 ? [...variants].reverse() : variants) {
    loads.push(loadavg()[0].toFixed(1));
    const report = await runSweep({
      mode: 'saturation', op: 'get', protocol: 'shm', pageBytes: 131072, batchSize: 32, concurrencies, durationS, warmupS,
      hostPool: v === 'shared' ? 'auto' : 'per-worker',
    });
    if (v === 'shared') poolBytes = Number(report.meta.host_pool_bytes);
    // A row that failed (e.g. workers starved on a loaded machine) is reported, not fatal.
    for (const x of report.results) if (!x.ok) console.error(`${v} x${x.threads} failed: ${x.note}`);
    sweeps[v].push(report.results);
    console.error(`round ${r + 1} ${v}: ${report.results.map((x) => `${x.threads}:${x.pages_per_s}`).join(' ')}`);
  }
}
const at = (v: Variant, i: number) => {
  const xs = sweeps[v].map((rows) => rows[i]).filter((x) => x.ok).map((x) => x.pages_per_s);
  return xs.length ? median(xs) : NaN;
};
log('# A fixed host pool across the sweep: get, shm, 128 KiB, batch 32, 1..64 workers');
log('');
log(`- date: ${new Date().toISOString()}; host: ${cpus()[0]?.model} x ${cpus().length}; node ${process.version}; load average before each sweep: ${loads.join(', ')}`);
log(`- command: \`npx tsx scripts/bench-host-pool.ts ${args.join(' ')}\``);
log(`- shared: one host pool of ${(poolBytes / 2 ** 20).toFixed(0)} MiB in every row, each worker cycling through its 1/N share; per-worker: each worker its own one-batch pool (4 MiB x N); ${rounds} round(s), sweeps alternating, ${durationS} s windows after ${warmupS} s warmup; working set 4096 pages`);
log('');
log(`| host pool | ${concurrencies.map((c) => `x${c}`).join(' | ')} | PEAK (at) | x64 / PEAK | target |`);
log(`|---|${concurrencies.map(() => '---:').join('|')}|---:|---:|---|`);
for (const v of variants) {
  const xs = concurrencies.map((_, i) => at(v, i));
  const peak = Math.max(...xs.filter((x) => !Number.isNaN(x)));
  const ratio = xs[xs.length - 1] / peak;
  log(`| ${v} | ${xs.map((x) => x.toFixed(0)).join(' | ')} | ${peak.toFixed(0)} (x${concurrencies[xs.indexOf(peak)]}) | ${ratio.toFixed(3)} | ${v === 'shared' ? `>= 0.8 ${ratio >= 0.8 ? 'PASS' : 'FAIL'}` : 'was 0.52-0.62'} |`);
}
log('');
log('pages/s per row (median over rounds when more than one); NaN: the row failed (see the run\'s stderr).');
save(out);
