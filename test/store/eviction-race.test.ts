/**
 * The original's known defect must not exist: a reader that looked a key up can READ a slot that
 * was evicted and reused meanwhile. A pool of 64 slots, a writer cycling through 10,000 keys,
 * readers in other processes verifying every byte of every hit for 10 s: zero wrong hits, the
 * miss count reported. On the embedded directory and on a real redis-server.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnFixture, type Child } from '../helpers/child.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const writer = new URL('../fixtures/race-writer.ts', import.meta.url);
const reader = new URL('../fixtures/race-reader.ts', import.meta.url);
const SECONDS = Number(process.env.PEERCACHE_RACE_SECONDS ?? 10);
const PAGE = 16 * 1024;

interface Counts { hits: number; misses: number; wrong: number; scans: number; calls: number; staleReads: number; replicaLookups: number }

type Protocol = 'shm' | 'tcp';

let redis: RedisServer | undefined;

test.after(async () => {
  await redis?.stop();
});

interface Kind {
  /** The test title's and log line's prefix. */
  title: string;
  label: (protocol: Protocol) => string;
  /** Where one race's nodes meet (the fixtures' first argument). */
  directory(protocol: Protocol): Promise<string>;
  /** The second reader keeps a directory replica (the embedded directory; Redis keeps none). */
  replica: boolean;
}

const kinds: Kind[] = [
  { title: '', label: (protocol) => protocol, directory: async () => `127.0.0.1:${await freePort()}`, replica: true },
  {
    title: 'redis directory, ',
    label: (protocol) => `redis/${protocol}`,
    replica: false,
    async directory(protocol) {
      redis ??= await startRedis();
      // A prefix per race: a writer killed before it left cannot hold the next race's node id.
      return redis.urlWith({ prefix: `race-${protocol}:`, ttl_ms: 3000, poll_ms: 250 });
    },
  },
];

async function race(kind: Kind, protocol: Protocol, modes: ('store' | 'store-replica' | 'unvalidated')[]): Promise<Counts[]> {
  const where = await kind.directory(protocol);
  const w = spawnFixture(writer, [where, protocol, '64', '10000', String(PAGE), '2']);
  const children: Child[] = [w];
  try {
    await w.ready;
    const rs = modes.map((mode, i) => spawnFixture(reader, [where, protocol, '10000', String(PAGE), String(SECONDS), mode, `reader-${i}`]));
    children.push(...rs);
    const results = (await Promise.all(rs.map((r) => r.ready))) as unknown as Counts[];
    w.proc.stdin!.end();
    return results;
  } finally {
    await Promise.all(children.map((c) => c.kill()));
  }
}

for (const kind of kinds) {
  for (const protocol of ['shm', 'tcp'] as const) {
    test(`${kind.title}eviction race on ${protocol}: 64 slots, 10,000 keys, ${SECONDS} s, every hit verified: zero wrong hits`, async () => {
      // On the embedded directory the second reader answers its lookups from a replica: stale
      // "present" answers must cost misses only, never wrong bytes.
      const [a, b, control] = await race(kind, protocol, ['store', kind.replica ? 'store-replica' : 'store', 'unvalidated']);
      if (kind.replica) assert.ok(b.replicaLookups > 100, `the replica reader did not use its replica: ${JSON.stringify(b)}`);
      for (const r of [a, b]) {
        assert.is(r.wrong, 0, `wrong hits: ${JSON.stringify(r)}`);
        assert.ok(r.hits > 100, `too few hits to mean anything: ${JSON.stringify(r)}`);
      }
      const total = (k: keyof Counts) => a[k] + b[k];
      console.log(
        `    ${kind.label(protocol)}: ${total('hits')} verified hits, ${total('misses')} misses (${total('staleReads')} stale slots caught), 0 wrong;` +
          ` unvalidated control: ${control.hits} right, ${control.wrong} WRONG of ${control.hits + control.wrong}`,
      );
      // The workload really produces the race: READs of looked-up slots without the generation
      // check (the original's read path) return another key's bytes. This is what the test catches.
      assert.ok(control.wrong > 0, `the unvalidated control saw no wrong bytes: ${JSON.stringify(control)}`);
    });
  }
}

test.run();
