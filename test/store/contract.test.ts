/** The HiCacheStorage v1 contract, on shm and tcp: two nodes (prefill publishes, decode reads). */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { checkPattern, fillPattern } from '../../src/bench/engine/pattern.js';
import { freePort } from '../helpers/ports.js';
import { HostKVPool, type Layout } from '../../src/store/host-pool.js';
import { PeerCacheStore, StoreConfigError } from '../../src/store/peer-cache-store.js';
import type { Protocol } from '../../src/transport/types.js';

const PAGE = 8192;

interface Ctx {
  prefill: PeerCacheStore;
  decode: PeerCacheStore;
  ppool: HostKVPool;
  dpool: HostKVPool;
  addr: string;
}

// redis-contract.test.ts runs this whole file again with a Redis directory URL here.
const directoryUrl = process.env.PEERCACHE_TEST_DIRECTORY_URL;

async function cluster(protocol: Protocol, layout: Layout, options: { locationCache?: boolean } = {}): Promise<Ctx> {
  const addr = `127.0.0.1:${await freePort()}`;
  const where = directoryUrl ? { directoryUrl } : { discoveryAddr: addr };
  const ppool = new HostKVPool({ layout, pageBytes: PAGE, pages: 64, tokensPerPage: 16 });
  const dpool = new HostKVPool({ layout, pageBytes: PAGE, pages: 64, tokensPerPage: 16 });
  const prefill = await PeerCacheStore.open({ ...where, protocol, hostPool: ppool, globalSegmentBytes: 4 << 20, nodeId: 'prefill' });
  const decode = await PeerCacheStore.open({ ...where, protocol, hostPool: dpool, nodeId: 'decode', locationCache: options.locationCache });
  return { prefill, decode, ppool, dpool, addr };
}

const seedOf = (key: string, component: number) => {
  let h = 7 + component;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h >>> 0;
};

function fill(pool: HostKVPool, pages: number[], keys: string[]): void {
  pages.forEach((p, i) => {
    for (let c = 0; c < pool.components; c++) fillPattern(pool.pageView(p, c), seedOf(keys[i], c), 0);
  });
}

function verify(pool: HostKVPool, page: number, key: string): boolean {
  for (let c = 0; c < pool.components; c++) if (checkPattern(pool.pageView(page, c), seedOf(key, c), 0) !== -1) return false;
  return true;
}

async function rejects(fn: () => Promise<unknown>, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected an error matching ${pattern}`);
}

for (const protocol of ['shm', 'tcp'] as const) {
  for (const layout of ['mla', 'mha'] as const) {
    const s = suite<Ctx>(`${protocol}/${layout}`);
    s.before(async (ctx) => {
      Object.assign(ctx, await cluster(protocol, layout));
    });
    s.after(async (ctx) => {
      await ctx.decode.close();
      await ctx.prefill.close();
    });

    s('set -> exists -> get round trip, every byte verified', async (ctx) => {
      const keys = Array.from({ length: 8 }, (_, i) => `${layout}/rt/${i}`);
      const src = [0, 1, 2, 3, 4, 5, 6, 7];
      fill(ctx.ppool, src, keys);
      assert.equal(await ctx.prefill.batchSetV1(keys, ctx.ppool.tokenIndices(src)), keys.map(() => true));
      assert.is(await ctx.decode.batchExists(keys), 8);
      const dst = [20, 21, 22, 23, 24, 25, 26, 27];
      assert.equal(await ctx.decode.batchGetV1(keys, ctx.dpool.tokenIndices(dst)), keys.map(() => true));
      dst.forEach((p, i) => assert.ok(verify(ctx.dpool, p, keys[i]), `page ${keys[i]}`));
      // Again, from the location cache.
      for (const p of dst) ctx.dpool.pageView(p).fill(0);
      assert.equal(await ctx.decode.batchGetV1(keys, ctx.dpool.tokenIndices(dst)), keys.map(() => true));
      dst.forEach((p, i) => assert.ok(verify(ctx.dpool, p, keys[i]), `cached page ${keys[i]}`));
      assert.ok(ctx.decode.stats.cacheHits > 0);
    });

    s('batchExists counts the leading present pages only (prefix semantics)', async (ctx) => {
      const keys = [`${layout}/px/0`, `${layout}/px/1`, `${layout}/px/2`];
      fill(ctx.ppool, [0, 1, 2], keys);
      await ctx.prefill.batchSetV1(keys, ctx.ppool.tokenIndices([0, 1, 2]));
      assert.is(await ctx.decode.batchExists([keys[0], keys[1], 'missing', keys[2]]), 2);
      assert.is(await ctx.decode.batchExists(['missing', ...keys]), 0);
      assert.is(await ctx.decode.batchExists([]), 0);
    });

    s('partial hits, keys not found, duplicates in one batch, empty batches', async (ctx) => {
      const keys = [`${layout}/pt/0`, `${layout}/pt/1`];
      fill(ctx.ppool, [3, 4], keys);
      await ctx.prefill.batchSetV1(keys, ctx.ppool.tokenIndices([3, 4]));
      const got = await ctx.decode.batchGetV1([keys[0], 'nope', keys[1], keys[0]], ctx.dpool.tokenIndices([30, 31, 32, 33]));
      assert.equal(got, [true, false, true, true]);
      assert.ok(verify(ctx.dpool, 30, keys[0]) && verify(ctx.dpool, 32, keys[1]) && verify(ctx.dpool, 33, keys[0]));
      const dupKey = `${layout}/dup`;
      fill(ctx.ppool, [5, 6], [dupKey, dupKey]);
      assert.equal(await ctx.prefill.batchSetV1([dupKey, dupKey], ctx.ppool.tokenIndices([5, 6])), [true, true]);
      assert.equal(await ctx.decode.batchGetV1([dupKey], ctx.dpool.tokenIndices([34])), [true]);
      assert.ok(verify(ctx.dpool, 34, dupKey));
      assert.equal(await ctx.prefill.batchSetV1([], []), []);
      assert.equal(await ctx.decode.batchGetV1([], new Int32Array(0)), []);
      // A set of a key that exists is a success (write-once, as SGLang's backends).
      assert.equal(await ctx.prefill.batchSetV1([keys[0]], ctx.ppool.tokenIndices([9])), [true]);
    });

    s('the publishing node reads its own keys (local path)', async (ctx) => {
      const keys = [`${layout}/local/0`];
      fill(ctx.ppool, [7], keys);
      await ctx.prefill.batchSetV1(keys, ctx.ppool.tokenIndices([7]));
      assert.equal(await ctx.prefill.batchGetV1(keys, ctx.ppool.tokenIndices([40])), [true]);
      assert.ok(verify(ctx.ppool, 40, keys[0]));
    });

    s('bad input: clear errors', async (ctx) => {
      await rejects(() => ctx.decode.batchGetV1(['a', 'b'], ctx.dpool.tokenIndices([1])), /hostIndices has 16 token slots for 2 keys; expected 32/);
      await rejects(() => ctx.decode.batchGetV1(['a'], ctx.dpool.tokenIndices([64])), /page 64, outside the host pool of 64 pages/);
      await rejects(() => ctx.decode.batchGetV1(['a'], Int32Array.from({ length: 16 }, (_, i) => 3 + i)), /not the first token slot of a page/);
      await rejects(() => ctx.prefill.batchSetV1(['a', 'b'], ctx.ppool.tokenIndices([1, 2, 3])), /expected 32/);
      await rejects(() => ctx.decode.batchExists(['ok', ''] as string[]), /keys\[1\] must be a non-empty string/);
      await rejects(() => ctx.decode.batchSetV1(['x'], ctx.dpool.tokenIndices([0])), /no published pool/);
    });

    s('clear() unpublishes: the keys become misses, also through cached locations', async (ctx) => {
      const keys = [`${layout}/clr/0`, `${layout}/clr/1`];
      fill(ctx.ppool, [10, 11], keys);
      await ctx.prefill.batchSetV1(keys, ctx.ppool.tokenIndices([10, 11]));
      assert.equal(await ctx.decode.batchGetV1(keys, ctx.dpool.tokenIndices([41, 42])), [true, true]);
      await ctx.prefill.clear();
      assert.is(await ctx.decode.batchExists(keys), 0);
      assert.equal(await ctx.decode.batchGetV1(keys, ctx.dpool.tokenIndices([41, 42])), [false, false]);
    });

    s.run();
  }
}

const legacy = suite('legacy get/set/exists/batchGet/batchSet (raw keys)');
legacy('round trip over shm with values of any size up to a slot', async () => {
  const ctx = await cluster('shm', 'mla');
  try {
    const v1 = Uint8Array.from({ length: 100 }, (_, i) => i);
    const v2 = new Uint8Array(PAGE).fill(9);
    assert.ok(await ctx.prefill.set('raw/1', v1));
    assert.ok(await ctx.prefill.batchSet(['raw/2', 'raw/3'], [v2, v1]));
    assert.ok(await ctx.decode.exists('raw/1'));
    assert.not.ok(await ctx.decode.exists('raw/none'));
    const t1 = new Uint8Array(100);
    assert.is(await ctx.decode.get('raw/1', t1), t1);
    assert.equal([...t1], [...v1]);
    const got = await ctx.decode.batchGet(['raw/2', 'raw/none', 'raw/3'], [new Uint8Array(PAGE), new Uint8Array(8), new Uint8Array(100)]);
    assert.ok(got[0]!.every((x) => x === 9));
    assert.is(got[1], null);
    assert.equal([...got[2]!], [...v1]);
    // Raw keys and page keys are separate keyspaces; using one never changes the other.
    assert.is(await ctx.decode.batchExists(['raw/1']), 0);
    await rejects(() => ctx.prefill.set('big', new Uint8Array(PAGE + 1)), /slots hold at most 8192/);
  } finally {
    await ctx.decode.close();
    await ctx.prefill.close();
  }
});
legacy.run();

const config = suite('configuration and the location cache');
config('unknown config keys, bad values and the memory guard are clear errors', async () => {
  const addr = `127.0.0.1:${await freePort()}`;
  await rejects(() => PeerCacheStore.open({ discoveryAddr: addr, protocol: 'shm', globalSegmentSize: 1 } as never), /unknown config key\(s\): globalSegmentSize/);
  await rejects(() => PeerCacheStore.open({ discoveryAddr: addr, protocol: 'ib' as never }), /protocol must be rdma, shm or tcp/);
  const pool = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 128, tokensPerPage: 16 });
  await rejects(() => PeerCacheStore.open({ discoveryAddr: addr, protocol: 'shm', hostPool: pool, globalSegmentBytes: 1 << 20, maxBytes: 1 << 20 }), /exceed maxBytes/);
  await rejects(() => PeerCacheStore.open({ discoveryAddr: 'nohost', protocol: 'shm' }), /invalid discoveryAddr 'nohost'/);
  try {
    await PeerCacheStore.open({ discoveryAddr: addr, protocol: 'shm', globalSegmentBytes: -1 });
    assert.unreachable();
  } catch (err) {
    assert.instance(err, StoreConfigError);
  }
});

config('a stale cached location costs a retry, never wrong bytes; the cache can be switched off', async () => {
  for (const locationCache of [true, false]) {
    const ctx = await cluster('shm', 'mla', { locationCache });
    try {
      const key = 'stale/0';
      fill(ctx.ppool, [0], [key]);
      await ctx.prefill.batchSetV1([key], ctx.ppool.tokenIndices([0]));
      assert.equal(await ctx.decode.batchGetV1([key], ctx.dpool.tokenIndices([1])), [true]);
      // Republish the key with new bytes in another slot; the old slot is reused by other keys.
      await ctx.prefill.clear();
      const others = Array.from({ length: 8 }, (_, i) => `stale/other/${i}`);
      fill(ctx.ppool, others.map((_, i) => 10 + i), others);
      await ctx.prefill.batchSetV1(others, ctx.ppool.tokenIndices(others.map((_, i) => 10 + i)));
      fill(ctx.ppool, [2], [key]);
      await ctx.prefill.batchSetV1([key], ctx.ppool.tokenIndices([2]));
      ctx.dpool.pageView(1).fill(0);
      assert.equal(await ctx.decode.batchGetV1([key], ctx.dpool.tokenIndices([1])), [true]);
      assert.ok(verify(ctx.dpool, 1, key));
      if (locationCache) assert.ok(ctx.decode.stats.staleReads >= 1, 'the stale cached slot was caught');
      else assert.is(ctx.decode.stats.cacheHits, 0);
    } finally {
      await ctx.decode.close();
      await ctx.prefill.close();
    }
  }
});
config.run();
