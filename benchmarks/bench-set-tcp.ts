/**
 * set against memcpy, and tcp against iperf3, each side by side in one run (issue 27, goals 3-4).
 *
 *   npm run build && npx tsx benchmarks/bench-set-tcp.ts [--rounds 2] [--duration 2] [--warmup 0.5] [--out bench-results/set-tcp.md]
 *     [--model deepseek-v3 [--tp 1] [--batch 8]] [--only shm|tcp]
 *
 * `--model` runs the same comparison at a real model's page (schema/models.json, as the sweeps'
 * `--model`): a set call then carries tens of MiB, and the directory round trip it waits for is
 * spread over them; its RATIOS are named for the model. `--only` runs one half.
 *
 * Per round, alternating:
 * - `saturation --op set --protocol shm --concurrencies 1,2` (mla, 128 KiB, batch 32) against
 *   memcpy at 1 and 2 threads over the same footprint: each thread copies batches of 32 blocks of
 *   128 KiB from its share of the row's host pool into its own destination the size of the row's
 *   published pool (what a set worker copies, without the store);
 * - `saturation --op get|set --protocol tcp --concurrencies 1,2` against `iperf3` over loopback
 *   with 1 and 2 streams (what the kernel moves between two processes on this host).
 * (Geometry above is the default: mla, 128 KiB, batch 32.) Medians over rounds; ratios at 1 and 2 workers. The last line is `RATIOS {json}`.
 */
import { loadavg } from 'node:os';
import { Worker } from 'node:worker_threads';
import { args, flag, orUsage, positiveInt, reportLog, usage } from './lib/cli.js';
import { built } from './lib/built.js';
import { iperf3Loopback } from './lib/iperf.js';
import { median } from './lib/stats.js';

const { runSweep, setPoolPages } = await built<typeof import('../src/bench/sweep.js')>('bench/sweep.js');
const { modelPage } = await built<typeof import('../src/bench/models.js')>('bench/models.js');

const rounds = Number(flag('--rounds', '2'));
const durationS = Number(flag('--duration', '2'));
const warmupS = Number(flag('--warmup', '0.5'));
const out = flag('--out', '');
const model = flag('--model', '');
const only = flag('--only', '');
if (only !== '' && only !== 'shm' && only !== 'tcp') usage(`--only: shm or tcp, got '${only}'`);
const geometry = model
  ? orUsage(() => modelPage(model, { tp: positiveInt('--tp', '1'), tokensPerPage: 64 }))
  : { model: '', layout: 'mla' as const, pageBytes: 131072, tp: 1, tokensPerPage: 64 };
const PAGE = geometry.pageBytes;
const LAYOUT = geometry.layout;
// MHA pages are two objects (k and v): a set copies both.
const OBJECTS = LAYOUT === 'mha' ? 2 : 1;
const BATCH = positiveInt('--batch', model ? '8' : '32');
const { log, save } = reportLog();

/** GB/s of `threads` threads copying batches of blocks from a shared source span into private destinations. */
async function memcpyRate(threads: number, seconds: number): Promise<number> {
  // The sweep's auto host pool: twice its widest row's pages in flight (2 workers x 32), shared by the row's workers.
  const hostPages = 2 * 2 * BATCH * OBJECTS;
  const src = new SharedArrayBuffer(hostPages * PAGE);
  new Uint8Array(src).fill(7);
  // As the sweep sizes a set worker's pool: its cycle counted in whole pages (k and v for MHA).
  const dstPages = setPoolPages(BATCH, threads, PAGE * OBJECTS) * OBJECTS;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { src, index, threads, hostPages, dstPages, page, batch, seconds } = workerData;
    const s = new Uint8Array(src);
    const d = Buffer.alloc(dstPages * page, 1);
    const share = Math.floor(hostPages / threads);
    let sc = 0, dc = 0, bytes = 0;
    const step = () => {
      for (let i = 0; i < batch; i++) {
        const sp = index * share + ((sc + i) % share);
        const dp = (dc + i) % dstPages;
        d.set(s.subarray(sp * page, (sp + 1) * page), dp * page);
      }
      sc = (sc + batch) % share;
      dc = (dc + batch) % dstPages;
      bytes += batch * page;
    };
    const warm = Date.now() + 300;
    while (Date.now() < warm) step();
    bytes = 0;
    const t0 = process.hrtime.bigint();
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) step();
    parentPort.postMessage({ bytes, ns: Number(process.hrtime.bigint() - t0) });
  `;
  const results = await Promise.all(
    Array.from({ length: threads }, (_, index) =>
      new Promise<{ bytes: number; ns: number }>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { src, index, threads, hostPages, dstPages, page: PAGE, batch: BATCH * OBJECTS, seconds } });
        w.once('message', resolve);
        w.once('error', reject);
      }),
    ),
  );
  return results.reduce((s, r) => s + r.bytes / (r.ns / 1e9), 0) / 1e9;
}

/** iperf3 over loopback: GB/s of `streams` parallel streams for `seconds`. */
async function iperf(streams: number, seconds: number): Promise<number> {
  return (await iperf3Loopback(streams, seconds)).gbps;
}

async function sweep(op: 'get' | 'set', protocol: 'shm' | 'tcp'): Promise<number[]> {
  const report = await runSweep({ mode: 'saturation', op, protocol, concurrencies: [1, 2], durationS, warmupS, pageBytes: PAGE, batchSize: BATCH, layout: LAYOUT });
  return report.results.map((r) => (r.ok ? r.throughput_gbps : NaN));
}

const series: Record<string, number[]> = {};
const add = (k: string, v: number) => (series[k] ??= []).push(v);
const loads: string[] = [];
for (let r = 0; r < rounds; r++) {
  loads.push(loadavg()[0].toFixed(1));
  if (only !== 'tcp') {
    const [set1, set2] = await sweep('set', 'shm');
    add('shm set x1', set1);
    add('shm set x2', set2);
    add('memcpy x1', await memcpyRate(1, durationS));
    add('memcpy x2', await memcpyRate(2, durationS));
  }
  if (only !== 'shm') {
    add('iperf3 -P 1', await iperf(1, durationS));
    add('iperf3 -P 2', await iperf(2, durationS));
    const [tget1, tget2] = await sweep('get', 'tcp');
    add('tcp get x1', tget1);
    add('tcp get x2', tget2);
    const [tset1, tset2] = await sweep('set', 'tcp');
    add('tcp set x1', tset1);
    add('tcp set x2', tset2);
  }
  console.error(`round ${r + 1}: ${Object.entries(series).map(([k, v]) => `${k} ${v[v.length - 1].toFixed(2)}`).join(', ')}`);
}
const m = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, median(v)]));
const ratios = {
  set1_vs_memcpy1: m['shm set x1'] / m['memcpy x1'],
  set2_vs_memcpy2: m['shm set x2'] / m['memcpy x2'],
  tcp_get1_vs_iperf1: m['tcp get x1'] / m['iperf3 -P 1'],
  tcp_get2_vs_iperf2: m['tcp get x2'] / m['iperf3 -P 2'],
  tcp_set1_vs_iperf1: m['tcp set x1'] / m['iperf3 -P 1'],
  tcp_set2_vs_iperf2: m['tcp set x2'] / m['iperf3 -P 2'],
};
log('# set against memcpy, tcp against iperf3 (issue 27, goals 3-4)');
log();
log(`- command: \`${['npx tsx benchmarks/bench-set-tcp.ts', ...args].join(' ')}\` (after \`npm run build\`)`);
log(`- when: ${new Date().toISOString()}; 1-min load at each round: ${loads.join(', ')} (2 vCPUs, shared)`);
const what = model ? `${model} (tp ${geometry.tp}, 64 tokens per page): ${LAYOUT}, ${PAGE.toLocaleString('en-US')} B per object x ${OBJECTS}` : 'mla, 128 KiB pages';
log(`- ${what}, batch ${BATCH}; sweeps of ${durationS} s per row after ${warmupS} s warmup; medians over ${rounds} rounds (each round: ${[only !== 'tcp' ? 'set shm, memcpy' : '', only !== 'shm' ? 'iperf3, tcp get, tcp set' : ''].filter(Boolean).join(', ')})`);
log('- memcpy: the same footprint as the set rows (each thread: its share of the host pool → its own destination of the row\'s published-pool size, batches of the same objects); iperf3: loopback, one and two streams, between two processes');
log();
log('| what | GB/s (median) | rounds |');
log('|---|---:|---|');
for (const [k, v] of Object.entries(series)) log(`| ${k} | ${m[k].toFixed(2)} | ${v.map((x) => x.toFixed(2)).join(', ')} |`);
log();
log('| ratio | value | target |');
log('|---|---:|---|');
const rows: [string, number, string][] = [
  ['shm set x1 / memcpy x1', ratios.set1_vs_memcpy1, '≥ 0.85'],
  ['shm set x2 / memcpy x2', ratios.set2_vs_memcpy2, '≥ 0.85'],
  ['tcp get x1 / iperf3 -P 1', ratios.tcp_get1_vs_iperf1, '≥ 0.8'],
  ['tcp get x2 / iperf3 -P 2', ratios.tcp_get2_vs_iperf2, '≥ 0.8'],
  ['tcp set x1 / iperf3 -P 1', ratios.tcp_set1_vs_iperf1, '≥ 0.8'],
  ['tcp set x2 / iperf3 -P 2', ratios.tcp_set2_vs_iperf2, '≥ 0.8'],
];
// A half left out by --only has no ratio: no row.
for (const [what, value, target] of rows) if (Number.isFinite(value)) log(`| ${what} | ${value.toFixed(3)} | ${target} |`);
log();
save(out);
// At a model's page the ratios are named for it (set1_vs_memcpy1_deepseek_v3): bench:check keeps both.
const suffix = model ? `_${model.replace(/[^a-z0-9]+/gi, '_')}${geometry.tp > 1 ? `_tp${geometry.tp}` : ''}` : '';
console.log(`RATIOS ${JSON.stringify(Object.fromEntries(Object.entries(ratios).filter(([, v]) => Number.isFinite(v)).map(([k, v]) => [k + suffix, v])))}`);
