/**
 * The suite's speed checks , side by side in one run on shm with the seed's parameters
 * (mla, 128 KiB pages, batch 32):
 * - the get PEAK of a saturation sweep against the bare data-plane READ (micro transport-read) at
 *   the same block and batch: target >= 0.85;
 * - the get row at concurrency 64 against the get PEAK: target >= 0.8 on this 2-core machine;
 * - the client CPU use and memory per worker of every row.
 * Alternates micro and the sweep for --rounds rounds and compares medians (the machine drifts).
 *
 *   npm run build && node --single-threaded-gc --import tsx benchmarks/bench-suite.ts [--rounds 2] [--duration 5] [--warmup 1] [--out bench-results/suite-speed-shm.md]
 *
 * The sweep's workers are threads of this process: start node with --single-threaded-gc, as the
 * peercache-bench executable does (src/bench/engine/gc-flags.ts), or the 64-worker row measures
 * V8's background GC.
 */
import { cpus, loadavg } from 'node:os';
import type { Row } from '../src/bench/report/types.js';
import { built } from './lib/built.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const { runSweep } = await built<typeof import('../src/bench/sweep.js')>('bench/sweep.js');
const { runRow } = await built<typeof import('../src/bench/engine/row.js')>('bench/engine/row.js');
const { outcomeToRow } = await built<typeof import('../src/bench/report/outcome.js')>('bench/report/outcome.js');
const { startProducer } = await built<typeof import('../src/bench/engine/producer.js')>('bench/engine/producer.js');
const { silentLogger } = await built<typeof import('../src/log.js')>('log.js');

const PAGE = 131072;
const BATCH = 32;
const WORKING_SET = 4096;

/** The bare data-plane READ on the engine (micro's transport path) over the same 512 MiB the sweep reads. */
async function bareRead(threads: number): Promise<number> {
  const port = 20000 + Math.floor(Math.random() * 20000);
  const discoveryAddr = `127.0.0.1:${port}`;
  const store = { discoveryAddr, protocol: 'shm' as const, devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 10_000 };
  const producer = await startProducer({ ...store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, sets: [], fill: false, rawBytes: WORKING_SET * PAGE, nodeId: 'bare', logLevel: 'warning' }, silentLogger);
  try {
    const row = outcomeToRow(await runRow(
      {
        op: 'read', path: 'transport-read', rowOp: 'read', threads, batchSize: BATCH, phase: 'single', components: 1, tokensPerPage: 64, warmupS, durationS, note: '',
        task: { store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, keyPrefix: '', workingSet: 0, publishBytes: 0, verify: false, raw: producer.raw, connectTimeoutMs: 60_000 },
      },
      { index: 0, rows: 1, logger: silentLogger },
    ));
    return row.throughput_gbps;
  } finally {
    await producer.stop();
  }
}

const rounds = Number(flag('--rounds', '2'));
const durationS = Number(flag('--duration', '10'));
const warmupS = Number(flag('--warmup', '2'));
const out = flag('--out', '');
const concurrencies = [1, 2, 4, 8, 16, 32, 64];
const { log, save } = reportLog();

const bare: number[] = [];
const bare64: number[] = [];
const sweeps: Row[][] = [];
const loads: string[] = [];
for (let r = 0; r < rounds; r++) {
  loads.push(loadavg()[0].toFixed(1));
  const byThreads = [await bareRead(1), await bareRead(2), await bareRead(4)];
  console.error(`round ${r + 1}: bare READ at 1, 2, 4 threads: ${byThreads.map((g) => g.toFixed(2)).join(', ')} GB/s`);
  bare.push(Math.max(...byThreads));
  bare64.push(await bareRead(64));
  const report = await runSweep({ mode: 'saturation', op: 'get', protocol: 'shm', concurrencies, durationS, warmupS });
  sweeps.push(report.results);
}
const perConc = concurrencies.map((c, i) => ({
  c,
  gbps: median(sweeps.map((rows) => rows[i].throughput_gbps)),
  p50: median(sweeps.map((rows) => rows[i].lat_us_p50 ?? 0)),
  p99: median(sweeps.map((rows) => rows[i].lat_us_p99 ?? 0)),
  cpu: median(sweeps.map((rows) => rows[i].cpu_client_pct ?? 0)),
  rss: median(sweeps.map((rows) => rows[i].rss_per_worker_bytes ?? 0)),
  ok: sweeps.every((rows) => rows[i].ok),
}));
const bareG = median(bare);
const peak = perConc.reduce((a, b) => (b.gbps > a.gbps ? b : a));
const at64 = perConc.find((x) => x.c === 64)!;
log('# Suite speed checks (shm, mla, 128 KiB pages, batch 32)');
log('');
log(`- date: ${new Date().toISOString()}; host: ${cpus()[0]?.model} x ${cpus().length}; node ${process.version}; 1-min load at each round: ${loads.join(', ')}`);
log(`- command: \`node ${process.execArgv.includes('--single-threaded-gc') ? '--single-threaded-gc ' : ''}--import tsx benchmarks/bench-suite.ts ${args.join(' ')}\``);
log(`- each round: the bare data-plane READ on the same engine (micro's transport path: every worker its own endpoint, READs of 32 x 128 KiB blocks per call) over the same 512 MiB at 1, 2 and 4 threads (the best is the bare READ), then \`peercache-bench saturation --op get --protocol shm --concurrencies ${concurrencies.join(',')}\`; ${durationS} s measured per row after ${warmupS} s warmup; medians over ${rounds} rounds; working set 4096 pages (512 MiB, cache-cold)`);
log('');
log('| concurrency | get GB/s | p50 µs | p99 µs | client CPU % | RSS per worker MiB |');
log('|---|---|---|---|---|---|');
for (const x of perConc) log(`| ${x.c}${x === peak ? ' (PEAK)' : ''} | ${x.gbps.toFixed(2)} | ${x.p50.toFixed(0)} | ${x.p99.toFixed(0)} | ${x.cpu.toFixed(0)} | ${(x.rss / 2 ** 20).toFixed(1)} |`);
log('');
log('| check | value | target |');
log('|---|---|---|');
log(`| bare data-plane READ (transport-read over the same 512 MiB, best of 1, 2, 4 threads) | ${bareG.toFixed(2)} GB/s | |`);
log(`| get PEAK / bare READ | ${(peak.gbps / bareG).toFixed(2)} | >= 0.85 ${peak.gbps / bareG >= 0.85 ? 'PASS' : 'FAIL'} |`);
log(`| get at concurrency 64 / get PEAK | ${(at64.gbps / peak.gbps).toFixed(2)} | >= 0.8 ${at64.gbps / peak.gbps >= 0.8 ? 'PASS' : 'FAIL'} |`);
log(`| every row ok | ${perConc.every((x) => x.ok)} | |`);
log(`| for reference: the bare READ at 64 threads / the bare READ | ${(median(bare64) / bareG).toFixed(2)} (${median(bare64).toFixed(2)} GB/s) | |`);
save(out);
// For bench-check.ts.
console.log(`RATIOS ${JSON.stringify({ get_peak_vs_read: peak.gbps / bareG, x64_vs_peak: at64.gbps / peak.gbps })}`);
