/**
 * Why a 64-worker get row reads slower than a 2-worker row on a 2-core machine, and what
 * non-temporal copies change. Two measurements, each run in child processes with and without
 * `GLIBC_TUNABLES=glibc.cpu.x86_non_temporal_threshold=0x8000` (glibc reads it at process start;
 * UCX's shm READ is a libc memcpy, which then writes 128 KiB blocks with non-temporal stores):
 *
 * 1. Without the engine: one client thread READs 32 x 128 KiB blocks per call from a 512 MiB
 *    producer region (cache-cold source, as the suite) into destination spans of growing size:
 *    64 workers with a 32-page host pool each write into 64 x 4 MiB = 256 MiB of distinct
 *    destinations per round, 2 workers into 8 MiB. Spans alternate in 250 ms bursts; medians.
 * 2. The engine: `peercache-bench throughput --op get --protocol shm` at concurrency 2 and 64.
 *
 *   npm run build && npx tsx benchmarks/bench-footprint.ts [--rounds 2] [--cycles 10] [--duration 6] [--out bench-results/footprint-shm.md]
 */
import { childOutput, passStderr } from '../src/bench/child-process.js';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { resolveConnection, storeConfig } from '../src/bench/engine/connection.js';
import { freePort } from '../src/bench/engine/net.js';
import { startProducer } from '../src/bench/engine/producer.js';
import type { Report } from '../src/bench/report/types.js';
import { silentLogger } from '../src/log.js';
import { openTransport } from '../src/transport/index.js';
import { alignedBytes } from '../src/transport/memory.js';
import { OpList } from '../src/transport/op-list.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const PAGE = 131072;
const BATCH = 32;
const SOURCE_BLOCKS = 4096;
const MiB = 2 ** 20;
const NT = 'glibc.cpu.x86_non_temporal_threshold=0x8000';
/** Destination spans: one worker's host pool (4 MiB), then 2, 8, 16 and 64 workers' worth. */
const spans = [4, 8, 32, 64, 256].map((m) => m * MiB);
const cycles = Number(flag('--cycles', '10'));

/** Measurement 1, in this process: GB/s per destination span. */
async function spanRates(): Promise<number[]> {
  const store = storeConfig(resolveConnection({ protocol: 'shm' }), { discoveryAddr: `127.0.0.1:${await freePort()}` });
  const producer = await startProducer({ ...store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, sets: [], rawBytes: SOURCE_BLOCKS * PAGE, fill: false, nodeId: 'footprint', logLevel: 'warning' }, silentLogger);
  const node = await openTransport({ protocol: 'shm', host: '127.0.0.1' });
  const rates = spans.map((): number[] => []);
  try {
    const ep = await node.connect(Buffer.from(producer.raw!.address, 'base64'));
    const remote = ep.attach(Buffer.from(producer.raw!.descriptor, 'base64'));
    const local = node.register(alignedBytes(Math.max(...spans), false));
    const list = new OpList(BATCH);
    const ops = list.ops;
    let r = 0;
    const call = async (span: number) => {
      const slots = span / PAGE;
      for (let j = 0; j < BATCH; j++) {
        list.set(j, ((r * BATCH + j) % SOURCE_BLOCKS) * PAGE, 0, ((r * BATCH + j) % slots) * PAGE, PAGE);
      }
      r++;
      await ep.read(remote, [local], ops, BATCH);
    };
    for (let c = -2; c < cycles; c++) {
      for (let s = 0; s < spans.length; s++) {
        const t0 = performance.now();
        let n = 0;
        while (performance.now() - t0 < 250) {
          await call(spans[s]);
          n++;
        }
        if (c >= 0) rates[s].push((n * BATCH * PAGE) / ((performance.now() - t0) / 1000) / 1e9);
      }
    }
    ep.close();
    local.free();
  } finally {
    await node.close();
    await producer.stop();
  }
  return rates.map(median);
}

if (args.includes('--child')) {
  process.stdout.write(JSON.stringify(await spanRates()) + '\n');
  process.exit(0);
}

const rounds = Number(flag('--rounds', '2'));
const durationS = flag('--duration', '6');
const out = flag('--out', '');
const env = (nt: boolean) => ({ ...process.env, GLIBC_TUNABLES: nt ? NT : '' });
const self = fileURLToPath(import.meta.url);
const cli = fileURLToPath(new URL('../dist/cli/peercache-bench.js', import.meta.url));
const spanRuns: Record<'plain' | 'nt', number[][]> = { plain: [], nt: [] };
const getRuns: Record<'plain' | 'nt', Record<number, number[]>> = { plain: { 2: [], 64: [] }, nt: { 2: [], 64: [] } };
const loads: string[] = [];
for (let round = 0; round < rounds; round++) {
  loads.push(loadavg()[0].toFixed(1));
  // Alternate the order per round so drift does not favour one variant.
  const variants = round % 2 ? (['nt', 'plain'] as const) : (['plain', 'nt'] as const);
  for (const v of variants) {
    const text = await childOutput({ label: 'footprint spans', command: process.execPath, args: ['--import', 'tsx', self, '--child', '--cycles', String(cycles)], env: env(v === 'nt'), onLine: passStderr });
    spanRuns[v].push(JSON.parse(text.trim().split('\n').pop()!) as number[]);
    for (const c of [2, 64]) {
      const json = await childOutput({ label: `peercache-bench throughput x${c}`, command: process.execPath, args: [cli, 'throughput', '--op', 'get', '--protocol', 'shm', '--concurrency', String(c), '--duration', durationS, '--warmup', '2', '--json', '--out-dir', '/tmp/peercache-footprint'], env: env(v === 'nt'), keepBytes: 64 * MiB });
      const row = (JSON.parse(json) as Report).results[0];
      if (!row.ok) throw new Error(`get at ${c}: ${row.note}`);
      getRuns[v][c].push(row.throughput_gbps);
    }
    console.error(`round ${round + 1} ${v}: spans ${spanRuns[v].at(-1)!.map((g) => g.toFixed(2)).join(' ')}; get@2 ${getRuns[v][2].at(-1)} get@64 ${getRuns[v][64].at(-1)}`);
  }
}

const { log, save } = reportLog();
const fmt = (x: number) => x.toFixed(2);
const spanMedian = (v: 'plain' | 'nt', s: number) => median(spanRuns[v].map((r) => r[s]));
log('# Destination footprint, oversubscription and non-temporal copies (shm, 128 KiB pages, batch 32)');
log('');
log(`- date: ${new Date().toISOString()}; host: ${cpus()[0]?.model} x ${cpus().length}; node ${process.version}; 1-min load at each round: ${loads.join(', ')}`);
log(`- command: \`npx tsx benchmarks/bench-footprint.ts ${args.join(' ')}\``);
log(`- plain: the default glibc; NT: \`GLIBC_TUNABLES=${NT}\` (UCX's shm READ is a libc memcpy; with it, copies of 32 KiB and up use non-temporal stores); ${rounds} rounds, order alternated, medians`);
log('');
log(`## 1. One client thread, no engine: destination span vs READ GB/s`);
log('');
log(`READs of ${BATCH} x 128 KiB per call from a ${(SOURCE_BLOCKS * PAGE) / MiB} MiB region in a producer process (cache-cold source) into a destination span cycled block by block; spans alternate in 250 ms bursts, ${cycles} cycles per run.`);
log('');
log('| destination span | as in a get row | plain GB/s | plain vs 4 MiB | NT GB/s | NT / plain |');
log('|---|---|---|---|---|---|');
spans.forEach((span, s) => {
  const p = spanMedian('plain', s);
  const n = spanMedian('nt', s);
  log(`| ${span / MiB} MiB | ${span / (4 * MiB)} worker(s)' host pools | ${fmt(p)} | ${fmt(p / spanMedian('plain', 0))} | ${fmt(n)} | ${fmt(n / p)} |`);
});
log('');
log(`## 2. The engine: \`peercache-bench throughput --op get --protocol shm --concurrency C --duration ${durationS} --warmup 2\``);
log('');
log('| variant | get GB/s at 2 | get GB/s at 64 | 64 / 2 |');
log('|---|---|---|---|');
for (const v of ['plain', 'nt'] as const) {
  const g2 = median(getRuns[v][2]);
  const g64 = median(getRuns[v][64]);
  log(`| ${v} | ${fmt(g2)} | ${fmt(g64)} | ${fmt(g64 / g2)} |`);
}
log(`| NT / plain | ${fmt(median(getRuns.nt[2]) / median(getRuns.plain[2]))} | ${fmt(median(getRuns.nt[64]) / median(getRuns.plain[64]))} | |`);
save(out);
