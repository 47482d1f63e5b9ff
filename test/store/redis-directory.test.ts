/**
 * RedisDirectory against a real redis-server, what only Redis has: directory URLs, liveness by
 * key expiry (a SIGKILLed node's keys become misses within the TTL, node-left follows), Redis
 * restarted mid-run, Redis unreachable at start, prefixes. The semantics it shares with the
 * embedded directory run on both in directory.test.ts.
 */
import { DirectoryError } from '../../src/store/directory/client.js';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { memoryLogger } from '../helpers/log.js';
import net from 'node:net';
import { Redis } from 'ioredis';
import { spawnFixture, type Child } from '../helpers/child.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';
import { RedisDirectory } from '../../src/store/directory/redis.js';
import { parseDirectoryChoice, parseRedisUrl, redactUrl } from '../../src/store/directory/url.js';
import type { DirectoryEvent } from '../../src/store/types.js';
import { loc, nodeInfo, rejection, sleep, waitFor } from '../helpers/directory.js';

const FIXTURE = new URL('../fixtures/directory-node.ts', import.meta.url);

let redis: RedisServer;
let prefixes = 0;
/** A URL with a prefix of its own: tests do not see each other's keys. */
const url = (q: Record<string, string | number> = {}): string => redis.urlWith({ prefix: `t${++prefixes}:`, ttl_ms: 1000, poll_ms: 100, ...q });

test.before(async () => {
  redis = await startRedis();
});

test.after(async () => {
  await redis.stop();
});

test('directory URLs: parsing, options, masking, clear errors', () => {
  const p = parseRedisUrl('rediss://user:s3cr%40t@cache.example:6380/2?prefix=fleet:&ttl_ms=8000&poll_ms=500');
  assert.equal(
    { tls: p.tls, host: p.host, port: p.port, db: p.db, username: p.username, password: p.password, prefix: p.prefix, ttlMs: p.ttlMs, pollMs: p.pollMs },
    { tls: true, host: 'cache.example', port: 6380, db: 2, username: 'user', password: 's3cr@t', prefix: 'fleet:', ttlMs: 8000, pollMs: 500 },
  );
  assert.not.match(p.redacted, 's3cr');
  assert.is(redactUrl('redis://:pw@h:1/0'), 'redis://:***@h:1/0');
  assert.equal(parseRedisUrl('redis://[::1]').host, '::1');
  assert.is(parseRedisUrl('redis://h').port, 6379);
  assert.equal(parseDirectoryChoice(undefined), { kind: 'embedded' });
  assert.equal(parseDirectoryChoice('embedded'), { kind: 'embedded' });
  assert.is(parseDirectoryChoice('redis://h:1').kind, 'redis');
  assert.throws(() => parseDirectoryChoice('etcd://h:1'), /expected 'embedded', redis:\/\/host:port\[\/db\] or rediss:/);
  assert.throws(() => parseRedisUrl('redis://h:1/db0'), /path must be a database number/);
  assert.throws(() => parseRedisUrl('redis://h:1/0?ttl=5'), /unknown option 'ttl'/);
  assert.throws(() => parseRedisUrl('redis://h:1/0?ttl_ms=0'), /ttl_ms must be a positive integer/);
  assert.throws(() => parseRedisUrl('redis://:hunter2@h:1/x'), (e: Error) => !e.message.includes('hunter2'));
});

test('a SIGKILLed node: its keys are misses within the TTL, node-left follows, its entries are deleted, others take its keys', async () => {
  const u = url({ ttl_ms: 800, poll_ms: 100 });
  const watcher = await RedisDirectory.connect({ url: u });
  let child: Child | undefined;
  try {
    await watcher.join(nodeInfo('watcher'));
    const events: DirectoryEvent[] = [];
    watcher.subscribe((e) => events.push(e));
    child = spawnFixture(FIXTURE, ['join', u, 'victim', '50']);
    const ready = (await child.ready) as { accepted: number; members: number };
    assert.is(ready.accepted, 50);
    await waitFor('node-joined', () => events.some((e) => e.type === 'node-joined' && e.node.nodeId === 'victim'), 5000);
    assert.equal(await watcher.lookup(['victim/k0']), [loc('victim', 0, 1)]);
    child.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor('the keys to become misses', async () => (await watcher.lookup(['victim/k0', 'victim/k49'])).every((l) => l === null), 3000);
    const missAfter = Date.now() - killedAt;
    await waitFor('node-left', () => events.some((e) => e.type === 'node-left' && e.nodeId === 'victim'), 3000);
    const leftAfter = Date.now() - killedAt;
    console.log(`    ttl 800 ms, poll 100 ms: keys missed ${missAfter} ms after SIGKILL, node-left after ${leftAfter} ms`);
    assert.ok(missAfter <= 800 + 150, `misses within the TTL: ${missAfter} ms`);
    assert.ok(leftAfter <= 800 + 2 * 100 + 200, `node-left within TTL + poll: ${leftAfter} ms`);
    assert.is(await watcher.node('victim'), null);
    assert.equal((await watcher.members()).map((m) => m.nodeId), ['watcher']);
    // The sweep deleted the entries (not just hid them), and a live node may take the keys.
    const probe = new Redis({ host: '127.0.0.1', port: redis.port, lazyConnect: true });
    await probe.connect();
    const prefix = new URL(u).searchParams.get('prefix')!;
    assert.is(await probe.hlen(`${prefix}e`), 0);
    assert.is(await probe.exists(`${prefix}o:victim`), 0);
    probe.disconnect();
    assert.equal(await watcher.publish([{ key: 'victim/k0', location: loc('watcher', 0, 3) }]), [true]);
  } finally {
    await child?.kill('SIGKILL');
    await watcher.close();
  }
});

test('a dead node restarted under the same id never serves the old process slots', async () => {
  const u = url({ ttl_ms: 600, poll_ms: 100 });
  const reader = await RedisDirectory.connect({ url: u });
  let first: Child | undefined;
  let second: RedisDirectory | undefined;
  try {
    first = spawnFixture(FIXTURE, ['join', u, 'phoenix', '3']);
    await first.ready;
    first.proc.kill('SIGKILL');
    // Before its TTL runs out the id is still taken...
    second = await RedisDirectory.connect({ url: u });
    assert.match((await rejection(second.join(nodeInfo('phoenix')))).message, /already in use/);
    // ...after it, the new process joins and the old entries are gone, not inherited.
    await sleep(700);
    await second.join(nodeInfo('phoenix'));
    assert.equal(await reader.lookup(['phoenix/k0', 'phoenix/k2']), [null, null]);
  } finally {
    await first?.kill('SIGKILL');
    await second?.close();
    await reader.close();
  }
});

test('Redis restarted mid-run: calls fail fast while it is down (no hang), clients reconnect, re-join and republish', async () => {
  const u = url({ ttl_ms: 2000, poll_ms: 100 });
  const { lines: logs, logger } = memoryLogger();
  const a = await RedisDirectory.connect({ url: u, logger });
  const b = await RedisDirectory.connect({ url: u });
  try {
    await a.join(nodeInfo('a'));
    await b.join(nodeInfo('b'));
    const keys = Array.from({ length: 20 }, (_, i) => `r/${i}`);
    assert.ok((await a.publish(keys.map((key, i) => ({ key, location: loc('a', i * 4096, 1) })))).every(Boolean));
    await a.remove([{ key: 'r/19', nodeId: 'a', generation: 1 }]);
    await redis.kill();
    const t0 = Date.now();
    const err = await rejection(b.lookup(keys));
    assert.ok(Date.now() - t0 < 1000, 'a call while Redis is down fails fast');
    assert.match(err.message, /redis/);
    await redis.start();
    // Everything Redis held is gone; the heartbeat re-joins both nodes and a republishes its 19 entries.
    await waitFor('republished entries', async () => {
      try {
        const found = await b.lookup(keys);
        return found.slice(0, 19).every((l, i) => l?.offset === i * 4096) && found[19] === null;
      } catch {
        return false;
      }
    }, 5000).catch(async (e: Error) => {
      throw new Error(`${e.message}: ${JSON.stringify(await b.lookup(keys).catch((x: Error) => x.message))} ${JSON.stringify(a.stats())} ${logs.join('\n')}`);
    });
    assert.equal((await b.members()).map((m) => m.nodeId).sort(), ['a', 'b']);
    const st = a.stats();
    assert.ok(st.reconnects >= 1 && st.rejoins >= 1 && st.republished === 19, JSON.stringify(st));
    assert.ok(logs.some((l) => /lost its membership/.test(l)), logs.join('\n'));
  } finally {
    await a.close();
    await b.close();
  }
});

test('closing while Redis is down returns at once; the node is gone once Redis is back (its key died with Redis)', async () => {
  const u = url({ ttl_ms: 1000, poll_ms: 100 });
  const a = await RedisDirectory.connect({ url: u });
  const b = await RedisDirectory.connect({ url: u });
  try {
    await a.join(nodeInfo('a'));
    await b.join(nodeInfo('b'));
    await redis.kill();
    const t0 = Date.now();
    await a.close();
    assert.ok(Date.now() - t0 < 1500, `close took ${Date.now() - t0} ms`);
    await redis.start();
    await waitFor('b back, a gone', async () => {
      const m = await b.members().catch(() => []);
      return m.length === 1 && m[0].nodeId === 'b';
    }, 5000);
  } finally {
    await a.close();
    await b.close();
  }
});

test('Redis unreachable at start: a clear error naming the URL (password masked), no hang', async () => {
  const port = await freePort();
  const t0 = Date.now();
  const err = await rejection(RedisDirectory.connect({ url: `redis://:hunter2@127.0.0.1:${port}/0` }));
  assert.ok(Date.now() - t0 < 2000, `refused fast: ${Date.now() - t0} ms`);
  assert.match(err.message, `cannot connect to the Redis directory at redis://:***@127.0.0.1:${port}/0`);
  assert.match(err.message, /ECONNREFUSED/);
  assert.not.match(err.message, 'hunter2');
  assert.is(err.code, 'ERR_CONNECT');
  assert.is((err as DirectoryError).errno, 'ECONNREFUSED');
  // A server that accepts but never answers: the connect deadline holds.
  const silent = net.createServer(() => {});
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  const sport = (silent.address() as net.AddressInfo).port;
  try {
    const t1 = Date.now();
    const e2 = await rejection(RedisDirectory.connect({ url: `redis://127.0.0.1:${sport}/0?connect_timeout_ms=300` }));
    assert.ok(Date.now() - t1 < 2000, `deadline held: ${Date.now() - t1} ms`);
    assert.match(e2.message, `cannot connect to the Redis directory at redis://127.0.0.1:${sport}/0`);
  } finally {
    silent.close();
  }
});

test('a poll period above a third of the TTL is refused before connecting', async () => {
  const err = await rejection(RedisDirectory.connect({ url: redis.urlWith({ ttl_ms: 300, poll_ms: 200 }) }));
  assert.match(err.message, /poll_ms \(200\) must be an integer of at most a third of ttl_ms \(300\)/);
});

test('two prefixes on one Redis are two directories', async () => {
  const a = await RedisDirectory.connect({ url: url() });
  const b = await RedisDirectory.connect({ url: url() });
  try {
    await a.join(nodeInfo('n'));
    await b.join(nodeInfo('n'));
    await a.publish([{ key: 'k', location: loc('n', 0, 1) }]);
    assert.equal(await b.lookup(['k']), [null]);
    assert.equal((await b.members()).length, 1);
  } finally {
    await a.close();
    await b.close();
  }
});

test.run();
