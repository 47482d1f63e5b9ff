/**
 * The key replica (src/store/directory/replica.ts): a node that keeps one answers lookups and
 * exists without a round trip. Its snapshot and the changes pushed during it end equal to the
 * directory; a node's own publish is in its replica when the publish resolves; another node's
 * changes and departures arrive as events; it answers only within its staleness bound (a link
 * that stops delivering makes it step aside after maxStalenessMs); a directory or replica over
 * maxEntries falls back to round trips; and in a store, a stale "present" costs a miss, never
 * another key's bytes. (Stale frames are made by pausing the reader's directory socket: the
 * kernel holds the events, as a slow link would.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type net from 'node:net';
import { DirectoryServer } from '../../src/store/directory/server.js';
import { DirectoryClient } from '../../src/store/directory/client.js';
import type { ReplicaOptions } from '../../src/store/directory/replica.js';
import { HostKVPool } from '../../src/store/host-pool.js';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import { publishedPoolBytes } from '../../src/store/published-pool.js';
import { checkPattern, fillPattern } from '../../src/bench/engine/pattern.js';
import type { Directory, Location } from '../../src/store/types.js';
import { loc, nodeInfo, sleep, waitFor } from '../helpers/directory.js';
import { freePort } from '../helpers/ports.js';

async function client(server: DirectoryServer, replica?: ReplicaOptions): Promise<DirectoryClient> {
  return DirectoryClient.connect({ host: server.address.host, port: server.address.port, replica });
}

/** The directory connection under a client (to pause it: a link that stops delivering). */
function socketOf(d: unknown): net.Socket {
  let cur = d as Record<string, unknown>;
  // store → RejoiningDirectory → DirectoryClient
  for (const field of ['directory', 'inner']) if (cur[field] !== undefined && !(cur instanceof DirectoryClient)) cur = cur[field] as Record<string, unknown>;
  const s = cur.socket as net.Socket | undefined;
  if (!(cur instanceof DirectoryClient) || s === undefined) throw new Error('no directory client socket found');
  return s;
}

const same = (a: (Location | null)[] | null, b: (Location | null)[]): boolean => JSON.stringify(a) === JSON.stringify(b);

test('snapshot, own publishes at once, others\' changes and departures as events, equal to the directory', async () => {
  const server = await DirectoryServer.listen();
  const a = await client(server);
  const b = await client(server, {});
  try {
    await a.join(nodeInfo('a'));
    await b.join(nodeInfo('b'));
    assert.equal(await a.publish([{ key: 'k1', location: loc('a', 0, 1) }]), [true]);
    // b started before k1: it arrives as an event.
    await waitFor('k1 in b', () => b.lookupLocal(['k1'])?.[0] !== null);
    assert.equal(b.lookupLocal(['k1', 'nope']), [loc('a', 0, 1), null]);
    // A node's own publish is in its replica as soon as the publish resolves (the event precedes the answer).
    assert.equal(await b.publish([{ key: 'mine', location: loc('b', 4096, 2) }]), [true]);
    assert.equal(b.lookupLocal(['mine']), [loc('b', 4096, 2)]);
    await b.remove([{ key: 'mine', nodeId: 'b', generation: 2 }]);
    assert.equal(b.lookupLocal(['mine']), [null]);
    // A late starter gets the snapshot.
    const c = await client(server, {});
    assert.equal(c.lookupLocal(['k1', 'mine']), [loc('a', 0, 1), null]);
    assert.equal(server.stats().replicas, 2);
    // A moves k1 forward, then leaves: its entries go from every replica.
    await a.publish([{ key: 'k1', location: loc('a', 8192, 5) }]);
    await waitFor('k1 moved', () => same(c.lookupLocal(['k1']), [loc('a', 8192, 5)]));
    await a.close();
    await waitFor('a gone from b', () => same(b.lookupLocal(['k1']), [null]));
    await waitFor('a gone from c', () => same(c.lookupLocal(['k1']), [null]));
    await c.close();
    await waitFor('c unwatched', () => server.stats().replicas === 1);
    // A lost connection: the replica is gone at once (calls fail fast, the store turns them into misses).
    await server.close();
    await waitFor('b lost', () => !b.isOpen);
    assert.is(b.lookupLocal(['k1']), null);
  } finally {
    await Promise.all([a.close(), b.close(), server.close()]);
  }
});

test('a snapshot of 40,000 long keys streamed while another node publishes and removes: the replica ends equal to the directory', async () => {
  const server = await DirectoryServer.listen();
  const a = await client(server);
  try {
    await a.join(nodeInfo('a'));
    // 300-character keys: ~13 MB of snapshot, so it waits for drains (and changes land between its chunks).
    const key = (i: number) => `${'x'.repeat(290)}/${String(i).padStart(8, '0')}`;
    const all = Array.from({ length: 60_000 }, (_, i) => key(i));
    await a.publish(all.slice(0, 40_000).map((k, i) => ({ key: k, location: loc('a', i * 4096, 1) })));
    const churn = (async () => {
      for (let r = 0; r < 20; r++) {
        const base = 40_000 + r * 1000;
        await a.publish(all.slice(base, base + 1000).map((k, i) => ({ key: k, location: loc('a', (base + i) * 4096, 1) })));
        await a.remove(Array.from({ length: 500 }, (_, i) => ({ key: all[r * 2000 + i], nodeId: 'a', generation: 1 })));
        await a.publish(all.slice(r * 2000 + 500, r * 2000 + 600).map((k, i) => ({ key: k, location: loc('a', (r * 2000 + 500 + i) * 4096, 2) })));
      }
    })();
    const b = await client(server, {});
    try {
      await churn;
      await b.ping(); // an answer: every change before it is in the replica
      const truth = (await Promise.all([0, 1, 2, 3, 4, 5].map((s) => a.lookup(all.slice(s * 10_000, (s + 1) * 10_000))))).flat();
      assert.ok(same(b.lookupLocal(all), truth), 'replica differs from the directory');
      assert.is(b.replicaStatus?.entries, truth.filter((l) => l !== null).length);
    } finally {
      await b.close();
    }
  } finally {
    await Promise.all([a.close(), server.close()]);
  }
});

test('staleness bound: a link that stops delivering leaves the replica answering at most maxStalenessMs, then lookups go back to round trips', async () => {
  const server = await DirectoryServer.listen();
  const a = await client(server);
  const b = await client(server, { maxStalenessMs: 300 });
  try {
    await a.join(nodeInfo('a'));
    await a.publish([{ key: 'k', location: loc('a', 0, 1) }]);
    await waitFor('k in b', () => b.lookupLocal(['k'])?.[0] !== null);
    socketOf(b).pause();
    await a.remove([{ key: 'k', nodeId: 'a', generation: 1 }]);
    // Within the bound the replica may still say present (the removal is held in the kernel)...
    assert.equal(b.lookupLocal(['k']), [loc('a', 0, 1)]);
    await sleep(450);
    // ...past it, it steps aside: the caller does a round trip.
    assert.is(b.lookupLocal(['k']), null);
    assert.is(b.replicaStatus?.state, 'live');
    socketOf(b).resume();
    await waitFor('fresh again, without k', () => same(b.lookupLocal(['k']), [null]));
  } finally {
    await Promise.all([a.close(), b.close(), server.close()]);
  }
});

test('maxEntries: a directory over it is refused (round trips, the connection stays); a replica that outgrows it is dropped and unwatched', async () => {
  const server = await DirectoryServer.listen();
  const a = await client(server);
  try {
    await a.join(nodeInfo('a'));
    await a.publish(Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, location: loc('a', i * 4096, 1) })));
    const small = await client(server, { maxEntries: 5 });
    assert.is(small.replicaStatus?.state, 'dropped');
    assert.match(small.replicaStatus?.dropReason ?? '', 'holds 10 entries, more than this replica\'s limit of 5');
    assert.is(small.lookupLocal(['k0']), null);
    assert.equal(await small.lookup(['k0']), [loc('a', 0, 1)]);
    const fits = await client(server, { maxEntries: 12 });
    assert.is(fits.replicaStatus?.state, 'live');
    assert.is(server.stats().replicas, 1);
    await a.publish(Array.from({ length: 5 }, (_, i) => ({ key: `more${i}`, location: loc('a', (10 + i) * 4096, 1) })));
    await waitFor('dropped', () => fits.replicaStatus?.state === 'dropped');
    assert.is(fits.lookupLocal(['k0']), null);
    await waitFor('unwatched', () => server.stats().replicas === 0);
    assert.ok(fits.isOpen);
    await Promise.all([small.close(), fits.close()]);
  } finally {
    await Promise.all([a.close(), server.close()]);
  }
});

test('store: exists answered from the replica; a stale "present" costs a miss on get, never another key\'s bytes', async () => {
  const PAGE = 16 * 1024;
  const server = await DirectoryServer.listen({ port: await freePort() });
  const discoveryAddr = `127.0.0.1:${server.address.port}`;
  const apool = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 4, tokensPerPage: 16 });
  const bpool = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 4, tokensPerPage: 16 });
  // Two slots: the second pair of keys evicts the first and reuses its slots.
  const prefill = await PeerCacheStore.open({ discoveryAddr, protocol: 'shm', hostPool: apool, globalSegmentBytes: publishedPoolBytes(2, PAGE), slotBytes: PAGE, nodeId: 'prefill' });
  const decode = await PeerCacheStore.open({ discoveryAddr, protocol: 'shm', hostPool: bpool, nodeId: 'decode', directoryReplica: { maxStalenessMs: 10_000 } });
  const idx = (pages: number[]) => apool.tokenIndices(pages);
  try {
    for (let p = 0; p < 4; p++) fillPattern(apool.pageView(p), 0x100 + p, 0);
    assert.equal(await prefill.batchSetV1(['old0', 'old1'], idx([0, 1])), [true, true]);
    await waitFor('old keys in the replica', async () => (await decode.batchExists(['old0', 'old1'])) === 2);
    const trips = decode.stats.directoryLookups;
    assert.is(await decode.batchExists(['old0', 'old1', 'never']), 2);
    assert.is(decode.stats.directoryLookups, trips, 'exists made a round trip');
    assert.ok(decode.stats.replicaLookups > 0);

    // Connect to the peer first (its node info is a round trip); old1's location stays uncached.
    assert.equal(await decode.batchGetV1(['old0'], bpool.tokenIndices([0])), [true]);

    // The link stalls; the old keys are evicted and their slots reused by new keys.
    socketOf(decode).pause();
    assert.equal(await prefill.batchSetV1(['new0', 'new1'], idx([2, 3])), [true, true]);
    assert.is(await prefill.batchExists(['old0', 'old1']), 0);
    // Stale (within the bound): present for the old, absent for the new.
    assert.is(await decode.batchExists(['old0', 'old1']), 2);
    assert.is(await decode.batchExists(['new0']), 0);
    for (let p = 0; p < 2; p++) bpool.pageView(p).fill(0xee);
    const staleBefore = decode.stats.staleReads;
    // old1 from the replica alone, old0 from the location cache then the replica: both stale, both misses.
    assert.equal(await decode.batchGetV1(['old1'], bpool.tokenIndices([0])), [false], 'a stale location must be a miss');
    assert.equal(await decode.batchGetV1(['old0', 'old1'], bpool.tokenIndices([0, 1])), [false, false], 'a stale location must be a miss');
    assert.ok(decode.stats.staleReads > staleBefore, 'the slot header check caught the reuse');

    socketOf(decode).resume();
    await waitFor('replica caught up', async () => (await decode.batchExists(['new0', 'new1'])) === 2 && (await decode.batchExists(['old0'])) === 0);
    assert.equal(await decode.batchGetV1(['new0', 'new1'], bpool.tokenIndices([0, 1])), [true, true]);
    for (let p = 0; p < 2; p++) assert.is(checkPattern(bpool.pageView(p), 0x102 + p, 0), -1, `page ${p} bytes`);
  } finally {
    await decode.close();
    await prefill.close();
    await server.close();
  }
});

test('no replica for the node hosting the directory or on request: lookups stay exact', async () => {
  const server = await DirectoryServer.listen();
  const local: Directory = server.localDirectory();
  try {
    await local.join(nodeInfo('host'));
    await local.publish([{ key: 'k', location: loc('host', 0, 1) }]);
    // The in-process directory reads the entries themselves: always current.
    assert.equal(local.lookupLocal?.(['k', 'x']), [loc('host', 0, 1), null]);
    const plain = await client(server);
    assert.is(plain.lookupLocal(['k']), null);
    assert.is(plain.replicaStatus, null);
    await plain.close();
  } finally {
    await local.close();
    await server.close();
  }
});

test.run();
