/**
 * Link flaps: the publisher's link goes down and up every few seconds while 8 workers on the
 * reader get, exists and set. What must hold: 0 wrong bytes, no crash, memory bounded, every call
 * within its deadline, every failure counted (a call either answers — hits or misses — or is
 * counted as an error), and hits again once the link stays up.
 *
 * In npm test it flaps for 8 s. The recorded run (bench-results/) flaps for a minute:
 *   PEERCACHE_FLAP_S=60 PEERCACHE_FLAP_OUT=bench-results/net-flap-60s.json node --import tsx test/net/link-flap.test.ts
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { writeFileSync } from 'node:fs';
import { netnsUnavailable } from '../helpers/netns.js';
import { startCluster, within, type DirectoryKind } from '../helpers/net-cluster.js';
import { PEER_RETRY_MAX_MS } from '../../src/store/peers.js';

const skip = netnsUnavailable();
const DEADLINE = 2000;
const PAGES = 64;
const SLACK = 800;
const FLAP_S = Number(process.env.PEERCACHE_FLAP_S ?? 8);
/** Down this long, then up this long. */
const DOWN_MS = 3000;
const UP_MS = 2000;
/** The reader's RSS may grow by at most this over the run (no unbounded queue). */
const RSS_GROWTH_BYTES = 96 << 20;
const kinds: DirectoryKind[] = process.env.PEERCACHE_FLAP_DIRECTORY ? [process.env.PEERCACHE_FLAP_DIRECTORY as DirectoryKind] : ['embedded'];

for (const kind of kinds) {
  test(`${kind}: the publisher's link flaps (${DOWN_MS} ms down, ${UP_MS} ms up) for ${FLAP_S} s under 8 workers get/exists/set: 0 wrong bytes, bounded calls and memory, every failure counted`, async () => {
    if (skip) return console.log(`    skipped: ${skip}`);
    const c = await startCluster({ directory: kind, timeoutMs: DEADLINE, pages: PAGES, pageBytes: 32 << 10, livenessMs: 3000, readerPages: 8 * 8 });
    try {
      const r = c.readerNode;
      assert.is((await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES })).hits, PAGES);
      const rss0 = (await r.request({ op: 'stats' })).rss as number;
      let flaps = 0;
      let stop = false;
      const flapping = (async () => {
        while (!stop) {
          c.pub.link(false);
          await new Promise((res) => setTimeout(res, DOWN_MS));
          c.pub.link(true);
          flaps++;
          await new Promise((res) => setTimeout(res, UP_MS));
        }
      })();
      const s = await r.request({ op: 'stream', kind: 'mix', prefix: 'p', count: PAGES, batch: 8, workers: 8, ms: FLAP_S * 1000 }, FLAP_S * 1000 + 60_000);
      stop = true;
      await flapping;
      c.pub.link(true);
      const total = s.totalCalls as number;
      const byOp = s.byOp as Record<string, Record<string, number>>;
      const worst = Math.max(...Object.values(byOp).map((o) => o.maxMs));
      const rssGrowth = (s.maxRss as number) - rss0;
      const summary = {
        directory: kind, flap_s: FLAP_S, down_ms: DOWN_MS, up_ms: UP_MS, flaps, workers: 8, deadline_ms: DEADLINE,
        calls: total, errors: s.errors, wrong_pages: s.wrong, slowest_call_ms: worst, by_op: byOp,
        rss_start_bytes: rss0, rss_max_bytes: s.maxRss, store_stats: s.stats,
      };
      console.log(`    ${flaps} flaps, ${total} calls, slowest ${Math.round(worst)} ms, ${String(s.errors)} errors, ${String(s.wrong)} wrong pages, RSS +${Math.round(rssGrowth / 2 ** 20)} MiB; ${JSON.stringify(byOp)}`);
      assert.is(s.wrong, 0, 'no wrong byte');
      assert.is(s.errors, 0, `calls threw: ${JSON.stringify(s.firstError)}`);
      assert.ok(worst <= DEADLINE + SLACK, `a call took ${worst} ms (deadline ${DEADLINE})`);
      assert.ok(rssGrowth < RSS_GROWTH_BYTES, `the reader grew by ${rssGrowth} bytes`);
      assert.ok(flaps >= 2);
      assert.ok(c.readerNode.proc.exitCode === null && c.publisher.proc.exitCode === null, 'nothing crashed');
      const t0 = Date.now();
      const back = await within(PEER_RETRY_MAX_MS + DEADLINE + 6000, async () => (await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES })).hits === PAGES, 200);
      console.log(`    hits again ${Date.now() - t0} ms after the link stayed up`);
      assert.ok(back >= 0, 'hits again once the link stays up');
      if (process.env.PEERCACHE_FLAP_OUT) writeFileSync(process.env.PEERCACHE_FLAP_OUT, `${JSON.stringify({ ...summary, recovered_ms: Date.now() - t0 }, null, 1)}\n`);
    } finally {
      c.pub.link(true);
      await c.close();
    }
  });
}

test.run();
