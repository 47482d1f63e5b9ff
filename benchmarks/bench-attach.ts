/**
 * A peer's first attach of a big shm segment (issue 27, goal 2).
 *
 *   npx tsx benchmarks/bench-attach.ts [--sizes 1g,4g,16g] [--out bench-results/attach-shm.md]
 *
 * For each size a publisher process allocates a UCX region of that size over shm (System V only:
 * UCX_ALLOC_PRIO=md:sysv, so a size the kernel refuses fails instead of falling back to POSIX
 * shared memory, which UCX fills up front and would fill /dev/shm), writes its first and last
 * 4 KiB only (the rest stays unbacked), and a reader in another process times connect, attach
 * (rkey unpack: segment check, shmat) and a first READ of 4 KiB at each end.
 * The last line is `RATIOS {json}` (bench-check.ts reads it): attach ms per GiB of the largest size.
 */
import { loadavg } from 'node:os';
import { runChild } from '../src/bench/child-process.js';
import { spawnFixture } from '../test/helpers/child.js';
import { parseSize } from '../src/cli/parse.js';
import { args, flag, reportLog } from './lib/cli.js';

const sizes = flag('--sizes', '1g,4g,16g').split(',').map((s) => parseSize('--sizes', s));
const OUT = flag('--out', '');
const { log, save } = reportLog();
const env = { UCX_ALLOC_PRIO: 'md:sysv' };
const rows: { bytes: number; allocMs: number; connectMs: number; attachMs: number; firstReadMs: number }[] = [];
const load0 = loadavg()[0];
for (const bytes of sizes) {
  const pub = spawnFixture(new URL('./lib/attach-publisher.ts', import.meta.url), [String(bytes)], env);
  try {
    const ready = (await pub.ready) as { address: string; descriptor: string; allocMs: number };
    const reader = new URL('./lib/attach-reader.ts', import.meta.url).pathname;
    const r = await runChild({ label: 'attach reader', command: process.execPath, args: ['--import', 'tsx', reader, ready.address, ready.descriptor, String(bytes)], env: { ...process.env, ...env }, timeoutMs: 300_000 });
    if (r.code !== 0) throw new Error(`reader failed: ${r.stderr.slice(-1000)}`);
    const m = JSON.parse(r.stdout.trim().split('\n').pop()!) as { connectMs: number; attachMs: number; firstReadMs: number; ok: boolean };
    if (!m.ok) throw new Error('the first READ returned the wrong bytes');
    rows.push({ bytes, allocMs: ready.allocMs, ...m });
  } finally {
    await pub.kill();
  }
}
const load1 = loadavg()[0];
log('# A peer\'s first attach of a big shm segment (issue 27, goal 2)');
log();
log(`- command: \`${['npx tsx benchmarks/bench-attach.ts', ...args].join(' ')}\``);
log(`- when: ${new Date().toISOString()}; load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end (2 vCPUs, shared)`);
log('- publisher: UCX allocates the region (System V shared memory, UCX_ALLOC_PRIO=md:sysv), first and last 4 KiB written; reader: another process');
log();
log('| segment | alloc ms (publisher) | connect ms | attach ms | first READ ms (4 KiB at each end) |');
log('|---:|---:|---:|---:|---:|');
for (const r of rows) log(`| ${(r.bytes / 2 ** 30).toFixed(0)} GiB | ${r.allocMs.toFixed(1)} | ${r.connectMs.toFixed(2)} | ${r.attachMs.toFixed(2)} | ${r.firstReadMs.toFixed(1)} |`);
log();
save(OUT);
const last = rows[rows.length - 1];
// attach_largest_vs_smallest: ~1 when attach does not grow with the segment (it was ~4 for 4 GiB vs 1 GiB).
console.log(`RATIOS ${JSON.stringify({ attach_largest_vs_smallest: last.attachMs / rows[0].attachMs, attach_ms_largest: last.attachMs })}`);
