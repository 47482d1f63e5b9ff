/**
 * Tenants bound to credentials in the embedded directory (issue 24, item 4). Before, one directory
 * was one trust domain: model B's rank could publish under model A's key first, A's own set then
 * answered success ("already present") and A's gets returned B's bytes. Now a directory serving
 * `tenants` gives each tenant's token its own directory: members, keys, events and region access
 * tokens are that tenant's alone. Stores (tcp data plane) and raw directory clients, on loopback.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectoryServer } from '../../src/store/directory/server.js';
import { DirectoryClient } from '../../src/store/directory/client.js';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import type { DirectoryEvent } from '../../src/store/types.js';
import { loc, nodeInfo, rejection, sleep } from '../helpers/directory.js';

const tenants = { 'model-a': 'token-of-a-7c1e', 'model-b': 'token-of-b-90d2' };

test("model B's rank publishing A's key first neither answers A's set nor feeds A's gets", async () => {
  const server = await DirectoryServer.listen({ tenants });
  const discoveryAddr = `127.0.0.1:${server.address.port}`;
  const open = (nodeId: string, authToken: string) =>
    PeerCacheStore.open({ discoveryAddr, authToken, protocol: 'tcp', globalSegmentBytes: 1 << 20, slotBytes: 4096, nodeId, timeoutMs: 2000 });
  const b = await open('b-rank', tenants['model-b']);
  const a = await open('a-rank', tenants['model-a']);
  try {
    const key = 'Qwen-Qwen3-8B/page-0001';
    assert.ok(await b.set(key, Buffer.alloc(4096, 0x62)), "B's set");
    assert.ok(await a.set(key, Buffer.alloc(4096, 0x61)), "A's set");
    const got = await a.get(key, Buffer.alloc(4096));
    assert.ok(got !== null, "A's get hits");
    assert.is(got[0], 0x61, "A's get returns A's bytes, not B's");
    assert.is(got[4095], 0x61);
    const gotB = await b.get(key, Buffer.alloc(4096));
    assert.is(gotB?.[0], 0x62, "B's get returns B's bytes");
    // Neither learns the other's node (nor its region access token).
    assert.equal((await a.members()).map((m) => m.nodeId), ['a-rank']);
    assert.equal((await b.members()).map((m) => m.nodeId), ['b-rank']);
  } finally {
    await a.close();
    await b.close();
    await server.close();
  }
});

test('a tenant sees only its own members, keys and events; unknown or missing tokens are refused', async () => {
  const server = await DirectoryServer.listen({ tenants });
  const port = server.address.port;
  const a = await DirectoryClient.connect({ port, authToken: tenants['model-a'] });
  const b = await DirectoryClient.connect({ port, authToken: tenants['model-b'] });
  const seenByB: DirectoryEvent[] = [];
  b.subscribe((e) => seenByB.push(e));
  try {
    await b.join(nodeInfo('b1'));
    await a.join(nodeInfo('a1'));
    assert.equal(await a.publish([{ key: 'k', location: loc('a1', 0, 1) }]), [true]);
    assert.equal(await b.lookup(['k']), [null]);
    assert.is(await b.node('a1'), null);
    assert.equal((await b.members()).map((m) => m.nodeId), ['b1']);
    // Publishing another tenant's node's location is refused as for any foreign node.
    assert.equal(await b.publish([{ key: 'k', location: loc('a1', 0, 2) }]), [false]);
    assert.equal(await b.publish([{ key: 'k', location: loc('b1', 8192, 1) }]), [true]);
    assert.equal((await a.lookup(['k']))[0]?.nodeId, 'a1');
    // The same node id in two tenants is two nodes.
    const b2 = await DirectoryClient.connect({ port, authToken: tenants['model-b'] });
    await b2.join(nodeInfo('a1'));
    await b2.close();
    await sleep(100);
    assert.ok(seenByB.every((e) => (e.type === 'node-joined' ? e.node.nodeId : e.nodeId) === 'a1' && e !== undefined), JSON.stringify(seenByB));
    assert.is(seenByB.length, 2, "B saw its own a1 join and leave, nothing of tenant A's");
    assert.is(server.tenant('model-a')?.stats().members, 1);
    assert.is(server.tenant('model-b')?.stats().members, 1);
    const wrong = await rejection(DirectoryClient.connect({ port, authToken: 'guessed' }));
    assert.is(wrong.code, 'ERR_AUTH');
    const none = await rejection(DirectoryClient.connect({ port }));
    assert.is(none.code, 'ERR_AUTH');
  } finally {
    await a.close();
    await b.close();
    await server.close();
  }
});

test("a tenant's key replica holds its own keys only, from the snapshot and from later changes", async () => {
  const server = await DirectoryServer.listen({ tenants });
  const port = server.address.port;
  const a = await DirectoryClient.connect({ port, authToken: tenants['model-a'] });
  try {
    await a.join(nodeInfo('a1'));
    await a.publish([{ key: 'before', location: loc('a1', 0, 1) }]);
    const b = await DirectoryClient.connect({ port, authToken: tenants['model-b'], replica: {} });
    try {
      await b.join(nodeInfo('b1'));
      await b.publish([{ key: 'mine', location: loc('b1', 0, 1) }]);
      await a.publish([{ key: 'after', location: loc('a1', 4096, 1) }]);
      await b.ping(); // every change before the answer is in the replica
      await a.ping();
      await b.ping();
      assert.equal(b.lookupLocal(['before', 'after']), [null, null]);
      assert.is(b.lookupLocal(['mine'])?.[0]?.nodeId, 'b1');
      assert.is(server.tenant('model-b')?.stats().replicas, 1);
      assert.is(server.tenant('model-a')?.stats().replicas, 0);
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
    await server.close();
  }
});

test('tenants: duplicate or empty tokens are refused before binding', async () => {
  for (const bad of [{ x: 'same', y: 'same' }, { x: '' }] as Record<string, string>[]) {
    const err = await rejection(DirectoryServer.listen({ tenants: bad }));
    assert.match(err.message, /tenant 'x'|tenant 'y'/);
  }
  const clash = await rejection(DirectoryServer.listen({ authToken: 't', tenants: { x: 't' } }));
  assert.match(clash.message, /tokens must differ/);
});

test.run();
