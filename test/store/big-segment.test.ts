/**
 * A published pool over 4 GiB (`--global-segment 64g` is what a serving host runs). Node 20 cannot
 * make one JS buffer that long: allocating one used to abort the process (a double free in the
 * addon). Now it reaches JavaScript as overlapping windows; this publishes into slots past the 4 GiB
 * line and reads every byte back, from a peer (a one-sided READ) and on the node itself (its own
 * copy). UCX memory is only touched where written.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import { StoreConfigError } from '../../src/store/config.js';
import { freePort } from '../helpers/ports.js';

const GiB = 2 ** 30;
const SLOT = 64 * 2 ** 20;
const OBJECT = 8192;

function value(i: number): Uint8Array {
  const v = new Uint8Array(OBJECT);
  for (let j = 0; j < OBJECT; j++) v[j] = (i * 31 + j * 7) & 0xff;
  return v;
}

test('a 4.3 GiB published pool over shm: objects past the 4 GiB line, read by a peer and by the node itself', async () => {
  const discoveryAddr = `127.0.0.1:${await freePort()}`;
  const big = await PeerCacheStore.open({ protocol: 'shm', discoveryAddr, globalSegmentBytes: 4 * GiB + 320 * 2 ** 20, slotBytes: SLOT });
  const peer = await PeerCacheStore.open({ protocol: 'shm', discoveryAddr, globalSegmentBytes: SLOT * 2, slotBytes: SLOT });
  try {
    // Every slot but the last: slots are taken in order, so the last ones lie past 4 GiB.
    const COUNT = big.publishedSlots - 1;
    assert.ok((COUNT - 1) * SLOT > 4 * GiB, `${COUNT} slots do not reach past 4 GiB`);
    const keys = Array.from({ length: COUNT }, (_, i) => `big-${i}`);
    assert.ok(await big.batchSet(keys, keys.map((_, i) => value(i))));
    for (const [who, store] of [['peer', peer], ['node itself', big]] as const) {
      const targets = keys.map(() => new Uint8Array(OBJECT));
      const got = await store.batchGet(keys, targets);
      for (let i = 0; i < COUNT; i++) {
        assert.ok(got[i] !== null, `${who}: object ${i} missing`);
        assert.equal(targets[i], value(i), `${who}: object ${i} differs`);
      }
    }
    await big.clear(); // zeroes every slot it used, past the line too
    assert.is((await peer.batchGet(keys.slice(-2), [new Uint8Array(OBJECT), new Uint8Array(OBJECT)])).filter(Boolean).length, 0);
  } finally {
    await peer.close();
    await big.close();
  }
});

test('over tcp a published pool is one JS buffer: over 4 GiB is a clear configuration error', async () => {
  const discoveryAddr = `127.0.0.1:${await freePort()}`;
  try {
    await PeerCacheStore.open({ protocol: 'tcp', discoveryAddr, globalSegmentBytes: 5 * GiB, slotBytes: SLOT });
    assert.unreachable('opened');
  } catch (err) {
    assert.instance(err, StoreConfigError);
    assert.match((err as Error).message, /over --protocol tcp must be at most 4 GiB/);
  }
});

test.run();
