/**
 * The data plane against ucx_perftest, side by side in one run.
 *
 *   npx tsx benchmarks/bench-dataplane.ts [--seconds 1] [--rounds 5] [--out bench-results/dataplane-shm.md]
 *
 * For 4 KiB, 128 KiB and 1 MiB: our shm READ (batch 32, one thread, one buffer reused: cache-hot)
 * in its async (Promise) and blocking forms, and `ucx_perftest -t ucp_get -O 32` across two
 * processes under the same UCX transports, alternated in rounds; the ratio of the medians. Then the latency of a batch of one
 * 4 KiB READ, and READ over a 512 MiB working set next to memcpy over the same working set.
 */
import { cpus } from 'node:os';
import { UcxTransport, type UcxEndpoint } from '../src/transport/ucx.js';
import { alignedBytes } from '../src/transport/memory.js';
import type { LocalRegion, RemoteRegion } from '../src/transport/types.js';
import { spawnFixture } from '../test/helpers/child.js';
import { perftest, SHM_TLS, ucxVersion } from './lib/perftest.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const seconds = Number(flag('--seconds', '1'));
const rounds = Number(flag('--rounds', '5'));
const out = flag('--out', '');
const BATCH = 32;
const GB = 1e9;

interface Setup { ep: UcxEndpoint; remote: RemoteRegion; local: LocalRegion; dst: Uint8Array }

function ops(count: number, f: (i: number) => [number, number, number]): Float64Array {
  const q = new Float64Array(count * 4);
  for (let i = 0; i < count; i++) {
    const [remote, local, length] = f(i);
    q.set([remote, 0, local, length], i * 4);
  }
  return q;
}

async function rate(run: () => Promise<void> | void, bytesPerCall: number): Promise<number> {
  const warmEnd = performance.now() + 300;
  while (performance.now() < warmEnd) await run();
  let calls = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    await run();
    calls++;
  }
  return (calls * bytesPerCall) / ((performance.now() - t0) / 1000) / GB;
}

function rateSync(run: () => void, bytesPerCall: number): number {
  const warmEnd = performance.now() + 300;
  while (performance.now() < warmEnd) run();
  let calls = 0;
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  while (performance.now() < end) {
    run();
    calls++;
  }
  return (calls * bytesPerCall) / ((performance.now() - t0) / 1000) / GB;
}

const fmt = (x: number, d = 2) => x.toFixed(d);
const { log, save } = reportLog();

const regionBytes = 512 << 20;
const child = spawnFixture(new URL('../test/fixtures/ucx-publisher.ts', import.meta.url), [String(regionBytes), 'shm', '1']);
const node = UcxTransport.open({ protocol: 'shm' });
try {
  const ready = (await child.ready) as { address: string; descriptor: string };
  const ep = await node.connect(Buffer.from(ready.address, 'base64'));
  const remote = ep.attach(Buffer.from(ready.descriptor, 'base64'));
  const dst = alignedBytes(regionBytes, false);
  const local = node.register(dst);
  const s: Setup = { ep, remote, local, dst };
  log(`# Data plane vs ucx_perftest (shm)`);
  log('');
  log(`- date: ${new Date().toISOString()}`);
  log(`- command: \`npx tsx benchmarks/bench-dataplane.ts ${args.join(' ')}\``);
  log(`- host: ${cpus()[0]?.model ?? '?'} x ${cpus().length}, node ${process.version}, UCX ${await ucxVersion()}`);
  log(`- lanes: ${ep.lanes().join(', ')}; UCX_TLS=${SHM_TLS}; GB/s = 10^9 B/s; ${rounds} alternating rounds of ~${seconds} s each, medians; local buffers page-aligned`);
  log('');
  log('## Cache-hot: batch 32, one thread, one buffer reused (matched to `ucx_perftest -t ucp_get -O 32`)');
  log('');
  log('| block | ours async GB/s | ours blocking GB/s | ucx_perftest GB/s | async ratio | blocking ratio | target |');
  log('|---|---|---|---|---|---|---|');
  // Alternate ours and ucx_perftest in several short rounds and compare medians: this machine's
  // load drifts, and a single long window of each would measure the drift.
  const ratios: Record<string, number> = {};
  for (const size of args.includes('--hot-only') ? [131072, 1048576] : [4096, 131072, 1048576]) {
    const q = ops(BATCH, () => [0, 0, size]);
    const a: number[] = [], b: number[] = [], c: number[] = [];
    for (let round = 0; round < rounds; round++) {
      a.push(await rate(() => s.ep.read(s.remote, [s.local], q, BATCH), size * BATCH));
      b.push(rateSync(() => s.ep.readSync(s.remote, [s.local], q, BATCH), size * BATCH));
      c.push(await perftest({ size, outstanding: BATCH, seconds, bytesPerS: 30e9, maxIterations: 400_000 }));
    }
    const [asyncRate, syncRate, ref] = [median(a), median(b), median(c)];
    const target = size === 4096 ? 0.5 : 0.9;
    const label = size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`;
    log(`| ${label} | ${fmt(asyncRate)} | ${fmt(syncRate)} | ${fmt(ref)} | ${fmt(asyncRate / ref)} | ${fmt(syncRate / ref)} | >= ${target} ${asyncRate / ref >= target ? 'PASS' : 'FAIL'} |`);
    if (size >= 131072) ratios[`read_vs_perftest_${size >> 10}k`] = asyncRate / ref;
  }
  // For bench-check.ts.
  console.log(`RATIOS ${JSON.stringify(ratios)}`);
  // --hot-only: the ratios above only (bench-check.ts).
  if (!args.includes('--hot-only')) {
    log('');
    const one = ops(1, () => [0, 0, 4096]);
    const samples: number[] = [];
    for (let i = 0; i < 20000; i++) {
      const t0 = process.hrtime.bigint();
      await s.ep.read(s.remote, [s.local], one, 1);
      if (i >= 2000) samples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    samples.sort((a, b) => a - b);
    const syncSamples: number[] = [];
    for (let i = 0; i < 20000; i++) {
      const t0 = process.hrtime.bigint();
      s.ep.readSync(s.remote, [s.local], one, 1);
      if (i >= 2000) syncSamples.push(Number(process.hrtime.bigint() - t0) / 1000);
    }
    syncSamples.sort((a, b) => a - b);
    const pct = (xs: number[], p: number) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
    log(`## Latency of a batch of one 4 KiB READ`);
    log('');
    log(`| form | p50 µs | p99 µs |`);
    log(`|---|---|---|`);
    log(`| async (await) | ${fmt(pct(samples, 50))} | ${fmt(pct(samples, 99))} |`);
    log(`| blocking | ${fmt(pct(syncSamples, 50))} | ${fmt(pct(syncSamples, 99))} |`);
    log('');
    log(`## Over a 512 MiB working set (every page distinct, cache-cold), batch 32`);
    log('');
    log('| block | ours async GB/s | memcpy GB/s (same working set, one thread) | ratio | target |');
    log('|---|---|---|---|---|');
    const src = alignedBytes(regionBytes, false);
    src.fill(1);
    // Fault every page in first (the reader's mapping of the publisher's segment and our own
    // buffer): steady state, not first-touch page faults, is what users meet.
    await s.ep.read(s.remote, [s.local], ops(512, (i) => [i * (1 << 20), i * (1 << 20), 1 << 20]), 512);
    for (const size of [131072, 1048576]) {
      const pages = regionBytes / size;
      let cursor = 0;
      const q = new Float64Array(BATCH * 4);
      const readWs = await rate(() => {
        for (let i = 0; i < BATCH; i++) {
          const p = (cursor + i) % pages;
          q[i * 4] = p * size;
          q[i * 4 + 1] = 0;
          q[i * 4 + 2] = p * size;
          q[i * 4 + 3] = size;
        }
        cursor = (cursor + BATCH) % pages;
        return s.ep.read(s.remote, [s.local], q, BATCH);
      }, size * BATCH);
      let mcursor = 0;
      const copyWs = rateSync(() => {
        for (let i = 0; i < BATCH; i++) {
          const p = (mcursor + i) % pages;
          dst.set(src.subarray(p * size, (p + 1) * size), p * size);
        }
        mcursor = (mcursor + BATCH) % pages;
      }, size * BATCH);
      const label = size >= 1 << 20 ? `${size >> 20} MiB` : `${size >> 10} KiB`;
      log(`| ${label} | ${fmt(readWs)} | ${fmt(copyWs)} | ${fmt(readWs / copyWs)} | >= 0.9 ${readWs / copyWs >= 0.9 ? 'PASS' : 'FAIL'} |`);
    }
  }
  ep.close();
} finally {
  await node.close();
  await child.kill();
}
save(out);
