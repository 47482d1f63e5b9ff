/**
 * The HiCacheStorage contract (contract.test.ts, every suite: shm and tcp, mla and mha, legacy
 * API, configuration, the location cache) run again with the directory on a real redis-server.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { Redis } from 'ioredis';
import { startRedis } from '../helpers/redis.js';

const redis = await startRedis();
process.env.PEERCACHE_TEST_DIRECTORY_URL = redis.urlWith({ prefix: 'contract:', ttl_ms: 3000, poll_ms: 200 });
await import('./contract.test.js');

// uvu runs suites in the order they were queued: this one runs after every contract suite.
const teardown = suite('redis teardown');
teardown('the contract really ran on Redis; every node left and took its entries along', async () => {
  const probe = new Redis({ port: redis.port, host: '127.0.0.1', lazyConnect: true });
  try {
    await probe.connect();
    const stats = await probe.info('commandstats');
    const calls = (cmd: string) => Number(new RegExp(`cmdstat_${cmd}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    const scripts = calls('evalsha') + calls('eval');
    assert.ok(scripts > 40, `directory scripts ran on Redis: ${scripts}`);
    assert.is(await probe.hlen('contract:e'), 0, 'no entries left behind');
    assert.is(await probe.zcard('contract:m'), 0, 'no members left behind');
  } finally {
    probe.disconnect();
    await redis.stop();
  }
});
teardown.run();
