/** The published pool's layout and slot protocol, on a real UCX-allocated region. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UcxTransport } from '../../src/transport/ucx.js';
import { headerMatches, headerOffsetFor, keyTag, poolGeometry, publishedPoolBytes, PublishedPool, SLOT_CHECK_BYTES } from '../../src/store/published-pool.js';

test('geometry: publishedPoolBytes(n) holds exactly n slots; page-sized slots start on 4 KiB boundaries', () => {
  for (const [slots, bytes] of [[1, 131072], [64, 16384], [100, 4096], [7, 1000], [4096, 131072]] as const) {
    const g = poolGeometry(publishedPoolBytes(slots, bytes), bytes);
    assert.is(g.slots, slots, `${slots} x ${bytes}`);
    assert.is(poolGeometry(publishedPoolBytes(slots, bytes) - 1, bytes).slots, slots - 1);
    if (bytes >= 4096) {
      assert.is(g.dataBase % 4096, 0);
      assert.is(g.stride % 4096, 0);
    }
    for (const s of [0, slots - 1]) assert.is(headerOffsetFor(g, g.dataBase + s * g.stride), s * 64);
    assert.is(headerOffsetFor(g, g.dataBase + 64), -1, 'not a slot start');
    assert.is(headerOffsetFor(g, g.dataBase - g.stride), -1, 'before the data');
  }
});

test('slot protocol: publish stamps generation, tag and length; eviction is LRU and invalidates the slot', async () => {
  const node = UcxTransport.open({ protocol: 'shm' });
  try {
    const region = node.allocate(publishedPoolBytes(4, 8192));
    const pool = new PublishedPool(region, 8192);
    assert.is(pool.slots, 4);
    const page = new Uint8Array(8192).fill(7);
    const entries = ['a', 'b', 'c', 'd'].map((k) => pool.publish(k, page).entry);
    assert.equal(new Set(entries.map((e) => e.generation)).size, 4, 'generations never repeat');
    const head = (slot: number) => region.bytes.subarray(pool.headerOffset(slot), pool.headerOffset(slot) + SLOT_CHECK_BYTES);
    const a = entries[0];
    assert.ok(headerMatches(head(a.slot), 0, a.generation, keyTag('a'), 8192));
    assert.not.ok(headerMatches(head(a.slot), 0, a.generation, keyTag('b'), 8192), 'the key tag is checked');
    assert.not.ok(headerMatches(head(a.slot), 0, a.generation, keyTag('a'), 8191), 'the length is checked');
    pool.touch(pool.get('a')!); // a becomes most recently used: b is the oldest
    const { entry: e, evicted } = pool.publish('e', page);
    assert.equal(evicted.map((x) => x.key), ['b']);
    assert.is(e.slot, entries[1].slot, 'b\'s slot was reused');
    assert.not.ok(headerMatches(head(e.slot), 0, entries[1].generation, keyTag('b'), 8192), 'b\'s old location now fails validation');
    assert.ok(headerMatches(head(e.slot), 0, e.generation, keyTag('e'), 8192));
    const removed = pool.remove('c')!;
    assert.not.ok(headerMatches(head(removed.slot), 0, removed.generation, keyTag('c'), 8192), 'a removed slot is invalid at once');
    assert.equal(pool.clear().map((x) => x.key).sort(), ['a', 'd', 'e']);
    for (let s = 0; s < 4; s++) assert.is(new DataView(region.bytes.buffer, region.bytes.byteOffset + pool.headerOffset(s)).getBigUint64(0, true), 0n);
    assert.throws(() => pool.publish('big', new Uint8Array(8193)), /slots hold at most 8192/);
    region.free();
  } finally {
    await node.close();
  }
});

test.run();
