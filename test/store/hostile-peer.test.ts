/**
 * A member that publishes keys with forged blobs — a garbage or foreign worker address, a region
 * descriptor whose base is moved by 2^40 or whose rkey is cut to 4 bytes (checksums recomputed), a
 * real node's blobs with locations into someone else's slot or past the region — costs a reader
 * misses for those keys and one log line per back-off period, never a crash, another key's bytes,
 * or the honest node's hits.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { memoryLogger } from '../helpers/log.js';
import { checkPattern, keySeed as seed } from '../../src/bench/engine/pattern.js';
import { spawnFixture, type Child } from '../helpers/child.js';
import { freePort } from '../helpers/ports.js';
import { forgeAddress, forgeDescriptor, type ForgedAddressKind, type ForgedDescriptorKind } from '../helpers/forge.js';
import { HostKVPool } from '../../src/store/host-pool.js';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import { DirectoryClient } from '../../src/store/directory/client.js';
import type { Location, NodeInfo } from '../../src/store/types.js';

const nodeFixture = new URL('../fixtures/store-node.ts', import.meta.url);
const PAGE = 16 * 1024;

type Forgery =
  | { kind: ForgedAddressKind | ForgedDescriptorKind }
  | { kind: 'other-slot' }
  | { kind: 'past-region' };

const forgeries: Forgery[] = [
  { kind: 'garbage-address' },
  { kind: 'address-version' },
  { kind: 'ucx-version' },
  { kind: 'base-moved' },
  { kind: 'short-rkey' },
  { kind: 'other-slot' },
  { kind: 'past-region' },
];

/** The forged member's node info and the location it publishes its key at. */
function forge(f: Forgery, honest: NodeInfo, honestLoc: Location): { info: NodeInfo; location: Location } {
  const nodeId = `evil-${f.kind}`;
  const address = Buffer.from(honest.transportAddress, 'base64');
  const descriptor = Buffer.from(honest.regionDescriptor!, 'base64');
  let transportAddress = honest.transportAddress;
  let regionDescriptor = honest.regionDescriptor;
  let offset = honestLoc.offset;
  if (f.kind === 'garbage-address' || f.kind === 'address-version' || f.kind === 'ucx-version') {
    transportAddress = forgeAddress(address, f.kind).toString('base64');
  } else if (f.kind === 'base-moved' || f.kind === 'short-rkey') {
    regionDescriptor = forgeDescriptor(descriptor, f.kind).toString('base64');
  } else if (f.kind === 'past-region') {
    offset = 2 ** 40;
  }
  return {
    info: { ...honest, nodeId, transportAddress, regionDescriptor },
    location: { ...honestLoc, nodeId, offset },
  };
}

test('forged members: their keys are misses with a reason logged once per back-off, the honest node still hits, the reader lives', async () => {
  const port = await freePort();
  const discoveryAddr = `127.0.0.1:${port}`;
  const { lines: warnings, logger } = memoryLogger();
  const host = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 16, tokensPerPage: 16 });
  const reader = await PeerCacheStore.open({ discoveryAddr, protocol: 'shm', hostPool: host, globalSegmentBytes: 1 << 20, nodeId: 'reader', logger });
  const children: Child[] = [];
  const evil: DirectoryClient[] = [];
  try {
    const honest = spawnFixture(nodeFixture, [discoveryAddr, 'shm', 'honest', 'good', '4', String(PAGE)]);
    children.push(honest);
    await honest.ready;

    const spy = await DirectoryClient.connect({ port });
    evil.push(spy);
    const honestInfo = (await spy.node('honest'))!;
    // MLA pages are one object each, `<page key>__k` (keys.ts).
    const [honestLoc] = await spy.lookup(['good/0__k']);
    assert.ok(honestInfo?.regionDescriptor && honestLoc, 'the honest node published');

    for (const f of forgeries) {
      const { info, location } = forge(f, honestInfo, honestLoc!);
      const member = await DirectoryClient.connect({ port });
      evil.push(member);
      await member.join(info);
      const [published] = await member.publish([{ key: `evil/${f.kind}__k`, location }]);
      assert.ok(published, `${f.kind}: the directory took the forged entry (it is a member's own)`);
    }

    const keys = ['good/0', ...forgeries.map((f) => `evil/${f.kind}`), 'good/1'];
    const rounds = 20;
    for (let round = 0; round < rounds; round++) {
      host.pageView(0).fill(0);
      host.pageView(keys.length - 1).fill(0);
      const ok = await reader.batchGetV1(keys, host.tokenIndices(keys.map((_, i) => i)));
      assert.equal(ok, [true, ...forgeries.map(() => false), true], `round ${round}`);
      assert.is(checkPattern(host.pageView(0), seed('good/0'), 0), -1, 'good/0 bytes');
      assert.is(checkPattern(host.pageView(keys.length - 1), seed('good/1'), 0), -1, 'good/1 bytes');
    }
    const exists = await reader.batchExists(keys);
    assert.ok(exists >= 1, 'exists still answers');

    // Nodes whose blobs are refused are logged once (back-off 1 s), not once per round.
    for (const f of forgeries.filter((x) => x.kind !== 'other-slot' && x.kind !== 'past-region')) {
      const lines = warnings.filter((w) => w.includes(`evil-${f.kind}`));
      assert.ok(lines.length >= 1, `${f.kind}: a reason is logged`);
      assert.ok(lines.length <= 2, `${f.kind}: logged ${lines.length} times in ${rounds} rounds:\n${lines.join('\n')}`);
    }
    const reasons = warnings.join('\n');
    assert.match(reasons, /evil-garbage-address: cannot reach it .*bad magic/);
    assert.match(reasons, /evil-ucx-version: cannot reach it .*UCX 9\.99\.0/);
    assert.match(reasons, /evil-base-moved: cannot reach it .*not inside the memory/);
    assert.match(reasons, /evil-short-rkey: cannot reach it .*9-byte header/);
  } finally {
    for (const e of evil) await e.close().catch(() => {});
    await reader.close();
    for (const c of children) await c.kill();
  }
});

test.run();
