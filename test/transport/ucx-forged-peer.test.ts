/**
 * What a hostile peer can hand a reader — a descriptor whose base is moved by 2^40, a 4-byte rkey
 * with a valid checksum, a garbage or foreign-version worker address — gives a clear TransportError,
 * never a SIGSEGV or SIGABRT (each case runs in its own reader process).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { spawnFixture } from '../helpers/child.js';

const publisherFixture = new URL('../fixtures/ucx-publisher.ts', import.meta.url);
const forgedPeer = new URL('../fixtures/ucx-forged-peer.ts', import.meta.url);

const cases: { kind: string; code: string; message: RegExp }[] = [
  { kind: 'base-moved', code: 'ERR_BAD_RKEY', message: /not inside the memory the peer's key maps/ },
  { kind: 'short-rkey', code: 'ERR_BAD_RKEY', message: /shorter than its 9-byte header/ },
  { kind: 'segment-id', code: 'ERR_BAD_RKEY', message: /region cannot be mapped: .*cannot be (attached|opened)/ },
  { kind: 'garbage-address', code: 'ERR_BAD_ADDRESS', message: /invalid peer worker address: bad magic/ },
  { kind: 'address-version', code: 'ERR_BAD_ADDRESS', message: /UCX address format \d+ differs/ },
  { kind: 'ucx-version', code: 'ERR_BAD_ADDRESS', message: /the peer runs UCX 9\.99\.0 and this process UCX \d/ },
];

test('forged blobs from a peer: a clean error in the reader, never a crash', async () => {
  const publisher = spawnFixture(publisherFixture, [String(4 << 20), 'shm', '7']);
  try {
    const ready = (await publisher.ready) as { address: string; descriptor: string };
    for (const c of cases) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', forgedPeer.pathname, c.kind, ready.address, ready.descriptor], { encoding: 'utf8', timeout: 60_000 });
      assert.is(r.signal, null, `${c.kind}: the reader died of ${r.signal}\n${r.stderr.slice(-2000)}`);
      assert.is(r.status, 0, `${c.kind}: exit ${r.status}\n${r.stderr.slice(-2000)}`);
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { ok: boolean; code?: string; message?: string };
      assert.is(out.ok, false, `${c.kind}: the forged blob was accepted`);
      assert.is(out.code, c.code, `${c.kind}: ${out.message}`);
      assert.match(out.message ?? '', c.message, `${c.kind}: ${out.message}`);
    }
  } finally {
    await publisher.kill();
  }
});

// A live peer's descriptor of a region it has freed: UCX's rkey unpack fails to attach the segment
// and its error path (UCX 1.13 to 1.16) released keys it never unpacked: SIGSEGV in the reader. The
// same crash as \`micro --pattern hot\` showed now and then.
test('a stale descriptor (the region was freed, the peer lives): a clean error, never a crash', async () => {
  const publisher = spawnFixture(publisherFixture, [String(1 << 20), 'shm', '7', 'freed']);
  try {
    const ready = (await publisher.ready) as { address: string; descriptor: string };
    for (let i = 0; i < 3; i++) {
      const r = spawnSync(process.execPath, ['--import', 'tsx', forgedPeer.pathname, 'none', ready.address, ready.descriptor], { encoding: 'utf8', timeout: 60_000 });
      assert.is(r.signal, null, `the reader died of ${r.signal}\n${r.stderr.slice(-2000)}`);
      const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { ok: boolean; code?: string; message?: string };
      assert.is(out.ok, false, 'a freed region was read');
      assert.is(out.code, 'ERR_BAD_RKEY', out.message);
      assert.match(out.message ?? '', /the region was freed, the peer restarted, or the key is forged/);
    }
  } finally {
    await publisher.kill();
  }
});

// The region's JS object dropped and collected: the node keeps it until free() or close(). Before,
// the collector unmapped it under its readers (micro's producer kept no reference to its raw region).
test('a published region whose object was dropped and collected stays readable', async () => {
  const publisher = spawnFixture(publisherFixture, [String(1 << 20), 'shm', '7', 'dropped']);
  try {
    const ready = (await publisher.ready) as { address: string; descriptor: string };
    await new Promise((r) => setTimeout(r, 300)); // a dozen collections in the publisher
    const r = spawnSync(process.execPath, ['--import', 'tsx', forgedPeer.pathname, 'none', ready.address, ready.descriptor, '7'], { encoding: 'utf8', timeout: 60_000 });
    assert.is(r.signal, null, `the reader died of ${r.signal}\n${r.stderr.slice(-2000)}`);
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { ok: boolean; code?: string; message?: string; pattern?: boolean };
    assert.ok(out.ok, `the region is gone: ${out.code} ${out.message}`);
    assert.ok(out.pattern, 'the READ returned the published bytes');
  } finally {
    await publisher.kill();
  }
});

test.run();
