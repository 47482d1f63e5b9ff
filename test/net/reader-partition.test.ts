/**
 * A silent partition between a publisher and a reader on separate hosts (network namespaces; nft
 * drops every packet between them, no RST), the directory reachable by both, for the embedded and
 * the Redis directory. What must hold: one deadline bounds every get however many paths it tries;
 * the unreachable pages are misses; exists stops reporting them once the reader found the peer
 * unreachable; no byte is wrong; after heal, hits come back within the stated bound.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { netnsUnavailable } from '../helpers/netns.js';
import { inEveryCase, within } from '../helpers/net-cluster.js';
import { PEER_RETRY_MAX_MS } from '../../src/store/peers.js';

const skip = netnsUnavailable();
const DEADLINE = 2000;
const PAGES = 32;
/** Slack on a deadline: timers, a busy 2-core machine, the JSON round trip to the fixture. */
const SLACK = 600;
/** Recovery after heal: the longest back-off before the next attempt, one attempt's deadline, and slack. */
const HEAL_BOUND_MS = PEER_RETRY_MAX_MS + DEADLINE + 2000;

test(`publisher ↔ reader cut: each get ends within its one deadline as misses, exists stops reporting the pages, no wrong byte, hits again after heal (embedded/tcp, redis/tcp, embedded/ucx-tcp at once)`, async () => {
  if (skip) return console.log(`    skipped: ${skip}`);
  await inEveryCase({ timeoutMs: DEADLINE, pages: PAGES, pageBytes: 64 << 10, livenessMs: 3000 }, async (c, kind, log) => {
    const r = c.readerNode;
    assert.is((await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES })).hits, PAGES);

    c.reader.cut([c.pub]);
    // The cached fast path meets the silent peer first: the call must still end within its deadline.
    const first = await r.request({ op: 'get', prefix: 'p', from: 0, count: 8 });
    log(`first get after the cut: ${Math.round(first.ms as number)} ms (deadline ${DEADLINE}), ${String(first.hits)} hits`);
    assert.is(first.hits, 0);
    assert.ok((first.ms as number) <= DEADLINE + SLACK, `a get took ${Math.round(first.ms as number)} ms: one deadline (${DEADLINE} ms) must bound the whole call`);

    const ex = await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES });
    assert.is(ex.hits, 0, 'exists must not report pages on a peer this reader found unreachable');

    // A stream of gets and exists while cut: every call within its deadline, misses, nothing wrong.
    const s = await r.request({ op: 'stream', kind: 'mix', prefix: 'p', count: PAGES, batch: 8, workers: 3, ms: 2000 }, 20_000);
    const calls = s.calls as [number, number, number, number, string][];
    const worst = Math.max(...calls.map((x) => x[1]));
    log(`${calls.length} calls while cut, slowest ${Math.round(worst)} ms, ${String(s.errors)} errors`);
    assert.ok(worst <= DEADLINE + SLACK, `a call took ${worst} ms while cut`);
    assert.is(s.wrong, 0);
    assert.is(s.errors, 0, `calls threw: ${JSON.stringify(s.firstError)}`);

    c.reader.heal();
    const t0 = Date.now();
    const back = await within(HEAL_BOUND_MS, async () => {
      const g = await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES });
      assert.is(g.wrong, 0);
      return g.hits === PAGES;
    }, 200);
    log(`hits again ${Date.now() - t0} ms after heal (bound ${HEAL_BOUND_MS} ms)`);
    assert.ok(back >= 0, `no hits within ${HEAL_BOUND_MS} ms of heal\n${r.stderr().slice(-2000)}`);
    const exBack = await within(HEAL_BOUND_MS, async () => (await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES })).hits === PAGES);
    assert.ok(exBack >= 0, 'exists reports the pages again after heal');
  });
});

test.run();
