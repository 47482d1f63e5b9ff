/**
 * Directory benchmark: embedded vs Redis (the directory's speed check: round trips per batch, embedded vs Redis).
 *
 *   npx tsx benchmarks/bench-directory.ts [--seconds 3] [--rounds 3] [--keys 10000] [--parts 1,2,3] [--out bench-results/directory-redis.md]
 *
 * 1. Directory lookup, batch 32 keys, concurrency 1, 2, 4, 8 (async callers sharing one client
 *    connection, as a store does): lookups/s, keys/s, p50/p99 per call. Embedded = a
 *    DirectoryServer in another process over loopback TCP (what every node but the serving one
 *    talks to); embedded in-process = the serving node's own short circuit; Redis = a local
 *    redis-server (no persistence), RedisDirectory's lookup (one HMGET per batch, entries kept
 *    only when their owner incarnation is a live member).
 * 2. The get path: a publisher process (shm, mla, 128 KiB pages) and a reader in this process,
 *    batchGetV1 of 32 pages, with the location cache on (default: steady-state gets skip the
 *    directory) and off (every get looks its keys up), embedded vs Redis, rounds interleaved,
 *    medians reported.
 * 3. The cost of metrics on the get path (embedded, cache on and off): metrics sink on vs off.
 *
 * Internal roles (the script spawns itself): --role serve-embedded <port>;
 * --role publisher <host:port | redis-url> <pages> <pageBytes>.
 */
import { childOutput } from '../src/bench/child-process.js';
import { Redis } from 'ioredis';
import { cpus, loadavg } from 'node:os';
import { spawnFixture, type Child } from '../test/helpers/child.js';
import { freePort } from '../test/helpers/ports.js';
import { startRedis } from '../test/helpers/redis.js';
import { DirectoryServer } from '../src/store/directory/server.js';
import { DirectoryClient } from '../src/store/directory/client.js';
import { RedisDirectory } from '../src/store/directory/redis.js';
import { HostKVPool } from '../src/store/host-pool.js';
import { PeerCacheStore } from '../src/store/peer-cache-store.js';
import { createStoreMetrics } from '../src/store/metrics.js';
import type { Directory, NodeInfo } from '../src/store/types.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const SELF = new URL(import.meta.url);
const BATCH = 32;
const PAGE = 128 * 1024;
const GET_PAGES = 256;

const waitStdinEnd = (): Promise<void> =>
  new Promise((resolve) => {
    process.stdin.resume();
    process.stdin.on('end', () => resolve());
  });

// ------------------------------------------------------------------ child roles

if (args[0] === '--role') {
  if (args[1] === 'serve-embedded') {
    const server = await DirectoryServer.listen({ host: '127.0.0.1', port: Number(args[2]) });
    console.log(JSON.stringify({ ready: true }));
    await waitStdinEnd();
    await server.close();
  } else if (args[1] === 'publisher') {
    const [target, pagesArg, pageArg] = args.slice(2);
    const pages = Number(pagesArg), pageBytes = Number(pageArg);
    const host = new HostKVPool({ layout: 'mla', pageBytes, pages, tokensPerPage: 16 });
    for (let p = 0; p < pages; p++) host.pageView(p).fill(p & 0xff);
    const where = target.includes('://') ? { directoryUrl: target } : { discoveryAddr: target };
    const store = await PeerCacheStore.open({ ...where, protocol: 'shm', hostPool: host, globalSegmentBytes: (pages + 8) * (pageBytes + 64), nodeId: 'publisher' });
    const keys = Array.from({ length: pages }, (_, i) => `dget/${i}`);
    const ok = await store.batchSetV1(keys, host.tokenIndices(keys.map((_, i) => i)));
    console.log(JSON.stringify({ ready: true, published: ok.filter(Boolean).length }));
    await waitStdinEnd();
    await store.close();
  }
  process.exit(0);
}

// ------------------------------------------------------------------ main

const seconds = Number(flag('--seconds', '3'));
const rounds = Number(flag('--rounds', '3'));
const keyCount = Number(flag('--keys', '10000'));
const out = flag('--out', '');
const parts = new Set(flag('--parts', '1,2,3').split(',').map(Number));
const { log, save } = reportLog();
const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
const pct = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function nodeInfo(nodeId: string): NodeInfo {
  return { nodeId, protocol: 'shm', host: '127.0.0.1', transportAddress: '', regionDescriptor: null, attributes: {} };
}

interface Measured {
  calls: number;
  perSecond: number;
  p50: number;
  p99: number;
}

/** `concurrency` async loops calling `op` for `seconds` after a 0.5 s warm-up; latencies in µs. */
async function measure(concurrency: number, op: () => Promise<unknown>): Promise<Measured> {
  const warmEnd = performance.now() + 500;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < warmEnd) {
      await op();
      await new Promise<void>((r) => setImmediate(r));
    }
  }));
  const samples: number[] = [];
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  let lastYield = t0;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) {
      const s = performance.now();
      await op();
      const e = performance.now();
      samples.push((e - s) * 1000);
      // In-process calls resolve as microtasks: let timers (Redis heartbeats) run now and then.
      if (e - lastYield > 5) {
        lastYield = e;
        await new Promise<void>((r) => setImmediate(r));
      }
    }
  }));
  const elapsed = (performance.now() - t0) / 1000;
  samples.sort((a, b) => a - b);
  return { calls: samples.length, perSecond: samples.length / elapsed, p50: pct(samples, 50), p99: pct(samples, 99) };
}

const redis = await startRedis();
const children: Child[] = [];
const redisVersion = (await childOutput({ label: 'redis-server --version', command: process.env.REDIS_SERVER ?? 'redis-server', args: ['--version'], lifetime: 'supervised' })).match(/v=([\d.]+)/)?.[1] ?? '?';
try {
  log('# Directory: embedded vs Redis');
  log();
  log(`- date: ${new Date().toISOString()}`);
  log(`- command: \`npx tsx benchmarks/bench-directory.ts ${args.join(' ')}\``.replace(/ `$/, '`'));
  log(`- host: ${cpus()[0]?.model ?? '?'} x ${cpus().length}, node ${process.version}, redis-server ${redisVersion} (local, loopback, \`--save '' --appendonly no\`); load average before: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  log(`- every process (this client, the directory server or redis-server, the publisher) shares these ${cpus().length} cores: figures are for comparing the rows with each other, not absolute capacity`);
  log();

  // ---------------------------------------------------------------- 1. lookups
  if (parts.has(1)) {
  const embeddedPort = await freePort();
  const server = spawnFixture(SELF, ['--role', 'serve-embedded', String(embeddedPort)]);
  children.push(server);
  await server.ready;
  const inproc = await DirectoryServer.listen({ host: '127.0.0.1', port: 0 });
  const keys = Array.from({ length: keyCount }, (_, i) => `sha256:${i.toString(16).padStart(64, '0')}`);
  const entries = keys.map((key, i) => ({ key, location: { nodeId: 'owner', offset: i * 4096, length: 4096, generation: 1 } }));
  const redisUrl = redis.urlWith({ prefix: 'bench:' });
  const owners: Directory[] = [];
  const clients: { name: string; dir: Directory }[] = [];
  {
    const owner = await DirectoryClient.connect({ port: embeddedPort });
    await owner.join(nodeInfo('owner'));
    await owner.publish(entries);
    owners.push(owner);
    clients.push({ name: 'embedded (TCP, server in another process)', dir: await DirectoryClient.connect({ port: embeddedPort }) });
  }
  {
    const owner = inproc.localDirectory();
    await owner.join(nodeInfo('owner'));
    await owner.publish(entries);
    owners.push(owner);
    clients.push({ name: 'embedded in-process (the serving node)', dir: inproc.localDirectory() });
  }
  {
    const owner = await RedisDirectory.connect({ url: redisUrl });
    await owner.join(nodeInfo('owner'));
    await owner.publish(entries);
    owners.push(owner);
    clients.push({ name: 'Redis (RedisDirectory: HMGET + live-owner filter)', dir: await RedisDirectory.connect({ url: redisUrl }) });
  }
  log(`## 1. Directory lookup: batch ${BATCH} keys (of ${keyCount} present), ${seconds} s per row after a 0.5 s warm-up`);
  log();
  log('Concurrency = async callers in one process sharing one directory client (requests pipelined on its connection).');
  log();
  log('| directory | concurrency | lookups/s | keys/s | p50 µs | p99 µs |');
  log('|---|---:|---:|---:|---:|---:|');
  const probe = new Redis({ host: '127.0.0.1', port: redis.port });
  /** Redis server time per call of `cmd` since the last CONFIG RESETSTAT (INFO commandstats). */
  const serverUs = async (cmd: string): Promise<number> =>
    Number(new RegExp(`cmdstat_${cmd}:.*usec_per_call=([\\d.]+)`).exec(await probe.info('commandstats'))?.[1] ?? NaN);
  const lookupServerUs: number[] = [];
  for (const { name, dir } of clients) {
    for (const c of [1, 2, 4, 8]) {
      await probe.config('RESETSTAT');
      const m = await measure(c, async () => {
        const batch = new Array<string>(BATCH);
        const base = Math.floor(Math.random() * (keyCount - BATCH));
        for (let i = 0; i < BATCH; i++) batch[i] = keys[base + i];
        const found = await dir.lookup(batch);
        if (found[0] === null) throw new Error(`${name}: a present key was not found`);
      });
      if (dir instanceof RedisDirectory) lookupServerUs.push(await serverUs('hmget'));
      log(`| ${name} | ${c} | ${fmt(m.perSecond, 0)} | ${fmt(m.perSecond * BATCH, 0)} | ${fmt(m.p50)} | ${fmt(m.p99)} |`);
    }
  }
  log();
  log(`- Redis server time per 32-key lookup (HMGET, INFO commandstats): ${fmt(median(lookupServerUs), 2)} µs, i.e. one Redis core serves about ${fmt(1e6 / median(lookupServerUs) / 1000, 0)}k such lookups/s; the rows above are bound by this 2-core host (client, server and the rest share it), not by Redis`);
  log();
  log(`### Publish + remove (what a set that evicts sends): batch ${BATCH}, one caller, ${seconds} s`);
  log();
  log('| directory | publish p50 µs | publish p99 µs | remove p50 µs | remove p99 µs | Redis server µs per publish / remove |');
  log('|---|---:|---:|---:|---:|---|');
  for (const [i, { name }] of clients.entries()) {
    const owner = owners[i];
    let seq = 0;
    const pub: number[] = [];
    const rem: number[] = [];
    await probe.config('RESETSTAT');
    const end = performance.now() + seconds * 1000;
    while (performance.now() < end) {
      const batch = Array.from({ length: BATCH }, (_, j) => ({ key: `w/${seq}/${j}`, location: { nodeId: 'owner', offset: j * 4096, length: 4096, generation: 7 } }));
      seq++;
      let t = performance.now();
      await owner.publish(batch);
      pub.push((performance.now() - t) * 1000);
      t = performance.now();
      await owner.remove(batch.map((e) => ({ key: e.key, nodeId: 'owner', generation: 7 })));
      rem.push((performance.now() - t) * 1000);
      await new Promise<void>((r) => setImmediate(r));
    }
    pub.sort((a, b) => a - b);
    rem.sort((a, b) => a - b);
    const server = owner instanceof RedisDirectory ? `${fmt(await serverUs('evalsha'), 1)} (both scripts, mean)` : '-';
    log(`| ${name} | ${fmt(pct(pub, 50))} | ${fmt(pct(pub, 99))} | ${fmt(pct(rem, 50))} | ${fmt(pct(rem, 99))} | ${server} |`);
  }
  probe.disconnect();
  for (const { dir } of clients) await dir.close();
  for (const o of owners) await o.close();
  await inproc.close();
  server.proc.stdin!.end();
  log();
  }

  // ---------------------------------------------------------------- 2 + 3. the get path
  interface GetResult { pagesPerSecond: number; gbps: number; p50: number; p99: number; misses: number }
  async function getRun(kind: 'embedded' | 'redis', cache: boolean, metrics: boolean): Promise<GetResult> {
    const target = kind === 'redis' ? redis.urlWith({ prefix: `get-${Math.random().toString(36).slice(2)}:` }) : `127.0.0.1:${await freePort()}`;
    const pub = spawnFixture(SELF, ['--role', 'publisher', target, String(GET_PAGES), String(PAGE)]);
    children.push(pub);
    let reader: PeerCacheStore | undefined;
    try {
      const ready = (await pub.ready) as { published: number };
      if (ready.published !== GET_PAGES) throw new Error(`publisher published ${ready.published}`);
      const host = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: BATCH, tokensPerPage: 16 });
      const where = kind === 'redis' ? { directoryUrl: target } : { discoveryAddr: target };
      reader = await PeerCacheStore.open({ ...where, protocol: 'shm', hostPool: host, nodeId: 'reader', locationCache: cache, metrics: metrics ? createStoreMetrics() : undefined });
      const indices = host.tokenIndices(Array.from({ length: BATCH }, (_, i) => i));
      const all = Array.from({ length: GET_PAGES }, (_, i) => `dget/${i}`);
      let misses = 0;
      const store = reader;
      const m = await measure(1, async () => {
        const base = Math.floor(Math.random() * (GET_PAGES - BATCH));
        const ok = await store.batchGetV1(all.slice(base, base + BATCH), indices);
        for (const hit of ok) if (!hit) misses++;
      });
      return { pagesPerSecond: m.perSecond * BATCH, gbps: (m.perSecond * BATCH * PAGE) / 1e9, p50: m.p50, p99: m.p99, misses };
    } finally {
      await reader?.close();
      pub.proc.stdin!.end();
      await pub.kill();
      await sleep(200);
    }
  }

  if (parts.has(2)) {
  log(`## 2. The get path: batchGetV1, batch ${BATCH} × ${PAGE / 1024} KiB mla pages, shm, working set ${GET_PAGES} pages`);
  log();
  log(`One reader (one async caller) in this process, the publisher in another; ${seconds} s per run, ${rounds} rounds with the rows interleaved, median of the rounds.`);
  log();
  const configs = [
    { kind: 'embedded', cache: true },
    { kind: 'redis', cache: true },
    { kind: 'embedded', cache: false },
    { kind: 'redis', cache: false },
  ] as const;
  const results = new Map<string, GetResult[]>();
  for (let r = 0; r < rounds; r++) {
    for (const c of configs) {
      const key = `${c.kind}/${c.cache}`;
      const res = await getRun(c.kind, c.cache, false);
      results.set(key, [...(results.get(key) ?? []), res]);
      console.error(`  round ${r + 1} ${key}: ${fmt(res.gbps, 2)} GB/s, p50 ${fmt(res.p50)} µs`);
    }
  }
  const med = (key: string, f: (x: GetResult) => number): number => median(results.get(key)!.map(f));
  log('| directory | location cache | pages/s | GB/s | p50 µs | p99 µs | misses | runs (GB/s) |');
  log('|---|---|---:|---:|---:|---:|---:|---|');
  for (const c of configs) {
    const key = `${c.kind}/${c.cache}`;
    log(`| ${c.kind} | ${c.cache ? 'on (default)' : 'off'} | ${fmt(med(key, (x) => x.pagesPerSecond), 0)} | ${fmt(med(key, (x) => x.gbps), 2)} | ${fmt(med(key, (x) => x.p50))} | ${fmt(med(key, (x) => x.p99))} | ${results.get(key)!.reduce((s, x) => s + x.misses, 0)} | ${results.get(key)!.map((x) => fmt(x.gbps, 2)).join(', ')} |`);
  }
  log();
  for (const cache of [true, false]) {
    const ratio = med(`redis/${cache}`, (x) => x.gbps) / med(`embedded/${cache}`, (x) => x.gbps);
    log(`- Redis / embedded get throughput, location cache ${cache ? 'on' : 'off'}: **${fmt(ratio, 2)}** (target >= 0.8: ${ratio >= 0.8 ? 'PASS' : 'FAIL'})`);
  }
  log();
  }

  if (parts.has(3)) {
  log(`## 3. Metrics on the get path (embedded, same workload)`);
  log();
  const mres = new Map<string, GetResult[]>();
  for (let r = 0; r < rounds; r++) {
    for (const cache of [true, false]) {
      for (const metrics of [false, true]) {
        const key = `${cache}/${metrics}`;
        mres.set(key, [...(mres.get(key) ?? []), await getRun('embedded', cache, metrics)]);
      }
    }
  }
  log('| location cache | metrics | GB/s (median) | p50 µs | runs (GB/s) |');
  log('|---|---|---:|---:|---|');
  for (const cache of [true, false]) {
    for (const metrics of [false, true]) {
      const rs = mres.get(`${cache}/${metrics}`)!;
      log(`| ${cache ? 'on' : 'off'} | ${metrics ? 'on' : 'off'} | ${fmt(median(rs.map((x) => x.gbps)), 2)} | ${fmt(median(rs.map((x) => x.p50)))} | ${rs.map((x) => fmt(x.gbps, 2)).join(', ')} |`);
    }
  }
  log();
  // The parts in isolation, free of the noise of a two-process run.
  const noop: Directory = {
    join: async () => [], lookup: async () => [], publish: async () => [], remove: async () => {}, node: async () => null,
    members: async () => [], subscribe: () => () => {}, close: async () => {},
  };
  const sink = createStoreMetrics();
  const timedNoop = sink.instrumentDirectory(noop, 'bench');
  const perCall = async (d: Directory): Promise<number> => {
    const n = 200_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) await d.lookup([]);
    return ((performance.now() - t0) * 1000) / n;
  };
  const bare: number[] = [];
  const timed: number[] = [];
  for (let r = 0; r < 5; r++) {
    bare.push(await perCall(noop));
    timed.push(await perCall(timedNoop));
  }
  sink.track({ nodeId: 'bench', stats: { getPages: 1, getHits: 1, staleReads: 0, cacheHits: 0, directoryLookups: 0, replicaLookups: 0, setPages: 0, evictions: 0, readErrors: 0, directoryErrors: 0, objectsPublished: 0, bytesPublished: 0, bytesRead: 0 }, publishedSlots: 1, publishedCount: 1 });
  const s0 = performance.now();
  for (let i = 0; i < 200; i++) await sink.text();
  const scrapeUs = ((performance.now() - s0) * 1000) / 200;
  log(`- the directory latency wrapper, per directory call (no I/O, median of 5 × 200k calls): ${fmt(median(timed) - median(bare), 2)} µs (${fmt(median(timed), 2)} wrapped vs ${fmt(median(bare), 2)} bare); a cached get makes no directory call`);
  log('- every other metric is read from `store.stats` at scrape time: no per-get cost; one scrape of one store\'s metrics takes ' + `${fmt(scrapeUs, 0)} µs`);
  log();
  }
  log(`- load average after: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
} finally {
  await Promise.all(children.map((c) => c.kill()));
  await redis.stop();
}
save(out);
process.exit(0);
