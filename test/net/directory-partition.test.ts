/**
 * A silent partition between a member and the directory (embedded host or Redis), members on
 * separate hosts (network namespaces, nft drops, no RST). What must hold:
 * - the cut-off member's directory calls fail within their deadline, then fail fast while the
 *   directory is known unreachable (exists/get are misses, sets false); reads through cached
 *   locations keep working; after heal it finds the directory again;
 * - a publisher cut off is seen gone by the others within the liveness bound, none of its entries
 *   is served after that, and after heal it rejoins and republishes what it still holds; a key
 *   another node published meanwhile keeps one owner (no split brain), and no byte is wrong.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { netnsUnavailable } from '../helpers/netns.js';
import { inEveryCase, within } from '../helpers/net-cluster.js';

const skip = netnsUnavailable();
const DEADLINE = 2000;
const LIVENESS = 3000;
const PAGES = 32;
const SLACK = 600;
/** "Fails fast": far below the deadline (a round trip to the fixture, no network wait). */
const FAST_MS = DEADLINE / 4;
/** Seen gone: the liveness bound, one sweep/poll, slack. */
const GONE_BOUND_MS = LIVENESS + 1000 + SLACK;
/**
 * Back after heal: the old connection is dropped by the liveness bound, the reconnect back-off
 * (at most 2 s), one connect deadline, one heartbeat, slack.
 */
const HEAL_BOUND_MS = LIVENESS + 2000 + DEADLINE + 1000 + 2000;

const num = (v: unknown): number => v as number;

test(`reader ↔ directory cut: fails within the deadline, then fast; cached reads keep working; sets false; back after heal (embedded/tcp, redis/tcp, embedded/ucx-tcp at once)`, async () => {
  if (skip) return console.log(`    skipped: ${skip}`);
  await inEveryCase({ timeoutMs: DEADLINE, pages: PAGES, pageBytes: 16 << 10, livenessMs: LIVENESS }, async (c, kind, log) => {
    const r = c.readerNode;
    c.reader.cut([c.dir]);
    const first = await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES });
    assert.is(first.hits, 0);
    assert.ok(num(first.ms) <= DEADLINE + SLACK, `the first exists took ${Math.round(num(first.ms))} ms (deadline ${DEADLINE})`);
    const later: number[] = [];
    for (let i = 0; i < 5; i++) {
      const e = await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES });
      assert.is(e.hits, 0);
      later.push(Math.round(num(e.ms)));
    }
    log(`exists while cut: first ${Math.round(num(first.ms))} ms, then ${later.join(', ')} ms`);
    assert.ok(Math.max(...later) <= FAST_MS, `exists must fail fast once the directory is known unreachable: ${later.join(', ')} ms`);
    const cached = await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES });
    assert.is(cached.hits, PAGES, 'reads through cached locations keep working');
    assert.is(cached.wrong, 0);
    const set = await r.request({ op: 'publish', prefix: 'r', from: 0, count: 4 });
    assert.is(set.hits, 0, 'sets report false while the directory is unreachable');
    assert.ok(num(set.ms) <= FAST_MS, `a set took ${Math.round(num(set.ms))} ms while the directory is known unreachable`);
    const uncached = await r.request({ op: 'get', prefix: 'r', from: 0, count: 4 });
    assert.ok(num(uncached.ms) <= DEADLINE + SLACK);

    c.reader.heal();
    const back = await within(HEAL_BOUND_MS, async () => (await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES })).hits === PAGES, 200);
    log(`the reader finds the directory again ${back} ms after heal (bound ${HEAL_BOUND_MS} ms)`);
    assert.ok(back >= 0, `no directory ${HEAL_BOUND_MS} ms after heal\n${r.stderr().slice(-2000)}`);
    assert.is((await r.request({ op: 'publish', prefix: 'r', from: 0, count: 4 })).hits, 4, 'sets work again');
  });
});

test(`publisher ↔ directory cut: seen gone within the liveness bound, none of its entries served after, rejoins and republishes after heal, one owner per key (embedded/tcp, redis/tcp, embedded/ucx-tcp at once)`, async () => {
  if (skip) return console.log(`    skipped: ${skip}`);
  await inEveryCase({ timeoutMs: DEADLINE, pages: PAGES, pageBytes: 16 << 10, livenessMs: LIVENESS }, async (c, kind, log) => {
    const r = c.readerNode;
    assert.ok(((await r.request({ op: 'members' })).ids as string[]).includes('pub'));
    c.pub.cut([c.dir]);
    const t0 = Date.now();
    const gone = await within(GONE_BOUND_MS, async () => !((await r.request({ op: 'members' })).ids as string[]).includes('pub'));
    log(`the publisher is seen gone ${Date.now() - t0} ms after the cut (liveness ${LIVENESS} ms, bound ${GONE_BOUND_MS} ms)`);
    assert.ok(gone >= 0, `the publisher was still a member ${GONE_BOUND_MS} ms after it was cut off`);
    // The reader can still reach the publisher's data plane: nothing of a dead node may be served.
    // (Redis: the reader learns it at its next membership poll, a quarter of the liveness bound.)
    const learnt = await within(LIVENESS / 4 + SLACK, async () => (await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES })).hits === 0);
    assert.ok(learnt >= 0, 'entries of a node declared dead must not be served');
    const dead = await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES });
    assert.is(dead.hits, 0, 'entries of a node declared dead must not be served');
    assert.is((await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES })).hits, 0);
    // The cut-off publisher: its sets fail fast as false.
    const pubSet = await c.publisher.request({ op: 'publish', prefix: 'q', from: 0, count: 2 });
    assert.is(pubSet.hits, 0);
    assert.ok(num(pubSet.ms) <= DEADLINE + SLACK, `a set on the cut-off publisher took ${Math.round(num(pubSet.ms))} ms`);
    // Another node takes four of its keys meanwhile.
    assert.is((await r.request({ op: 'publish', prefix: 'p', from: 0, count: 4 })).hits, 4);

    c.pub.heal();
    const t1 = Date.now();
    const back = await within(HEAL_BOUND_MS, async () => (await r.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES })).hits === PAGES, 200);
    log(`the publisher rejoined and republished ${Date.now() - t1} ms after heal (bound ${HEAL_BOUND_MS} ms)`);
    assert.ok(back >= 0, `the publisher's pages were not found again ${HEAL_BOUND_MS} ms after heal\n${c.publisher.stderr().slice(-2000)}`);
    const all = await r.request({ op: 'get', prefix: 'p', from: 0, count: PAGES });
    assert.is(all.hits, PAGES);
    assert.is(all.wrong, 0);
    // One owner per key: the publisher's republish of the four keys the reader took was refused,
    // so the publisher reads them as anyone else does (from the reader), and exists agrees everywhere.
    assert.is((await c.publisher.request({ op: 'exists', prefix: 'p', from: 0, count: PAGES })).hits, PAGES);
    const members = ((await r.request({ op: 'members' })).ids as string[]).filter((id) => id === 'pub');
    assert.equal(members, ['pub'], 'one member named pub');
  });
});

test.run();
