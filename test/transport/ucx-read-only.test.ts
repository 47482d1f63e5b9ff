/**
 * Published regions are mapped for remote READ only (UCP_MEM_MAP_PROT_REMOTE_READ). What UCX 1.13
 * enforces on shm is measured here and stated: RDMA NICs refuse a remote WRITE into such a region
 * (no remote-write access on the memory region); the shared-memory transports map the peer's
 * segment read-write and do not. The store never writes remotely, and readers validate every page
 * (key tag, generation, length), so on shm a peer that writes is caught only as far as it forges
 * those headers badly: shm is a one-host, one-trust-domain protocol (docs/security.md).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnFixture } from '../helpers/child.js';
import { UcxTransport } from '../../src/transport/ucx.js';

const publisherFixture = new URL('../fixtures/ucx-publisher.ts', import.meta.url);

test('shm: a remote WRITE into a read-only published region — what UCX 1.13 does', async () => {
  const publisher = spawnFixture(publisherFixture, [String(1 << 20), 'shm', '7']);
  const node = UcxTransport.open({ protocol: 'shm', timeoutMs: 3000 });
  try {
    const ready = (await publisher.ready) as { address: string; descriptor: string };
    const ep = await node.connect(Buffer.from(ready.address, 'base64'));
    const remote = ep.attach(Buffer.from(ready.descriptor, 'base64'));
    const src = new Uint8Array(4096).fill(0xab);
    const local = node.register(src);
    let refused: string | null = null;
    try {
      await ep.write(remote, [local], new Float64Array([0, 0, 0, 4096]), 1);
    } catch (err) {
      refused = (err as Error).message;
    }
    const back = new Uint8Array(4096);
    const dst = node.register(back);
    await ep.read(remote, [dst], new Float64Array([0, 0, 0, 4096]), 1);
    const changed = back.every((b) => b === 0xab);
    console.log(`    shm WRITE into a read-only region: ${refused ? `refused (${refused})` : 'accepted'}; bytes ${changed ? 'changed' : 'unchanged'}`);
    // The measured behaviour of UCX 1.13 on shm: not enforced. If a UCX upgrade starts refusing,
    // this fails and docs/security.md must say so.
    assert.is(refused, null);
    assert.ok(changed);
  } finally {
    await node.close();
    await publisher.kill();
  }
});

test.run();
