/**
 * Where a set's time goes (issue 27 goal 4): one writer on this thread, as a sweep's set x1 row
 * sets it up (mla, 128 KiB pages, batch 32, a 2048-page published pool, fresh keys every call so
 * every call publishes and, once the pool is full, evicts 32), against the producer process's
 * embedded directory over shm; then a memcpy of the same footprint (host pool share → a
 * 2048-page destination), side by side, --rounds times alternating.
 *
 *   npx tsx benchmarks/bench-set-breakdown.ts [--rounds 3] [--seconds 2] [--out bench-results/set-breakdown.md]
 *     [--model deepseek-v3 [--batch 8]]
 *
 * `--model` (an MLA model of schema/models.json) takes its page instead of 128 KiB, a batch of 8
 * and the sweep's published pool for it (at most 1 GiB): the same call at a real page.
 *
 * Per batchSetV1 call (µs): the copies into the published pool (PublishedPool.publish x32: stamp,
 * copy, tag, stamp), the directory round trip (publish and the evictions' remove, sent back to
 * back, awaited together) and the rest (names, views, result arrays, promise turns). Timed by
 * wrapping the store's own methods on this thread; no change to the code measured.
 */
import { loadavg } from 'node:os';
import { startProducer } from '../src/bench/engine/producer.js';
import { freePort } from '../src/bench/engine/net.js';
import { silentLogger } from '../src/log.js';
import { HostKVPool } from '../src/store/host-pool.js';
import { PeerCacheStore } from '../src/store/peer-cache-store.js';
import { PublishedPool, publishedPoolBytes } from '../src/store/published-pool.js';
import { modelPage } from '../src/bench/models.js';
import { setPoolPages } from '../src/bench/sweep.js';
import { args, flag, orUsage, positiveInt, reportLog, usage } from './lib/cli.js';
import { median } from './lib/stats.js';

const model = flag('--model', '');
const geometry = model ? orUsage(() => modelPage(model, { tp: 1, tokensPerPage: 64 })) : null;
if (geometry !== null && geometry.layout !== 'mla') usage(`--model: an MLA model (one object per page), got ${model} (${geometry.layout})`);
const PAGE = geometry?.pageBytes ?? 131072;
const BS = positiveInt('--batch', geometry ? '8' : '32');
const POOL_PAGES = geometry ? setPoolPages(BS, 1, PAGE) : 2048;
const HOST_PAGES = 4 * BS;
const rounds = Number(flag('--rounds', '3'));
const seconds = Number(flag('--seconds', '2'));
const out = flag('--out', '');
const { log, save } = reportLog();

const us = () => Number(process.hrtime.bigint()) / 1e3;
const port = await freePort('127.0.0.1');
const base = { discoveryAddr: `127.0.0.1:${port}`, protocol: 'shm' as const, devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 10_000 };
const producer = await startProducer({ ...base, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, sets: [], fill: false, nodeId: 'breakdown-producer', logLevel: 'warning' }, silentLogger);
const host = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: HOST_PAGES, tokensPerPage: 64, buffer: new Uint8Array(new SharedArrayBuffer(HOST_PAGES * PAGE)) });
host.buffer.fill(7);
const store = await PeerCacheStore.open({ ...base, hostPool: host, globalSegmentBytes: publishedPoolBytes(POOL_PAGES, PAGE), nodeId: 'breakdown-writer', maxBytes: Number.MAX_SAFE_INTEGER });

const t = { copy: 0, publish: 0, remove: 0 };
const publishSlot = PublishedPool.prototype.publish;
PublishedPool.prototype.publish = function (this: PublishedPool, key: string, data: Uint8Array) {
  const a = us();
  try {
    return publishSlot.call(this, key, data);
  } finally {
    t.copy += us() - a;
  }
};
type Dir = { publish(e: unknown): Promise<unknown>; remove(e: unknown): Promise<unknown> };
const dir = (store as unknown as { directory: Dir }).directory;
const dirPublish = dir.publish.bind(dir);
const dirRemove = dir.remove.bind(dir);
dir.publish = async (e) => {
  const a = us();
  try {
    return await dirPublish(e);
  } finally {
    t.publish += us() - a;
  }
};
dir.remove = async (e) => {
  const a = us();
  try {
    return await dirRemove(e);
  } finally {
    t.remove += us() - a;
  }
};

const slots = Array.from({ length: HOST_PAGES / BS }, (_, s) => host.tokenIndices(Array.from({ length: BS }, (_, i) => s * BS + i)));
const keys = new Array<string>(BS);
let r = 0;
async function setCall(): Promise<void> {
  for (let j = 0; j < BS; j++) keys[j] = `pcbench/set/breakdown/${r}/${j}`;
  const idx = slots[r % slots.length];
  r++;
  await store.batchSetV1(keys, idx);
}

function memcpyRate(s: number): { gbps: number; perBatchUs: number } {
  // The pool's footprint in buffers of at most 1 GiB (one Buffer holds at most 4 GiB: 128 real pages are 4.3 GiB).
  const perChunk = Math.max(1, Math.floor(2 ** 30 / PAGE));
  const dst = Array.from({ length: Math.ceil(POOL_PAGES / perChunk) }, (_, c) => Buffer.alloc(Math.min(perChunk, POOL_PAGES - c * perChunk) * PAGE, 1));
  let dc = 0;
  let bytes = 0;
  const step = () => {
    for (let i = 0; i < BS; i++) {
      const sp = (dc + i) % HOST_PAGES;
      const dp = (dc + i) % POOL_PAGES;
      dst[Math.floor(dp / perChunk)].set(host.buffer.subarray(sp * PAGE, (sp + 1) * PAGE), (dp % perChunk) * PAGE);
    }
    dc += BS;
    bytes += BS * PAGE;
  };
  const warm = Date.now() + 300;
  while (Date.now() < warm) step();
  bytes = 0;
  const t0 = us();
  const end = Date.now() + s * 1000;
  while (Date.now() < end) step();
  const wall = us() - t0;
  return { gbps: bytes / wall / 1e3, perBatchUs: wall / (bytes / (BS * PAGE)) };
}

interface Round { load: number; setGbps: number; memcpyGbps: number; total: number; copy: number; dir: number; publish: number; remove: number; rest: number; memcpyBatch: number; cpuPct: number }
const results: Round[] = [];
try {
  const warm = Date.now() + 1000;
  while (Date.now() < warm) await setCall(); // fills the pool: every measured call evicts 32
  for (let round = 0; round < rounds; round++) {
    const load = loadavg()[0];
    t.copy = t.publish = t.remove = 0;
    let calls = 0;
    const cpu0 = process.cpuUsage();
    const t0 = us();
    const end = Date.now() + seconds * 1000;
    while (Date.now() < end) {
      await setCall();
      calls++;
    }
    const wall = us() - t0;
    const cpu = process.cpuUsage(cpu0);
    const m = memcpyRate(seconds);
    const per = (x: number) => x / calls;
    const dirUs = per(Math.max(t.publish, t.remove));
    results.push({
      load,
      setGbps: (calls * BS * PAGE) / wall / 1e3,
      memcpyGbps: m.gbps,
      total: per(wall),
      copy: per(t.copy),
      dir: dirUs,
      publish: per(t.publish),
      remove: per(t.remove),
      rest: per(wall) - per(t.copy) - dirUs,
      memcpyBatch: m.perBatchUs,
      cpuPct: ((cpu.user + cpu.system) / wall) * 100,
    });
    console.error(`round ${round + 1}: set ${results.at(-1)!.setGbps.toFixed(2)} GB/s, memcpy ${m.gbps.toFixed(2)} GB/s (load ${load.toFixed(1)})`);
  }
} finally {
  await store.close();
  await producer.stop();
}

const med = (k: keyof Round) => median(results.map((x) => x[k]));
log('# Where a set goes: shm set x1 against memcpy, per batchSetV1 call');
log('');
log(`- command: \`npx tsx benchmarks/bench-set-breakdown.ts ${args.join(' ')}\``);
log(`- when: ${new Date().toISOString()}; 1-min load at each round: ${results.map((x) => x.load.toFixed(1)).join(', ')} (2 vCPUs, shared)`);
log(`- one writer on one thread (${model ? `${model}: mla, ${PAGE.toLocaleString('en-US')} B pages` : 'mla, 128 KiB pages'}, batch ${BS}, fresh keys, a full ${POOL_PAGES}-page published pool: each call evicts ${BS}), the producer process serving the embedded directory; memcpy of the same footprint after each set window; ${rounds} rounds of ${seconds} s, medians`);
log('');
log(`| per call (${BS} pages, ${((BS * PAGE) / 2 ** 20).toFixed(1)} MiB) | µs (median) | rounds |`);
log('|---|---:|---|');
const row = (label: string, k: keyof Round) => log(`| ${label} | ${med(k).toFixed(0)} | ${results.map((x) => x[k].toFixed(0)).join(', ')} |`);
row('batchSetV1, wall', 'total');
row(`copies into the published pool (PublishedPool.publish x${BS})`, 'copy');
row('directory round trip (publish and remove, awaited together)', 'dir');
row('  of which publish alone', 'publish');
row('  of which remove alone', 'remove');
row('rest (names, views, arrays, promise turns)', 'rest');
row(`memcpy of the same ${BS} pages (the anchor)`, 'memcpyBatch');
log('');
log('| ratio | value | rounds |');
log('|---|---:|---|');
log(`| set x1 / memcpy x1 | ${median(results.map((x) => x.setGbps / x.memcpyGbps)).toFixed(3)} | ${results.map((x) => (x.setGbps / x.memcpyGbps).toFixed(3)).join(', ')} |`);
log(`| copy share of a set call | ${median(results.map((x) => x.copy / x.total)).toFixed(3)} | ${results.map((x) => (x.copy / x.total).toFixed(3)).join(', ')} |`);
log(`| copy into the pool / memcpy, per batch | ${median(results.map((x) => x.copy / x.memcpyBatch)).toFixed(3)} | ${results.map((x) => (x.copy / x.memcpyBatch).toFixed(3)).join(', ')} |`);
log(`| best set x1 / memcpy with the directory round trip overlapped entirely: copy / (copy + rest) | ${median(results.map((x) => x.memcpyBatch / (x.copy + x.rest))).toFixed(3)} | |`);
save(out);
console.log(`RATIOS ${JSON.stringify({ set1_vs_memcpy1: median(results.map((x) => x.setGbps / x.memcpyGbps)) })}`);
