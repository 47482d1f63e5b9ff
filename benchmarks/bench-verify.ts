/**
 * What --verify costs: get at 128 KiB (batch 32, shm) with verify off, --verify-mode sample (the
 * default) and --verify-mode full, interleaved in rounds in one run (so drift hits all three
 * alike); prints each mode's median pages/s and its ratio to off. Target: sample >= 0.9.
 *
 *   npx tsx benchmarks/bench-verify.ts [--rounds 8] [--duration 1.5] [--threads 2] [--out bench-results/verify-cost.md]
 */
import { cpus, loadavg } from 'node:os';
import { startProducer } from '../src/bench/engine/producer.js';
import { runRow } from '../src/bench/engine/row.js';
import { freePort } from '../src/bench/engine/net.js';
import { outcomeToRow } from '../src/bench/report/outcome.js';
import { fillPage, pageSeed, verifyPage, verifyPageSampled } from '../src/bench/engine/pattern.js';
import { silentLogger } from '../src/log.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const PAGE = 131072;
const BATCH = 32;
const WS = Number(flag('--working-set', '1024'));
const rounds = Number(flag('--rounds', '8'));
const durationS = Number(flag('--duration', '1.5'));
const warmupS = Number(flag('--warmup', '0.5'));
const threads = Number(flag('--threads', '2'));
const out = flag('--out', '');
const { log, save } = reportLog();

const discoveryAddr = `127.0.0.1:${await freePort('127.0.0.1')}`;
const store = { discoveryAddr, protocol: 'shm' as const, devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 10_000 };
const load = loadavg()[0].toFixed(2);
const producer = await startProducer({ ...store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, sets: [{ prefix: 'pcbench/get', count: WS }], fill: true, nodeId: 'verify-bench', logLevel: 'warning' }, silentLogger);
type Mode = 'off' | 'sample' | 'full';
const modes: Mode[] = ['off', 'sample', 'full'];
const results: Record<Mode, number[]> = { off: [], sample: [], full: [] };
/** Client CPU µs per page read (all threads), per mode and round: robust to other load on the machine. */
const cpuPerPage: Record<Mode, number[]> = { off: [], sample: [], full: [] };
const wrong: Record<Mode, number> = { off: 0, sample: 0, full: 0 };
try {
  for (let r = 0; r < rounds; r++) {
    // Alternate the order each round (off,sample,full / full,sample,off) so drift cancels.
    for (const mode of r % 2 ? [...modes].reverse() : modes) {
      const row = outcomeToRow(
        await runRow(
          {
            op: 'get', path: 'hicache-get', rowOp: 'get', threads, batchSize: BATCH, phase: 'single', components: 1, tokensPerPage: 64, warmupS, durationS, note: mode,
            task: { store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, keyPrefix: 'pcbench/get', workingSet: WS, publishBytes: 0, verify: mode !== 'off', verifyMode: mode === 'full' ? 'full' : 'sample', raw: null, connectTimeoutMs: 60_000 },
          },
          { index: 0, rows: 1, logger: silentLogger },
        ),
      );
      if (!row.ok) throw new Error(`${mode}: ${row.note}`);
      results[mode].push(row.pages_per_s);
      if (row.cpu_client_pct !== null && row.pages > 0) cpuPerPage[mode].push(((row.cpu_client_pct / 100) * row.duration_s * 1e6) / row.pages);
      wrong[mode] += row.wrong_pages ?? 0;
      console.error(`round ${r + 1} ${mode}: ${row.pages_per_s} pages/s (${row.pages_verified ?? '-'} verified)`);
    }
  }
} finally {
  await producer.stop();
}
const med = (m: Mode) => median(results[m]);
/** The median over rounds of the ratio to off measured in the same round (robust to a loaded machine). */
const pairedRatio = (m: Mode) => median(results[m].map((x, i) => x / results.off[i]));
log('# What --verify costs: get, 128 KiB pages, batch 32, shm');
log('');
log(`- date: ${new Date().toISOString()}; host: ${cpus()[0]?.model} x ${cpus().length}; node ${process.version}; load average before: ${load}`);
log(`- command: \`npx tsx benchmarks/bench-verify.ts ${args.join(' ')}\``);
log(`- ${threads} workers, working set ${WS} pages filled with the key/generation pattern; ${rounds} rounds of off, sample, full interleaved, ${durationS} s windows after ${warmupS} s warmup`);
log('');
log('| verify | median pages/s | GB/s | ratio to off (median of per-round ratios) | target | wrong pages | rounds (pages/s) |');
log('|---|---:|---:|---:|---|---:|---|');
for (const m of modes) {
  const ratio = pairedRatio(m);
  const target = m === 'sample' ? `>= 0.9 ${ratio >= 0.9 ? 'PASS' : 'FAIL'}` : '';
  log(`| ${m} | ${med(m).toFixed(0)} | ${((med(m) * PAGE) / 1e9).toFixed(2)} | ${ratio.toFixed(3)} | ${target} | ${m === 'off' ? '-' : wrong[m]} | ${results[m].map((x) => x.toFixed(0)).join(', ')} |`);
}
log('');
log(`Per-round ratios sample/off: ${results.sample.map((x, i) => (x / results.off[i]).toFixed(2)).join(', ')}; full/off: ${results.full.map((x, i) => (x / results.off[i]).toFixed(2)).join(', ')}.`);
log('');
log('CPU time, which other load on the machine does not inflate the way it does wall-clock rates:');
log('');
log('| verify | client CPU µs per page read (median) | verify CPU µs per page, isolated | modelled ratio to off (CPU-bound) |');
log('|---|---:|---:|---:|');
const page = new Uint8Array(PAGE);
fillPage(page, pageSeed(1, 0));
const isolated = (check: (b: Uint8Array, s: number) => boolean, n: number) => {
  for (let i = 0; i < n / 10; i++) check(page, pageSeed(1, 0));
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) if (!check(page, pageSeed(1, 0))) throw new Error('pattern');
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / n;
};
const iso: Record<Mode, number> = { off: 0, sample: isolated(verifyPageSampled, 200_000), full: isolated(verifyPage, 2_000) };
const offCpu = median(cpuPerPage.off);
for (const m of modes) log(`| ${m} | ${median(cpuPerPage[m]).toFixed(2)} | ${iso[m].toFixed(3)} | ${(offCpu / (offCpu + iso[m])).toFixed(3)} |`);
log('');
log('sample checks the first and last word and one word per 4 KiB of every page (33 words of a 128 KiB page): a page of another key, component or generation, or one not written, fails; full checks every word.');
save(out);
