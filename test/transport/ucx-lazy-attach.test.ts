/**
 * Attaching a peer's shm segment costs the same whatever its size: the reader's page tables are
 * populated by 2 MiB chunk when a READ first touches it, not for the whole segment at attach
 * (which took ~0.6-2 s per GiB here: a 64 GiB segment, most of a minute before the first READ).
 * Measured as memory, not time: the segment's Rss in the reader after attach and after one READ.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { spawnFixture } from '../helpers/child.js';

const publisherFixture = new URL('../fixtures/ucx-publisher.ts', import.meta.url);
const lazyReader = new URL('../fixtures/ucx-lazy-reader.ts', import.meta.url);
const BYTES = 256 << 20;
const MiB = 1 << 20;

test('attach maps none of a 256 MiB segment; a 4 KiB READ populates its 2 MiB chunk only, and reads the right bytes', async () => {
  // The publisher writes every byte (the pattern), so every page of the segment exists.
  const publisher = spawnFixture(publisherFixture, [String(BYTES), 'shm', '11']);
  try {
    const ready = (await publisher.ready) as { address: string; descriptor: string };
    const offset = 100 * MiB + 12_288;
    const r = spawnSync(process.execPath, ['--import', 'tsx', lazyReader.pathname, ready.address, ready.descriptor, String(BYTES), '11', String(offset)], { encoding: 'utf8', timeout: 60_000 });
    assert.is(r.status, 0, r.stderr.slice(-2000));
    const out = JSON.parse(r.stdout.trim().split('\n').pop() ?? '{}') as { afterAttach: number; afterRead: number; pattern: boolean };
    assert.ok(out.pattern, 'the READ returned the published bytes');
    assert.ok(out.afterAttach <= 1 * MiB, `attach populated ${out.afterAttach / MiB} MiB of the segment`);
    assert.ok(out.afterRead >= 4096, `the READ's chunk is not mapped (${out.afterRead} bytes): did the READ go through the mapping?`);
    assert.ok(out.afterRead <= 4 * MiB, `one READ populated ${out.afterRead / MiB} MiB`);
  } finally {
    await publisher.kill();
  }
});

test.run();
