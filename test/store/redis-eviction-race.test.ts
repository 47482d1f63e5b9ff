/**
 * The eviction-race stress test (eviction-race.test.ts) with the directory on a real
 * redis-server: a pool of 64 slots, a writer cycling through 10,000 keys, readers in other
 * processes verifying every byte of every hit: zero wrong hits, the miss count reported.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnFixture, type Child } from '../helpers/child.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const writer = new URL('../fixtures/race-writer.ts', import.meta.url);
const reader = new URL('../fixtures/race-reader.ts', import.meta.url);
const SECONDS = Number(process.env.PEERCACHE_RACE_SECONDS ?? 10);
const PAGE = 16 * 1024;

interface Counts { hits: number; misses: number; wrong: number; scans: number; calls: number; staleReads: number }

let redis: RedisServer;

test.before(async () => {
  redis = await startRedis();
});

test.after(async () => {
  await redis.stop();
});

async function race(protocol: 'shm' | 'tcp', modes: ('store' | 'unvalidated')[]): Promise<Counts[]> {
  // A prefix per race: a writer killed before it left cannot hold the next race's node id.
  const url = redis.urlWith({ prefix: `race-${protocol}:`, ttl_ms: 3000, poll_ms: 250 });
  const w = spawnFixture(writer, [url, protocol, '64', '10000', String(PAGE), '2']);
  const children: Child[] = [w];
  try {
    await w.ready;
    const rs = modes.map((mode, i) => spawnFixture(reader, [url, protocol, '10000', String(PAGE), String(SECONDS), mode, `reader-${i}`]));
    children.push(...rs);
    const results = (await Promise.all(rs.map((r) => r.ready))) as unknown as Counts[];
    w.proc.stdin!.end();
    return results;
  } finally {
    await Promise.all(children.map((c) => c.kill()));
  }
}

for (const protocol of ['shm', 'tcp'] as const) {
  test(`redis directory, eviction race on ${protocol}: 64 slots, 10,000 keys, ${SECONDS} s, every hit verified: zero wrong hits`, async () => {
    const [a, b, control] = await race(protocol, ['store', 'store', 'unvalidated']);
    for (const r of [a, b]) {
      assert.is(r.wrong, 0, `wrong hits: ${JSON.stringify(r)}`);
      assert.ok(r.hits > 100, `too few hits to mean anything: ${JSON.stringify(r)}`);
    }
    const total = (k: keyof Counts) => a[k] + b[k];
    console.log(
      `    redis/${protocol}: ${total('hits')} verified hits, ${total('misses')} misses (${total('staleReads')} stale slots caught), 0 wrong;` +
        ` unvalidated control: ${control.hits} right, ${control.wrong} WRONG of ${control.hits + control.wrong}`,
    );
    assert.ok(control.wrong > 0, `the unvalidated control saw no wrong bytes: ${JSON.stringify(control)}`);
  });
}

test.run();
