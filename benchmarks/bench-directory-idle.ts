/**
 * A directory round trip after the caller was busy or idle for a while (issue 27 goal 4: why a
 * set's round trip, which follows milliseconds of copying, costs more than a back-to-back one).
 *
 *   npx tsx benchmarks/bench-directory-idle.ts [--calls 200] [--out bench-results/directory-idle.md]
 *
 * A producer process serves the embedded directory, as in a sweep; this thread looks up one key,
 * each time after spinning, sleeping or copying (memcpy of 12 bytes per µs, about this host's
 * rate) for 0, 0.3 or 3 ms. p50/p90 of the lookup's round trip per case.
 */
import { loadavg } from 'node:os';
import { startProducer } from '../src/bench/engine/producer.js';
import { freePort } from '../src/bench/engine/net.js';
import { silentLogger } from '../src/log.js';
import { DirectoryClient } from '../src/store/directory/client.js';
import { args, flag, reportLog } from './lib/cli.js';

const calls = Number(flag('--calls', '200'));
const out = flag('--out', '');
const { log, save } = reportLog();
const port = await freePort('127.0.0.1');
const base = { discoveryAddr: `127.0.0.1:${port}`, protocol: 'shm' as const, devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 10_000 };
const producer = await startProducer({ ...base, layout: 'mla', pageBytes: 131072, tokensPerPage: 64, sets: [], fill: false, nodeId: 'idle-producer', logLevel: 'warning' }, silentLogger);
const client = await DirectoryClient.connect({ port });
const us = () => Number(process.hrtime.bigint()) / 1e3;
const src = Buffer.alloc(40 << 20, 3);
const dst = Buffer.alloc(40 << 20);
const load = loadavg()[0];
const rows: string[] = [];
let r = 0;
try {
  for (const before of ['spin', 'sleep', 'memcpy'] as const) {
    for (const t of [0, 300, 3000]) {
      if (before !== 'spin' && t === 0) continue;
      const xs: number[] = [];
      for (let i = 0; i < calls; i++) {
        if (before === 'spin') {
          const s0 = us();
          while (us() - s0 < t) {}
        } else if (before === 'sleep') await new Promise((resolve) => setTimeout(resolve, t / 1000));
        else dst.set(src.subarray(0, t * 12_000));
        const a = us();
        await client.lookup([`idle/${r++}`]);
        xs.push(us() - a);
      }
      xs.sort((a, b) => a - b);
      const q = (p: number) => xs[Math.min(xs.length - 1, Math.floor(p * xs.length))].toFixed(0);
      rows.push(`| ${t === 0 ? 'back to back' : `${before} ${t} µs`} | ${q(0.5)} | ${q(0.9)} |`);
    }
  }
} finally {
  await client.close();
  await producer.stop();
}
log('# A directory round trip after the caller was busy or idle');
log();
log(`- command: \`${['npx tsx benchmarks/bench-directory-idle.ts', ...args].join(' ')}\``);
log(`- when: ${new Date().toISOString()}; 1-min load ${load.toFixed(1)} (2 vCPUs, shared); ${calls} lookups of one key per case, the directory in a producer process`);
log();
log('| before each lookup | p50 µs | p90 µs |');
log('|---|---:|---:|');
for (const row of rows) log(row);
save(out);
