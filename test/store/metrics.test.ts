/**
 * /metrics over HTTP: Prometheus text format, the metric names, and counts that move after a set
 * and a get (two stores on shm sharing one registry, each labelled by node).
 */
import net from 'node:net';
import { test } from 'uvu';
import { InvalidArgumentError } from '../../src/errors.js';
import * as assert from 'uvu/assert';
import { fillPattern } from '../../src/bench/engine/pattern.js';
import { freePort } from '../helpers/ports.js';
import { HostKVPool } from '../../src/store/host-pool.js';
import { publishedPoolBytes } from '../../src/store/published-pool.js';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import { createStoreMetrics, startMetricsServer } from '../../src/store/metrics.js';

const PAGE = 8192;

async function scrape(url: string): Promise<{ status: number; type: string; body: string }> {
  const res = await fetch(url);
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: await res.text() };
}

/** The value of one sample, e.g. value(body, 'peercache_pages_read_total', { node: 'decode' }). */
function value(body: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return NaN;
}

test('GET /metrics: names, types and counts that move after set and get', async () => {
  const metrics = createStoreMetrics();
  const server = await startMetricsServer({ port: 0, registry: metrics });
  const addr = `127.0.0.1:${await freePort()}`;
  const ppool = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 16, tokensPerPage: 16 });
  const dpool = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 16, tokensPerPage: 16 });
  // 8 slots: publishing 10 pages evicts 2.
  const prefill = await PeerCacheStore.open({ discoveryAddr: addr, protocol: 'shm', hostPool: ppool, globalSegmentBytes: publishedPoolBytes(8, PAGE), nodeId: 'prefill', metrics });
  const decode = await PeerCacheStore.open({ discoveryAddr: addr, protocol: 'shm', hostPool: dpool, nodeId: 'decode', metrics });
  try {
    const before = await scrape(server.url);
    assert.is(before.status, 200);
    assert.match(before.type, 'text/plain');
    for (const name of [
      'peercache_pages_published_total', 'peercache_published_bytes_total', 'peercache_pages_read_total', 'peercache_read_bytes_total',
      'peercache_pages_evicted_total', 'peercache_get_hit_ratio', 'peercache_pool_slots', 'peercache_pool_slots_used',
      'peercache_pool_occupancy_ratio', 'peercache_errors_total', 'peercache_directory_request_duration_seconds',
      'peercache_stale_reads_total', 'peercache_location_cache_hits_total', 'peercache_get_pages_total', 'peercache_replica_lookups_total',
    ]) {
      assert.match(before.body, `# HELP ${name} `, name);
    }
    assert.match(before.body, '# TYPE peercache_pages_read_total counter');
    assert.match(before.body, '# TYPE peercache_directory_request_duration_seconds histogram');
    assert.is(value(before.body, 'peercache_pages_read_total', { node: 'decode' }), 0);
    assert.is(value(before.body, 'peercache_pool_slots', { node: 'prefill' }), 8);

    const keys = Array.from({ length: 10 }, (_, i) => `m/${i}`);
    keys.forEach((_, i) => fillPattern(ppool.pageView(i), i + 1, 0));
    // Two batches (a batch larger than the pool evicts its own pages, which then count as failed).
    assert.ok((await prefill.batchSetV1(keys.slice(0, 5), ppool.tokenIndices([0, 1, 2, 3, 4]))).every(Boolean));
    assert.ok((await prefill.batchSetV1(keys.slice(5), ppool.tokenIndices([5, 6, 7, 8, 9]))).every(Boolean));
    const got = await decode.batchGetV1(keys, dpool.tokenIndices(keys.map((_, i) => i)));
    assert.equal(got.filter(Boolean).length, 8, 'the 8 pages still published are hits');

    const after = (await scrape(server.url)).body;
    assert.is(value(after, 'peercache_pages_published_total', { node: 'prefill' }), 10);
    assert.is(value(after, 'peercache_published_bytes_total', { node: 'prefill' }), 10 * PAGE);
    assert.is(value(after, 'peercache_pages_evicted_total', { node: 'prefill' }), 2);
    assert.is(value(after, 'peercache_get_pages_total', { node: 'decode' }), 10);
    assert.is(value(after, 'peercache_pages_read_total', { node: 'decode' }), 8);
    assert.is(value(after, 'peercache_read_bytes_total', { node: 'decode' }), 8 * PAGE);
    assert.is(value(after, 'peercache_get_hit_ratio', { node: 'decode' }), 0.8);
    assert.is(value(after, 'peercache_pool_slots_used', { node: 'prefill' }), 8);
    assert.is(value(after, 'peercache_pool_occupancy_ratio', { node: 'prefill' }), 1);
    assert.is(value(after, 'peercache_errors_total', { node: 'decode', kind: 'read' }), 0);
    assert.ok(value(after, 'peercache_directory_request_duration_seconds_count', { node: 'decode', op: 'lookup' }) >= 1);
    assert.ok(value(after, 'peercache_directory_request_duration_seconds_count', { node: 'prefill', op: 'publish' }) >= 1);
    assert.ok(value(after, 'peercache_directory_request_duration_seconds_sum', { node: 'decode', op: 'lookup' }) > 0);

    // A cached get makes no directory round trip and still counts.
    await decode.batchGetV1(keys.slice(2), dpool.tokenIndices([0, 1, 2, 3, 4, 5, 6, 7]));
    const cached = (await scrape(server.url)).body;
    assert.is(value(cached, 'peercache_pages_read_total', { node: 'decode' }), 16);
    assert.ok(value(cached, 'peercache_location_cache_hits_total', { node: 'decode' }) >= 8);

    assert.is((await scrape(server.url.replace('/metrics', '/nope'))).status, 404);
    const post = await fetch(server.url, { method: 'POST' });
    assert.is(post.status, 405);
  } finally {
    await decode.close();
    await prefill.close();
    await server.close();
  }
  // A closed store's series are gone.
  assert.not.match(await metrics.text(), 'node="decode"');
});

test('startMetricsServer: a port in use is a clear error; default process metrics on request', async () => {
  const a = await startMetricsServer({ port: 0, registry: createStoreMetrics({ defaultMetrics: true }) });
  try {
    assert.match((await scrape(a.url)).body, 'process_cpu_user_seconds_total');
    try {
      await startMetricsServer({ port: a.port, registry: createStoreMetrics() });
      assert.unreachable('the second listen must fail');
    } catch (err) {
      assert.match((err as Error).message, `metrics server cannot listen on 127.0.0.1:${a.port}`);
    }
  } finally {
    await a.close();
  }
});

test('startMetricsServer: a client that sends its headers slowly is dropped after headersTimeoutMs, not 60 s', async () => {
  const server = await startMetricsServer({ port: 0, registry: createStoreMetrics(), headersTimeoutMs: 300, requestTimeoutMs: 600 });
  const sockets: net.Socket[] = [];
  let drip: NodeJS.Timeout | undefined;
  try {
    const slow = net.connect({ host: '127.0.0.1', port: server.port });
    const silent = net.connect({ host: '127.0.0.1', port: server.port });
    sockets.push(slow, silent);
    const closed = (s: net.Socket): Promise<number> =>
      new Promise<number>((resolve) => {
        s.on('error', () => undefined);
        s.resume();
        s.once('close', () => resolve(Date.now()));
      });
    const slowClosed = closed(slow);
    const silentClosed = closed(silent);
    const t0 = Date.now();
    slow.write('GET /metrics HTTP/1.1\r\nHost: x\r\n');
    // One header byte every 50 ms: the headers never finish.
    drip = setInterval(() => slow.writable && slow.write('X'), 50);
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error('slow-header clients still connected after 10 s')), 10_000)));
    const [a, b] = await Promise.race([Promise.all([slowClosed, silentClosed]), deadline]).finally(() => clearTimeout(timer));
    assert.ok(a - t0 < 10_000 && b - t0 < 10_000);
    // The server still answers others.
    assert.is((await scrape(server.url)).status, 200);
  } finally {
    clearInterval(drip);
    for (const s of sockets) s.destroy();
    await server.close();
  }
});

test('startMetricsServer: bad timeouts are refused', async () => {
  for (const [opts, re] of [
    [{ headersTimeoutMs: 0 }, /headersTimeoutMs must be a positive integer/],
    [{ requestTimeoutMs: 1.5 }, /requestTimeoutMs must be a positive integer/],
    [{ headersTimeoutMs: 2_000, requestTimeoutMs: 1_000 }, /headersTimeoutMs \(2000\) must not exceed requestTimeoutMs \(1000\)/],
  ] as const) {
    let err: unknown = null;
    await startMetricsServer({ port: 0, registry: createStoreMetrics(), ...opts }).then((s) => s.close(), (e: unknown) => (err = e));
    assert.instance(err, InvalidArgumentError, JSON.stringify(opts));
    assert.is((err as InvalidArgumentError).code, 'ERR_INVALID_ARG');
    assert.match((err as Error).message, re);
  }
});

test.run();
