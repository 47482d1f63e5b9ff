/**
 * A slow link between publisher and reader (tbf on the publisher's interface: 100 Mbit/s, then
 * 10 Mbit/s). What must hold: calls meet their deadline or fail cleanly as misses; the rate the
 * reader gets is the link's (the tcp data plane neither hides nor amplifies the slowness); memory
 * stays bounded when more is asked than the link can carry within a deadline (no unbounded queue).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { netnsUnavailable } from '../helpers/netns.js';
import { startCluster } from '../helpers/net-cluster.js';

const skip = netnsUnavailable();
const DEADLINE = 2000;
const PAGE = 64 << 10;
const PAGES = 64;
const SLACK = 800;

type Call = [number, number, number, number, string];

test('tbf 100 Mbit/s then 10 Mbit/s: the reader gets about the link rate, every call within its deadline or a clean miss, memory bounded', async () => {
  if (skip) return console.log(`    skipped: ${skip}`);
  const c = await startCluster({ directory: 'embedded', timeoutMs: DEADLINE, pages: PAGES, pageBytes: PAGE, livenessMs: 3000, readerPages: 8 * 8 });
  try {
    const r = c.readerNode;
    assert.is((await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES })).hits, PAGES);
    const rss0 = (await r.request({ op: 'stats' })).rss as number;
    for (const [mbit, workers] of [[100, 2], [10, 1], [10, 8]] as const) {
      c.pub.shape(mbit);
      const ms = 2000;
      const s = await r.request({ op: 'stream', kind: 'get', prefix: 'p', count: PAGES, batch: 8, workers, ms }, 60_000);
      const calls = s.calls as Call[];
      const hitPages = calls.reduce((n, x) => n + Math.max(0, x[3]), 0);
      const end = Math.max(...calls.map((x) => x[0] + x[1]));
      const mbitGot = (hitPages * PAGE * 8) / (end / 1000) / 1e6;
      const worst = Math.max(...calls.map((x) => x[1]));
      const missed = calls.filter((x) => x[3] >= 0 && x[3] < x[2]).length;
      console.log(`    tbf ${mbit} Mbit/s, ${workers} workers: ${calls.length} calls, ${mbitGot.toFixed(1)} Mbit/s of pages, slowest ${Math.round(worst)} ms, ${missed} calls with misses, RSS max ${Math.round((s.maxRss as number) / 2 ** 20)} MiB`);
      assert.is(s.wrong, 0);
      assert.is(s.errors, 0, `calls threw: ${JSON.stringify(s.firstError)}`);
      assert.ok(worst <= DEADLINE + SLACK, `a call took ${worst} ms (deadline ${DEADLINE})`);
      assert.ok((s.maxRss as number) - rss0 < 96 << 20, 'memory bounded');
      if (workers <= 2) {
        // What fits the link within the deadline arrives at the link's rate (payload: a few % under the wire rate).
        assert.ok(mbitGot <= mbit * 1.05, `${mbitGot} Mbit/s through a ${mbit} Mbit/s link`);
        assert.ok(mbitGot >= mbit * 0.5, `${mbitGot} Mbit/s through a ${mbit} Mbit/s link: the data plane amplifies the slowness`);
        assert.is(missed, 0, 'what fits the link within the deadline is read');
      }
    }
  } finally {
    await c.close();
  }
});

test.run();
