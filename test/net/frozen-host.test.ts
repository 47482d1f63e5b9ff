/**
 * A frozen host: the publisher is SIGSTOPped (its sockets stay open, nothing answers), then
 * SIGCONTed after the directory declared it dead. Readers behave as for a partition (gets bounded
 * by their deadline, misses, exists stops reporting its pages); the frozen node, when it resumes,
 * learns it was declared dead and rejoins (republishing what it holds) instead of serving stale
 * state. Embedded and Redis directory; hosts in network namespaces.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { netnsUnavailable } from '../helpers/netns.js';
import { inEveryCase, within } from '../helpers/net-cluster.js';

const skip = netnsUnavailable();
const DEADLINE = 2000;
const LIVENESS = 3000;
const PAGES = 16;
const SLACK = 600;
const GONE_BOUND_MS = LIVENESS + 1000 + SLACK;
/** After SIGCONT: it notices (a closed connection, or its next heartbeat), reconnects, rejoins, republishes. */
const BACK_BOUND_MS = 2000 + DEADLINE + 2000;

const num = (v: unknown): number => v as number;

test(`publisher SIGSTOPped: gets bounded and missing, exists stops reporting; after SIGCONT it learns it was declared dead and rejoins (embedded/tcp, redis/tcp, embedded/ucx-tcp at once)`, async () => {
  if (skip) return console.log(`    skipped: ${skip}`);
  await inEveryCase({ timeoutMs: DEADLINE, pages: PAGES, pageBytes: 16 << 10, livenessMs: LIVENESS }, async (c, kind, log) => {
    try {
      const r = c.readerNode;
      c.publisher.signal('SIGSTOP');
      const t0 = Date.now();
      const g = await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES });
      assert.is(g.hits, 0);
      assert.ok(num(g.ms) <= DEADLINE + SLACK, `a get took ${Math.round(num(g.ms))} ms with the publisher frozen`);
      assert.is((await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES })).hits, 0, 'exists stops reporting pages of a peer found unreachable');
      const gone = await within(GONE_BOUND_MS, async () => !((await r.request({ op: 'members' })).ids as string[]).includes('pub'));
      log(`frozen publisher: get ${Math.round(num(g.ms))} ms, seen gone ${Date.now() - t0} ms after SIGSTOP (liveness ${LIVENESS} ms)`);
      assert.ok(gone >= 0, 'the frozen publisher was declared dead within the liveness bound');

      c.publisher.signal('SIGCONT');
      const t1 = Date.now();
      const back = await within(BACK_BOUND_MS, async () => {
        const e = await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES });
        assert.is(e.wrong, 0);
        return e.hits === PAGES;
      }, 200);
      log(`after SIGCONT: rejoined and read again in ${Date.now() - t1} ms (bound ${BACK_BOUND_MS} ms)`);
      assert.ok(back >= 0, `no hits ${BACK_BOUND_MS} ms after SIGCONT\n${c.publisher.stderr().slice(-2000)}`);
      assert.match(c.publisher.stderr(), kind === 'redis' ? /lost its membership|joined again/ : /connection lost|rejoin/, 'the publisher says it rejoined');
      assert.ok(((await r.request({ op: 'members' })).ids as string[]).includes('pub'));
    } finally {
      c.publisher.signal('SIGCONT');
    }
  });
});

test.run();
