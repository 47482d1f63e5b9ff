/**
 * micro's speed checks , side by side in one run, repeated and reduced to medians:
 *
 *   npx tsx benchmarks/bench-micro.ts [--runs 5] [--duration 3] [--warmup 1] [--block-size 131072] [--out bench-results/micro-speed.md]
 *
 * Each run (the order rotates from run to run, so slow drift of a shared machine does not favour
 * one figure):
 * - `micro --protocol shm --path both --block-size B --threads 1`: transport-read and store-get;
 * - `micro --protocol shm --path transport --block-size B --threads 2`;
 * - `micro --protocol shm --pattern hot --block-size B --threads 1`: ucx_perftest's own pattern
 *   (one remote block read into one local block by every READ), for the like-for-like ratio;
 * - `ucx_perftest -t ucp_get -s B -O <batch>` across two processes (UCX_TLS=posix,sysv,cma,self);
 * - memcpy in this process over the same footprint micro reads (its span of blocks into a batch
 *   buffer, one thread): the memory-bandwidth ceiling of micro's access pattern.
 * Ratios: store/transport (target >= 0.85), 2 threads / 1 thread (>= 0.9), micro hot / ucx_perftest
 * (>= 0.9, the same access pattern), micro spread / ucx_perftest (shown: memory vs cache), micro /
 * memcpy. Then the store's own cost without the engine and without drift: in
 * this process, one client thread, the raw READ loop and `batchGetV1` over the same producer,
 * alternated in 250 ms bursts. GB/s = 10^9 B/s.
 */
import { cpus, loadavg } from 'node:os';
import { resolveConnection, storeConfig } from '../src/bench/engine/connection.js';
import { workingSetKeys } from '../src/bench/engine/drivers.js';
import { freePort } from '../src/bench/engine/net.js';
import { startProducer } from '../src/bench/engine/producer.js';
import { microBlocks, runMicro } from '../src/bench/micro.js';
import type { Report } from '../src/bench/report/types.js';
import { silentLogger } from '../src/log.js';
import { HostKVPool } from '../src/store/host-pool.js';
import { PeerCacheStore } from '../src/store/peer-cache-store.js';
import { openTransport } from '../src/transport/index.js';
import { alignedBytes } from '../src/transport/memory.js';
import { OpList } from '../src/transport/op-list.js';
import { perftest, SHM_TLS, ucxVersion } from './lib/perftest.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const runs = Number(flag('--runs', '5'));
const durationS = Number(flag('--duration', '3'));
const warmupS = Number(flag('--warmup', '1'));
const block = Number(flag('--block-size', '131072'));
const batch = 64;
const out = flag('--out', '');
const GB = 1e9;

/** memcpy (TypedArray.set) with micro's transport access pattern: batch blocks per call from a span of blocks. */
function memcpySpan(size: number): number {
  const blocks = microBlocks(batch);
  const src = new Uint8Array(blocks * size).fill(1);
  const dst = new Uint8Array(batch * size);
  let r = 0;
  const call = () => {
    for (let j = 0; j < batch; j++) {
      const b = (r * batch + j) % blocks;
      dst.set(src.subarray(b * size, (b + 1) * size), j * size);
    }
    r++;
  };
  const warm = performance.now() + warmupS * 1000;
  while (performance.now() < warm) call();
  let calls = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < durationS * 1000) {
    call();
    calls++;
  }
  return (calls * batch * size) / ((performance.now() - t0) / 1000) / GB;
}

const gbps = (report: Report, path: string): number => {
  const row = report.results.find((r) => r.path === path);
  if (!row?.ok) throw new Error(`${path} failed: ${row?.note}`);
  return row.throughput_gbps;
};

interface RunFigures { transport1: number; store1: number; transport2: number; hot1: number; perftest: number; memcpy: number; load: number }
const results: RunFigures[] = [];
const steps: Record<string, (f: Partial<RunFigures>) => Promise<void>> = {
  both: async (f) => {
    const rep = await runMicro({ protocol: 'shm', blockSize: block, batchSize: batch, threads: 1, durationS, warmupS, path: 'both' });
    f.transport1 = gbps(rep, 'transport-read');
    f.store1 = gbps(rep, 'store-get');
  },
  threads2: async (f) => {
    f.transport2 = gbps(await runMicro({ protocol: 'shm', blockSize: block, batchSize: batch, threads: 2, durationS, warmupS, path: 'transport' }), 'transport-read');
  },
  hot: async (f) => {
    f.hot1 = gbps(await runMicro({ protocol: 'shm', blockSize: block, batchSize: batch, threads: 1, durationS, warmupS, path: 'transport', pattern: 'hot' }), 'transport-read');
  },
  perftest: async (f) => {
    f.perftest = await perftest({ size: block, outstanding: batch, seconds: durationS, bytesPerS: 20e9, maxIterations: 200_000 });
  },
  memcpy: async (f) => {
    f.memcpy = memcpySpan(block);
  },
};
const order = Object.keys(steps);
for (let i = 0; i < runs; i++) {
  const f: Partial<RunFigures> = { load: loadavg()[0] };
  for (let k = 0; k < order.length; k++) await steps[order[(i + k) % order.length]](f);
  results.push(f as RunFigures);
  console.error(`run ${i + 1}/${runs}: ${JSON.stringify(f)}`);
}

/** Raw READ vs batchGetV1 from one client thread, alternated in short bursts (drift cancels). */
async function storeCost(size: number, cycles: number): Promise<{ raw: number; get: number; ratio: number }> {
  const blocks = microBlocks(batch);
  const store = storeConfig(resolveConnection({ protocol: 'shm' }), { discoveryAddr: `127.0.0.1:${await freePort()}` });
  const producer = await startProducer({ ...store, layout: 'mla', pageBytes: size, tokensPerPage: 64, sets: [{ prefix: 'cost', count: blocks }], rawBytes: blocks * size, fill: false, nodeId: 'cost-producer', logLevel: 'warning' }, silentLogger);
  const node = await openTransport({ protocol: 'shm', host: '127.0.0.1' });
  const host = new HostKVPool({ layout: 'mla', pageBytes: size, pages: batch, tokensPerPage: 64, shared: false });
  const client = await PeerCacheStore.open({ ...store, hostPool: host, globalSegmentBytes: 0, nodeId: 'cost-client', maxBytes: Number.MAX_SAFE_INTEGER });
  try {
    const ep = await node.connect(Buffer.from(producer.raw!.address, 'base64'));
    const remote = ep.attach(Buffer.from(producer.raw!.descriptor, 'base64'));
    // Page-aligned, like the engine's read driver and the store's host pool.
    const local = node.register(alignedBytes(batch * size, false));
    const list = new OpList(batch);
    const ops = list.ops;
    const keys = workingSetKeys('cost', blocks);
    const window = new Array<string>(batch);
    const slots = host.tokenIndices(Array.from({ length: batch }, (_, i) => i));
    let r = 0;
    let g = 0;
    const variants = {
      raw: async () => {
        for (let j = 0; j < batch; j++) {
          list.set(j, ((r * batch + j) % blocks) * size, 0, j * size, size);
        }
        r++;
        await ep.read(remote, [local], ops, batch);
      },
      get: async () => {
        for (let j = 0; j < batch; j++) window[j] = keys[(g * batch + j) % blocks];
        g++;
        const ok = await client.batchGetV1(window, slots);
        if (!ok.every(Boolean)) throw new Error('batchGetV1 missed a page');
      },
    };
    const rates: Record<'raw' | 'get', number[]> = { raw: [], get: [] };
    for (let c = -2; c < cycles; c++) {
      for (const k of ['raw', 'get'] as const) {
        const t0 = performance.now();
        let n = 0;
        while (performance.now() - t0 < 250) {
          await variants[k]();
          n++;
        }
        // The first two cycles warm up (connections, location cache, page faults).
        if (c >= 0) rates[k].push((n * batch * size) / ((performance.now() - t0) / 1000) / GB);
      }
    }
    ep.close();
    local.free();
    return { raw: median(rates.raw), get: median(rates.get), ratio: median(rates.get.map((v, i) => v / rates.raw[i])) };
  } finally {
    await client.close();
    await node.close();
    await producer.stop();
  }
}

const fmt = (x: number) => x.toFixed(2);
const { log, save } = reportLog();
const ratio = (a: keyof RunFigures, b: keyof RunFigures) => results.map((r) => r[a] / r[b]);
const label = block >= 1 << 20 ? `${block >> 20} MiB` : `${block >> 10} KiB`;
log(`# micro speed checks (shm, ${label}, batch ${batch})`);
log('');
log(`- date: ${new Date().toISOString()}`);
log(`- command: \`npx tsx benchmarks/bench-micro.ts ${args.join(' ')}\``);
log(`- host: ${cpus()[0]?.model ?? '?'} x ${cpus().length}, node ${process.version}, UCX ${await ucxVersion()}; 1-min load average at each run's start: ${results.map((r) => r.load.toFixed(1)).join(', ')}`);
log(`- each micro row: ${durationS} s measured after ${warmupS} s warmup, producer in its own process; ${runs} runs, order rotated per run; medians below`);
log(`- micro equivalents: \`peercache-bench micro --protocol shm --path both --block-size ${block} --threads 1 --duration ${durationS} --warmup ${warmupS}\`, \`... --path transport --threads 2\` and \`... --path transport --pattern hot --threads 1\``);
log(`- ucx_perftest: \`UCX_TLS=${SHM_TLS} UCX_PROTO_ENABLE=n ucx_perftest 127.0.0.1 -t ucp_get -s ${block} -O ${batch}\` (one ${label} buffer on each side: cache-hot); micro's default pattern (spread) reads ${batch} blocks per call over ${microBlocks(batch)} blocks (${((microBlocks(batch) * block) / 2 ** 20).toFixed(0)} MiB, from memory), \`--pattern hot\` reads perftest's way`);
if (runs > 0) {
  log('');
  log('## Per run (GB/s)');
  log('');
  const columns: (keyof RunFigures)[] = ['transport1', 'store1', 'transport2', 'hot1', 'perftest', 'memcpy'];
  log('| run | transport 1 thr | store 1 thr | transport 2 thr | transport hot 1 thr | ucx_perftest | memcpy same span |');
  log('|---|---|---|---|---|---|---|');
  results.forEach((r, i) => log(`| ${i + 1} | ${columns.map((c) => fmt(r[c])).join(' | ')} |`));
  log(`| median | ${columns.map((c) => fmt(median(results.map((r) => r[c])))).join(' | ')} |`);
  log('');
  log('## Ratios (median of the per-run ratios; min..max)');
  log('');
  log('| check | median | min..max | target |');
  log('|---|---|---|---|');
  const check = (name: string, xs: number[], target: number | null) => {
    const m = median(xs);
    log(`| ${name} | ${fmt(m)} | ${fmt(Math.min(...xs))}..${fmt(Math.max(...xs))} | ${target === null ? '-' : `>= ${target} ${m >= target ? 'PASS' : 'FAIL'}`} |`);
  };
  check('store-get / transport-read, 1 thread', ratio('store1', 'transport1'), 0.85);
  check('transport 2 threads / 1 thread', ratio('transport2', 'transport1'), 0.9);
  check('micro --pattern hot 1 thread / ucx_perftest ucp_get (same pattern)', ratio('hot1', 'perftest'), 0.9);
  check('micro spread 1 thread / ucx_perftest ucp_get (memory vs cache)', ratio('transport1', 'perftest'), null);
  check('micro transport 1 thread / memcpy over the same span', ratio('transport1', 'memcpy'), null);
}
log('');
log('## The store path\'s own cost (no engine, no drift)');
log('');
log(`In this process, one client thread: the raw READ loop (${batch} blocks per call over ${microBlocks(batch)} blocks) and \`batchGetV1\` (${batch} pages per call over a working set of ${microBlocks(batch)} pages, location cache warm, data READs + fence + 16-byte slot-header READs, every page's slot header checked) against one producer process, alternated in 250 ms bursts, 24 cycles each; medians.`);
log('');
log('| block | raw READ GB/s | batchGetV1 GB/s | batchGetV1 / raw |');
log('|---|---|---|---|');
for (const size of [4096, block]) {
  const c = await storeCost(size, 24);
  log(`| ${size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`} | ${fmt(c.raw)} | ${fmt(c.get)} | ${fmt(c.ratio)} |`);
}
save(out);
