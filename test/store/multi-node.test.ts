/**
 * Nodes in separate processes sharing one directory; a node killed mid-read: misses or clear
 * errors, no hang, the survivor keeps serving. On the embedded directory the dead node's keys turn
 * into misses once the directory sees its connection go. On a real redis-server liveness is a TTL
 * (no connection to lose): within ttl_ms + poll_ms of the kill; until then they may still be hits
 * (its pool's bytes are still mapped and still validate).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { checkPattern, keySeed as seed } from '../../src/bench/engine/pattern.js';
import { spawnFixture, type Child } from '../helpers/child.js';
import { freePort } from '../helpers/ports.js';
import { startRedis } from '../helpers/redis.js';
import { HostKVPool } from '../../src/store/host-pool.js';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';

const nodeFixture = new URL('../fixtures/store-node.ts', import.meta.url);
const PAGE = 64 * 1024;
const TTL_MS = 800;
const POLL_MS = 100;

/** Where the nodes meet (the fixture's first argument), and how the reader's store finds it. */
interface Meeting {
  where: string;
  store: { discoveryAddr: string } | { directoryUrl: string };
  stop(): Promise<void>;
}

interface Kind {
  title: (protocol: string) => string;
  meet(protocol: string): Promise<Meeting>;
  /** The first node serves the embedded directory: it must be up before the second starts. */
  firstServes: boolean;
  /** After this long from the kill, the dead node's keys must be misses. */
  goneAfterMs: number;
  gone: string;
  /** How the dead node's keys go, for the log line. */
  liveness: string;
}

const kinds: Kind[] = [
  {
    title: (protocol) => `${protocol}: three nodes in three processes; one SIGKILLed mid-read: misses or clear errors, no hang, the survivor keeps serving`,
    async meet() {
      const addr = `127.0.0.1:${await freePort()}`;
      return { where: addr, store: { discoveryAddr: addr }, stop: async () => {} };
    },
    firstServes: true,
    goneAfterMs: 1000,
    gone: "a dead node's keys are misses once the directory saw it go",
    liveness: 'the directory saw its connection go',
  },
  {
    title: (protocol) => `redis directory, ${protocol}: three nodes in three processes; one SIGKILLed mid-read: misses within the TTL, no hang, the survivor keeps serving`,
    async meet(protocol) {
      const redis = await startRedis();
      const url = redis.urlWith({ prefix: `mn-${protocol}:`, ttl_ms: TTL_MS, poll_ms: POLL_MS });
      return { where: url, store: { directoryUrl: url }, stop: () => redis.stop() };
    },
    firstServes: false,
    goneAfterMs: TTL_MS + POLL_MS + 300,
    gone: "a dead node's keys are misses once its TTL ran out and the poll saw it go",
    liveness: `ttl ${TTL_MS} ms, poll ${POLL_MS} ms`,
  },
];

for (const kind of kinds) {
  for (const protocol of ['shm', 'tcp'] as const) {
    test(kind.title(protocol), async () => {
      const meeting = await kind.meet(protocol);
      const children: Child[] = [];
      let reader: PeerCacheStore | undefined;
      try {
        const start = (id: string, prefix: string) => {
          const child = spawnFixture(nodeFixture, [meeting.where, protocol, id, prefix, '32', String(PAGE)]);
          children.push(child);
          return child;
        };
        const a = start('node-a', 'a');
        // On the embedded directory node-a serves it.
        if (kind.firstServes) assert.is(((await a.ready) as { published: number }).published, 32);
        const b = start('node-b', 'b');
        if (!kind.firstServes) assert.is(((await a.ready) as { published: number }).published, 32);
        assert.is(((await b.ready) as { published: number }).published, 32);
        const host = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 16, tokensPerPage: 16 });
        reader = await PeerCacheStore.open({ ...meeting.store, protocol, hostPool: host, nodeId: 'reader', timeoutMs: 2000 });
        assert.equal((await reader.members()).map((m) => m.nodeId).sort(), ['node-a', 'node-b', 'reader']);
        const keys = [...Array.from({ length: 8 }, (_, i) => `a/${i}`), ...Array.from({ length: 8 }, (_, i) => `b/${i}`)];
        const indices = host.tokenIndices(keys.map((_, i) => i));
        const check = (ok: boolean[]) =>
          ok.forEach((hit, i) => {
            if (hit) assert.is(checkPattern(host.pageView(i), seed(keys[i]), 0), -1, `${keys[i]} bytes`);
          });
        const first = await reader.batchGetV1(keys, indices);
        assert.equal(first, keys.map(() => true));
        check(first);
        let killedAt = 0;
        let afterGone = 0;
        let bHitsAfterGone = 0;
        let lastBHit = 0;
        const started = Date.now();
        while (Date.now() - started < 4000) {
          if (!killedAt && Date.now() - started > 300) {
            b.proc.kill('SIGKILL');
            killedAt = Date.now();
          }
          const t0 = Date.now();
          const ok = await reader.batchGetV1(keys, indices);
          assert.ok(Date.now() - t0 < 5000, 'a call returned within its deadline');
          check(ok);
          assert.ok(ok.slice(0, 8).every(Boolean), 'node-a keys stay hits');
          const bHits = ok.slice(8).filter(Boolean).length;
          if (killedAt && bHits) lastBHit = Date.now() - killedAt;
          if (killedAt && Date.now() - killedAt > kind.goneAfterMs) {
            afterGone++;
            bHitsAfterGone += bHits;
          }
        }
        console.log(`    ${protocol}: last hit on the dead node's keys ${lastBHit} ms after SIGKILL (${kind.liveness})`);
        assert.ok(afterGone > 0);
        assert.is(bHitsAfterGone, 0, kind.gone);
        assert.is(await reader.batchExists(['a/0', 'a/1', 'b/0']), 2);
        assert.equal((await reader.members()).map((m) => m.nodeId).sort(), ['node-a', 'reader']);
      } finally {
        await reader?.close();
        await Promise.all(children.map((c) => c.kill()));
        await meeting.stop();
      }
    });
  }
}

test.run();
