/**
 * exists against a Redis round trip, in one run (issue 27, goal 1).
 *
 *   node --expose-gc --import tsx benchmarks/bench-exists.ts [--rounds 5] [--calls 3000] [--out bench-results/exists-replica.md]
 * (--expose-gc makes the replica's memory per key exact; without it the figure is noisier)
 *
 * A store node in another process hosts the embedded directory and publishes 128 pages; this
 * process opens two reader stores that join it: one without and one with a directory replica.
 * A local redis-server holds 128 keys. Rounds alternate every measurement; each is the p50 of
 * `--calls` sequential calls; the report gives the median of the rounds' p50s.
 *   anchors: redis-benchmark (C client) GET and MGET of 128 keys; ioredis (Node) GET / MGET 128;
 *            a bare Node TCP echo round trip (the floor of any round trip from Node here).
 *   exists:  batchExists of 1 and of 128 pages, replica off (one directory round trip) and on.
 *   parts:   the replica's lookupLocal alone (the map reads), and the replica's memory per key.
 * The last line is `RATIOS {json}` (bench-check.ts reads it).
 */
import { childOutput } from '../src/bench/child-process.js';
import net from 'node:net';
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { spawnFixture, type Child } from '../test/helpers/child.js';
import { freePort } from '../test/helpers/ports.js';
import { startRedis } from '../test/helpers/redis.js';
import { DirectoryServer } from '../src/store/directory/server.js';
import { DirectoryClient } from '../src/store/directory/client.js';
import { HostKVPool } from '../src/store/host-pool.js';
import { PeerCacheStore } from '../src/store/peer-cache-store.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const ROUNDS = Number(flag('--rounds', '5'));
const CALLS = Number(flag('--calls', '3000'));
const OUT = flag('--out', '');
const MEMORY_KEYS = Number(flag('--memory-keys', '200000'));
const PAGE = 4096;
const BATCH = 128;
const nodeFixture = new URL('../test/fixtures/store-node.ts', import.meta.url);
const { log, save } = reportLog();

function p50(samples: number[]): number {
  return median(samples);
}

/** p50 in µs of `calls` sequential awaits of `fn`. */
async function timeCalls(fn: () => Promise<unknown>, calls = CALLS): Promise<number> {
  for (let i = 0; i < Math.min(200, calls); i++) await fn();
  const t = new Array<number>(calls);
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await fn();
    t[i] = (performance.now() - t0) * 1000;
  }
  return p50(t);
}

/** redis-benchmark's own p50 (µs) of one command, one connection, no pipelining. */
async function redisBenchmark(port: number, command: string[]): Promise<number> {
  const out = await childOutput({ label: 'redis-benchmark', command: 'redis-benchmark', args: ['-p', String(port), '-c', '1', '-n', String(CALLS), '--csv', ...command], lifetime: 'supervised' });
  const lines = out.trim().split('\n');
  const header = lines[0].split(',').map((s) => s.replace(/"/g, ''));
  const row = lines[lines.length - 1].split(',').map((s) => s.replace(/"/g, ''));
  const i = header.indexOf('p50_latency_ms');
  if (i < 0) throw new Error(`redis-benchmark printed no p50: ${out}`);
  return Number(row[i]) * 1000;
}

/** A bare Node-to-Node TCP echo server in a child process: the floor of a round trip from Node here. */
function echoChild(port: number): Child {
  return spawnFixture(new URL('./lib/echo-server.ts', import.meta.url), [String(port)]);
}

async function echoClient(port: number): Promise<{ rtt: () => Promise<void>; close: () => void }> {
  const s = net.connect({ host: '127.0.0.1', port, noDelay: true });
  await new Promise<void>((r) => s.once('connect', () => r()));
  let wake: (() => void) | null = null;
  s.on('data', () => wake?.());
  return {
    rtt: () =>
      new Promise<void>((r) => {
        wake = r;
        s.write('x');
      }),
    close: () => s.destroy(),
  };
}

/** Heap bytes per key of a replica holding `n` keys like the adapter's (64 hex digits + suffix). */
async function replicaBytesPerKey(n: number): Promise<number> {
  const server = await DirectoryServer.listen();
  const a = await DirectoryClient.connect({ host: server.address.host, port: server.address.port });
  try {
    await a.join({ nodeId: 'mem', protocol: 'tcp', host: '127.0.0.1', transportAddress: '', regionDescriptor: null, attributes: {} });
    const key = (i: number) => `${i.toString(16).padStart(64, '0')}_0_k`;
    for (let i = 0; i < n; i += 50_000) {
      await a.publish(Array.from({ length: Math.min(50_000, n - i) }, (_, j) => ({ key: key(i + j), location: { nodeId: 'mem', offset: (i + j) * 4096, length: 4096, generation: i + j } })));
    }
    const gc = (globalThis as { gc?: () => void }).gc;
    gc?.();
    const before = process.memoryUsage().heapUsed;
    const b = await DirectoryClient.connect({ host: server.address.host, port: server.address.port, replica: {} });
    gc?.();
    const after = process.memoryUsage().heapUsed;
    const entries = b.replicaStatus?.entries ?? 0;
    await b.close();
    return entries === n ? (after - before) / n : NaN;
  } finally {
    await a.close();
    await server.close();
  }
}

const discoveryAddr = `127.0.0.1:${await freePort()}`;
const serving = spawnFixture(nodeFixture, [discoveryAddr, 'shm', 'exists-host', 'e', String(BATCH), String(PAGE)]);
const redis = await startRedis();
const echoPort = await freePort();
const echo = echoChild(echoPort);
let plain: PeerCacheStore | undefined;
let replica: PeerCacheStore | undefined;
try {
  await serving.ready;
  await echo.ready;
  const host = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 1, tokensPerPage: 16 });
  plain = await PeerCacheStore.open({ discoveryAddr, protocol: 'shm', hostPool: host, nodeId: 'exists-plain' });
  replica = await PeerCacheStore.open({ discoveryAddr, protocol: 'shm', hostPool: host, nodeId: 'exists-replica', directoryReplica: true });
  const keys = Array.from({ length: BATCH }, (_, i) => `e/${i}`);
  if ((await plain.batchExists(keys)) !== BATCH || (await replica.batchExists(keys)) !== BATCH) throw new Error('the serving node did not publish its pages');
  const ioredis = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
  await ioredis.connect();
  const rkeys = Array.from({ length: BATCH }, (_, i) => `r${i}`);
  await ioredis.mset(Object.fromEntries(rkeys.map((k) => [k, 'x'.repeat(16)])));
  const ec = await echoClient(echoPort);
  const directory = (replica as unknown as { directory: { lookupLocal(k: readonly string[]): unknown } }).directory;

  const series: Record<string, number[]> = {};
  const add = (name: string, v: number) => (series[name] ??= []).push(v);
  const load0 = loadavg()[0];
  for (let r = 0; r < ROUNDS; r++) {
    add('redis-benchmark GET', await redisBenchmark(redis.port, ['GET', 'r0']));
    add('redis-benchmark MGET 128', await redisBenchmark(redis.port, ['MGET', ...rkeys]));
    add('ioredis GET', await timeCalls(() => ioredis.get('r0')));
    add('ioredis MGET 128', await timeCalls(() => ioredis.mget(...rkeys)));
    add('Node TCP echo', await timeCalls(() => ec.rtt()));
    add('exists 1, round trip', await timeCalls(() => plain!.batchExists([keys[r % BATCH]])));
    add('exists 128, round trip', await timeCalls(() => plain!.batchExists(keys)));
    add('exists 1, replica', await timeCalls(() => replica!.batchExists([keys[r % BATCH]])));
    add('exists 128, replica', await timeCalls(() => replica!.batchExists(keys)));
    add('replica lookupLocal 1', await timeCalls(async () => directory.lookupLocal([keys[0]])));
  }
  const load1 = loadavg()[0];
  if (replica.stats.directoryLookups > 2) throw new Error(`the replica store made ${replica.stats.directoryLookups} round trips`);
  const m = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, median(v)]));
  const bytesPerKey = await replicaBytesPerKey(MEMORY_KEYS);

  log('# exists against a Redis round trip (issue 27, goal 1)');
  log();
  log(`- command: \`${['node --expose-gc --import tsx benchmarks/bench-exists.ts', ...args].join(' ')}\``);
  log(`- when: ${new Date().toISOString()}; load average ${load0.toFixed(1)} at the start, ${load1.toFixed(1)} at the end (2 vCPUs, shared)`);
  log(`- ${ROUNDS} rounds, each the p50 of ${CALLS} sequential calls, measurements alternated; the table gives the median of the rounds' p50s (and their range)`);
  log('- exists: a reader store in this process; the embedded directory hosted by a store node in another process (shm, 128 pages published). Redis: a local redis-server, 128 keys.');
  log();
  log('| what | p50 µs (median of rounds) | rounds\' p50 range µs |');
  log('|---|---:|---|');
  for (const [k, v] of Object.entries(series)) log(`| ${k} | ${m[k].toFixed(1)} | ${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)} |`);
  log();
  const ratios = {
    exists1_vs_redis_get: m['exists 1, replica'] / m['redis-benchmark GET'],
    exists128_vs_redis_mget: m['exists 128, replica'] / m['redis-benchmark MGET 128'],
    exists1_roundtrip_vs_redis_get: m['exists 1, round trip'] / m['redis-benchmark GET'],
    exists128_roundtrip_vs_redis_mget: m['exists 128, round trip'] / m['redis-benchmark MGET 128'],
  };
  log('| ratio | value | target |');
  log('|---|---:|---|');
  log(`| exists batch 1 (replica) / redis-benchmark GET | ${ratios.exists1_vs_redis_get.toFixed(3)} | ≤ 1.0 |`);
  log(`| exists batch 128 (replica) / redis-benchmark MGET 128 | ${ratios.exists128_vs_redis_mget.toFixed(3)} | ≤ 1.5 |`);
  log(`| exists batch 1 (round trip) / redis-benchmark GET | ${ratios.exists1_roundtrip_vs_redis_get.toFixed(3)} | (no replica) |`);
  log(`| exists batch 128 (round trip) / redis-benchmark MGET 128 | ${ratios.exists128_roundtrip_vs_redis_mget.toFixed(3)} | (no replica) |`);
  log(`| exists batch 1 (round trip) / ioredis GET (same runtime) | ${(m['exists 1, round trip'] / m['ioredis GET']).toFixed(3)} | |`);
  log();
  log('Breakdown:');
  log(`- a round trip from Node costs ${m['Node TCP echo'].toFixed(1)} µs here (bare TCP echo to another process); exists over the directory adds ${(m['exists 1, round trip'] - m['Node TCP echo']).toFixed(1)} µs (framing, JSON, the server's lookup, the store's call).`);
  log(`- with the replica: ${m['replica lookupLocal 1'].toFixed(2)} µs is the replica read itself (one awaited call), the rest of ${m['exists 1, replica'].toFixed(1)} µs is the store's batchExists (key names, checks, the async call).`);
  log(`- memory: ${Number.isFinite(bytesPerKey) ? bytesPerKey.toFixed(0) : '?'} bytes of heap per key in the replica (${MEMORY_KEYS} keys of 64 hex digits + "_0_k"), so the default bound of 1 Mi keys is ~${Number.isFinite(bytesPerKey) ? ((bytesPerKey * 2 ** 20) / 2 ** 20).toFixed(0) : '?'} MiB per replicating node.`);
  log();
  save(OUT);
  console.log(`RATIOS ${JSON.stringify(ratios)}`);
  ec.close();
  ioredis.disconnect();
} finally {
  await replica?.close();
  await plain?.close();
  await serving.kill();
  await echo.kill();
  await redis.stop();
}
