/**
 * Quick throughput check of the TCP fallback: one client, a publisher in a second process, over
 * loopback. READ (and WRITE) of 128 KiB pages in batches of 32, at several pipeline depths.
 * Smoke figures only (the tcp transport is never publishable).
 *
 * Usage: node --import tsx benchmarks/bench-tcp.ts [seconds-per-point=2] [page-bytes=131072] [batch=32]
 */
import { readFileSync } from 'node:fs';
import { spawnFixture } from '../test/helpers/child.js';
import { TcpTransport } from '../src/transport/tcp/index.js';
import type { Endpoint, LocalRegion, RemoteRegion } from '../src/transport/types.js';

const seconds = Number(process.argv[2] ?? 2);
const page = Number(process.argv[3] ?? 128 << 10);
const batch = Number(process.argv[4] ?? 32);
const regionBytes = 256 << 20;
const pages = regionBytes / page;
const fixture = new URL('../test/fixtures/tcp-publisher.ts', import.meta.url);

interface Published {
  address: string;
  descriptor: string;
}

/** CPU seconds (user + system) a process has used so far (Linux /proc; 0 elsewhere). */
function cpuSeconds(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime, stime in clock ticks
  } catch {
    return 0;
  }
}

interface Point {
  gbps: number;
  batches: number;
  /** CPU seconds per GB moved, client and server: steadier than GB/s on a shared machine. */
  clientCpuPerGB: number;
  serverCpuPerGB: number;
}

async function run(ep: Endpoint, remote: RemoteRegion, locals: LocalRegion[], depth: number, write: boolean, serverPid: number): Promise<Point> {
  const opsFor = (slot: number, n: number): Float64Array => {
    const ops = new Float64Array(batch * 4);
    for (let i = 0; i < batch; i++) {
      const p = (n * batch + i * 7) % pages; // spread over the region
      ops.set([p * page, slot, i * page, page], i * 4);
    }
    return ops;
  };
  const deadline = performance.now() + seconds * 1000;
  let batches = 0;
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  const server0 = cpuSeconds(serverPid);
  const lane = async (slot: number): Promise<void> => {
    let n = slot;
    while (performance.now() < deadline) {
      const ops = opsFor(slot, n);
      await (write ? ep.write(remote, locals, ops, batch) : ep.read(remote, locals, ops, batch));
      batches++;
      n += depth;
    }
  };
  await Promise.all(Array.from({ length: depth }, (_, slot) => lane(slot)));
  const elapsed = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const gb = (batches * batch * page) / 1e9;
  return {
    gbps: gb / elapsed,
    batches,
    clientCpuPerGB: (cpu.user + cpu.system) / 1e6 / gb,
    serverCpuPerGB: (cpuSeconds(serverPid) - server0) / gb,
  };
}

async function main(): Promise<void> {
  const child = spawnFixture(fixture, [String(regionBytes), '1']);
  try {
    const published = (await child.ready) as unknown as Published;
    const node = await TcpTransport.open({ protocol: 'tcp', timeoutMs: 30_000 });
    try {
      const ep = await node.connect(Buffer.from(published.address, 'base64'));
      const remote = ep.attach(Buffer.from(published.descriptor, 'base64'));
      const maxDepth = 8;
      const locals = Array.from({ length: maxDepth }, () => node.register(new Uint8Array(batch * page)));
      const pid = child.proc.pid ?? 0;
      await run(ep, remote, locals, 2, false, pid); // warm up (JIT, socket buffers)
      console.log(`tcp loopback, ${page / 1024} KiB pages, batch ${batch}, ${seconds} s per point, node ${process.version}`);
      for (const write of [false, true]) {
        for (const depth of [1, 2, 4, 8]) {
          const r = await run(ep, remote, locals, depth, write, pid);
          console.log(
            `${write ? 'WRITE' : 'READ '} depth ${depth}: ${r.gbps.toFixed(2)} GB/s (${r.batches} batches; ` +
              `CPU s/GB client ${r.clientCpuPerGB.toFixed(3)}, server ${r.serverCpuPerGB.toFixed(3)})`,
          );
        }
      }
      ep.close();
    } finally {
      await node.close();
    }
  } finally {
    await child.kill('SIGKILL');
  }
}

await main();
