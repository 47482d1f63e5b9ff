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

// Whoever holds the region's descriptor can READ any byte of it, valid header or not: an object
// that is no longer published must not stay there to be read.
test('unpublished bytes do not stay readable: remove() and clear() zero the slot; a shorter object zeroes the rest', async () => {
  const node = UcxTransport.open({ protocol: 'shm' });
  try {
    const region = node.allocate(publishedPoolBytes(2, 8192));
    const pool = new PublishedPool(region, 8192);
    const slotBytes = (slot: number) => region.bytes.subarray(pool.dataOffset(slot), pool.dataOffset(slot) + 8192);
    const secret = new Uint8Array(8192).fill(0x5a);
    const a = pool.publish('a', secret).entry;
    pool.remove('a');
    assert.ok(slotBytes(a.slot).every((b) => b === 0), 'remove() left the old bytes in the slot');
    const b = pool.publish('b', secret).entry;
    pool.clear();
    assert.ok(slotBytes(b.slot).every((x) => x === 0), 'clear() left the old bytes in the slot');
    // Replaced and evicted slots are overwritten at once; a shorter object zeroes what it does not cover.
    const c = pool.publish('c', secret).entry;
    const shorter = pool.publish('c', new Uint8Array(100).fill(1)).entry;
    assert.is(shorter.slot, c.slot);
    assert.ok(slotBytes(c.slot).subarray(100).every((x) => x === 0), 'the replaced object\'s tail is still there');
    pool.publish('d', secret);
    const e = pool.publish('e', new Uint8Array(10).fill(2)); // evicts c (the oldest)
    assert.equal(e.evicted.map((x) => x.key), ['c']);
    assert.ok(slotBytes(e.entry.slot).subarray(10).every((x) => x === 0), 'the evicted object\'s tail is still there');
  } finally {
    await node.close();
  }
});

test.run();
