/**
 * PeerCacheStore on a real redis-server: Redis restarted mid-run (the stores' calls fail fast
 * as misses, nothing throws or hangs; the clients reconnect, the nodes re-join and republish, and
 * hits come back without the application doing anything); Redis unreachable at start (a clear
 * error naming the URL, fast); bad directory URLs.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rejection, sleep } from '../helpers/directory.js';
import { checkPattern, fillPattern } from '../../src/bench/engine/pattern.js';
import { freePort } from '../helpers/ports.js';
import { startRedis } from '../helpers/redis.js';
import { HostKVPool } from '../../src/store/host-pool.js';
import { PeerCacheStore, StoreConfigError } from '../../src/store/peer-cache-store.js';

const PAGE = 8192;

test('Redis restarted mid-run: reads miss while it is down, nothing crashes, then the nodes re-join, republish and hit again', async () => {
  const redis = await startRedis();
  const url = redis.urlWith({ prefix: 'restart:', ttl_ms: 2000, poll_ms: 100 });
  const ppool = new HostKVPool({ layout: 'mha', pageBytes: PAGE, pages: 32, tokensPerPage: 16 });
  const dpool = new HostKVPool({ layout: 'mha', pageBytes: PAGE, pages: 32, tokensPerPage: 16 });
  let prefill: PeerCacheStore | undefined;
  let decode: PeerCacheStore | undefined;
  try {
    prefill = await PeerCacheStore.open({ directoryUrl: url, protocol: 'shm', hostPool: ppool, globalSegmentBytes: 2 << 20, nodeId: 'prefill' });
    // No location cache: every get asks the directory, so an outage really shows.
    decode = await PeerCacheStore.open({ directoryUrl: url, protocol: 'shm', hostPool: dpool, nodeId: 'decode', locationCache: false });
    const keys = Array.from({ length: 16 }, (_, i) => `rs/${i}`);
    const src = keys.map((_, i) => i);
    src.forEach((p, i) => [0, 1].forEach((c) => fillPattern(ppool.pageView(p, c), 1000 + i * 2 + c, 0)));
    assert.ok((await prefill.batchSetV1(keys, ppool.tokenIndices(src))).every(Boolean));
    const dst = dpool.tokenIndices(keys.map((_, i) => 16 + i));
    const verify = () => keys.every((_, i) => [0, 1].every((c) => checkPattern(dpool.pageView(16 + i, c), 1000 + i * 2 + c, 0) === -1));
    assert.ok((await decode.batchGetV1(keys, dst)).every(Boolean));
    assert.ok(verify());

    await redis.kill();
    const t0 = Date.now();
    assert.ok((await decode.batchGetV1(keys, dst)).every((hit) => !hit), 'misses while Redis is down');
    assert.is(await decode.batchExists(keys), 0, 'batchExists: 0, not an error');
    assert.not.ok(await decode.exists('anything'));
    const more = ['rs/new'];
    assert.equal(await prefill.batchSetV1(more, ppool.tokenIndices([20])), [false], 'a set that cannot be published is a failure, not a throw');
    assert.ok(Date.now() - t0 < 2000, `no hang while Redis is down: ${Date.now() - t0} ms`);
    assert.ok(decode.stats.directoryErrors >= 2);

    await redis.start();
    const t1 = Date.now();
    let back = false;
    while (!back && Date.now() - t1 < 8000) {
      await sleep(50);
      for (const p of keys.map((_, i) => 16 + i)) dpool.pageView(p, 0).fill(0);
      back = (await decode.batchGetV1(keys, dst)).every(Boolean);
    }
    assert.ok(back, 'hits again after Redis came back (the publisher republished its entries)');
    assert.ok(verify(), 'with the right bytes');
    console.log(`    hits back ${Date.now() - t1} ms after redis-server restarted`);
    assert.equal((await decode.members()).map((m) => m.nodeId).sort(), ['decode', 'prefill']);
    assert.equal(await prefill.batchSetV1(more, ppool.tokenIndices([20])), [true]);
    assert.is(await decode.batchExists([...keys, ...more]), 17);
  } finally {
    await decode?.close();
    await prefill?.close();
    await redis.stop();
  }
});

test('Redis unreachable at start: PeerCacheStore.open fails fast with an error naming the URL', async () => {
  const port = await freePort();
  const t0 = Date.now();
  const err = await rejection(PeerCacheStore.open({ directoryUrl: `redis://app:pw@127.0.0.1:${port}/3`, protocol: 'tcp', nodeId: 'x' }));
  assert.ok(Date.now() - t0 < 3000, `${Date.now() - t0} ms`);
  assert.match(err.message, `cannot connect to the Redis directory at redis://app:***@127.0.0.1:${port}/3`);
  assert.not.match(err.message, ':pw@');
});

test('bad directory URLs are configuration errors', async () => {
  for (const [directoryUrl, pattern] of [
    ['etcd://127.0.0.1:2379', /expected 'embedded', redis:\/\/host:port/],
    ['redis://127.0.0.1:6379/x', /database number/],
    ['redis://127.0.0.1:6379/0?bogus=1', /unknown option 'bogus'/],
  ] as const) {
    const err = await rejection(PeerCacheStore.open({ directoryUrl, protocol: 'tcp' }));
    assert.instance(err, StoreConfigError);
    assert.match(err.message, pattern);
  }
  // 'embedded' still needs its discovery address.
  assert.match((await rejection(PeerCacheStore.open({ directoryUrl: 'embedded', protocol: 'tcp' }))).message, /discoveryAddr \(host:port\) is required/);
});

test.run();
