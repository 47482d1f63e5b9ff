/**
 * Tenants on the Redis directory (issue 24, item 4): each tenant is a Redis ACL user allowed only
 * its own key prefix (`~peercache:<tenant>:*`), given to its nodes in the URL (user, password,
 * prefix). Against a real redis-server: tenants sharing one Redis neither see nor poison each
 * other's keys, and a node that names another tenant's prefix is refused by Redis itself with a
 * one-line reason (no ioredis warning on stderr: its INFO ready check is off).
 */
import { Redis } from 'ioredis';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RedisDirectory } from '../../src/store/directory/redis.js';
import { startRedis } from '../helpers/redis.js';
import { loc, nodeInfo, rejection } from '../helpers/directory.js';

test("a tenant's Redis user reaches only its own prefix: no poisoning, no reading, a clear refusal", async () => {
  const redis = await startRedis();
  const admin = new Redis(redis.port, '127.0.0.1', { lazyConnect: true });
  const stderr: string[] = [];
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string | Uint8Array, ...rest: unknown[]) => {
    stderr.push(String(chunk));
    return (write as (...a: unknown[]) => boolean)(chunk, ...rest);
  }) as typeof process.stderr.write;
  const dirs: RedisDirectory[] = [];
  try {
    await admin.connect();
    for (const t of ['a', 'b']) {
      // What an operator runs once per tenant: its own keys, the commands a directory needs.
      await admin.call('ACL', 'SETUSER', `tenant-${t}`, 'on', `>pw-${t}`, 'resetkeys', `~peercache:${t}:*`, 'resetchannels', '+@all', '-@dangerous');
    }
    const url = (user: string, prefix: string) => `redis://tenant-${user}:pw-${user}@127.0.0.1:${redis.port}/0?prefix=peercache:${prefix}:`;
    const b = await RedisDirectory.connect({ url: url('b', 'b') });
    dirs.push(b);
    await b.join(nodeInfo('b-rank'));
    // B publishes the key first ...
    assert.equal(await b.publish([{ key: 'model/page-1', location: loc('b-rank', 0, 1) }]), [true]);
    const a = await RedisDirectory.connect({ url: url('a', 'a') });
    dirs.push(a);
    await a.join(nodeInfo('a-rank'));
    // ... A's publish is A's own, and A's lookups find A's node.
    assert.equal(await a.publish([{ key: 'model/page-1', location: loc('a-rank', 4096, 1) }]), [true]);
    assert.is((await a.lookup(['model/page-1']))[0]?.nodeId, 'a-rank');
    assert.equal((await a.members()).map((m) => m.nodeId), ['a-rank']);
    // B naming A's prefix: Redis refuses B's user, and the directory says why in one line.
    const err = await rejection(RedisDirectory.connect({ url: url('b', 'a') }));
    assert.is(err.code, 'ERR_ACCESS_DENIED');
    assert.match(err.message, /may not use the key prefix 'peercache:a:' \(Redis ACL\)/);
    assert.not.match(err.message, /pw-b/);
    // And B's user cannot read A's keys directly either.
    const raw = new Redis(redis.port, '127.0.0.1', { username: 'tenant-b', password: 'pw-b', lazyConnect: true, enableReadyCheck: false });
    await raw.connect();
    const denied = await rejection(raw.hgetall('peercache:a:e'));
    assert.match(denied.message, /NOPERM/);
    raw.disconnect();
    assert.not.ok(stderr.some((l) => /ready check/.test(l)), stderr.join(''));
  } finally {
    process.stderr.write = write;
    for (const d of dirs) await d.close();
    admin.disconnect();
    await redis.stop();
  }
});

test.run();
