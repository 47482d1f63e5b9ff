/** The UCX data plane between real processes and threads over shm: bytes verified, bad input. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { tsWorker } from '../helpers/ts-worker.js';
import { checkPattern, fillPattern } from '../../src/bench/engine/pattern.js';
import { spawnFixture, type Child } from '../helpers/child.js';
import { UcxTransport, type UcxEndpoint } from '../../src/transport/ucx.js';
import { TransportError, type LocalRegion, type RemoteRegion } from '../../src/transport/types.js';

const publisherFixture = new URL('../fixtures/ucx-publisher.ts', import.meta.url);
const readerThread = new URL('../fixtures/ucx-reader-thread.ts', import.meta.url);
const SEED = 0x5eed;
const PAGE = 128 * 1024;

async function withPublisher<T>(bytes: number, fn: (info: { address: Uint8Array; descriptor: Uint8Array; child: Child }) => Promise<T>): Promise<T> {
  const child = spawnFixture(publisherFixture, [String(bytes), 'shm', String(SEED)]);
  try {
    const ready = (await child.ready) as { address: string; descriptor: string };
    return await fn({ address: Buffer.from(ready.address, 'base64'), descriptor: Buffer.from(ready.descriptor, 'base64'), child });
  } finally {
    await child.kill();
  }
}

async function readAll(ep: UcxEndpoint, remote: RemoteRegion, local: LocalRegion, dst: Uint8Array, regionBytes: number, totalBytes: number, batch: number): Promise<number> {
  const slots = regionBytes / PAGE;
  const ops = new Float64Array(batch * 4);
  let moved = 0;
  let round = 0;
  while (moved < totalBytes) {
    for (let i = 0; i < batch; i++) {
      const slot = (round * batch + i) * 7 % slots; // 7 is coprime with the power-of-two slot count
      ops[i * 4] = slot * PAGE;
      ops[i * 4 + 1] = 0;
      ops[i * 4 + 2] = i * PAGE;
      ops[i * 4 + 3] = PAGE;
    }
    dst.fill(0, 0, batch * PAGE);
    await ep.read(remote, [local], ops, batch);
    for (let i = 0; i < batch; i++) {
      const bad = checkPattern(dst.subarray(i * PAGE, (i + 1) * PAGE), SEED, ops[i * 4]);
      if (bad >= 0) assert.unreachable(`batch ${round} page ${i} differs at word ${bad}`);
    }
    moved += batch * PAGE;
    round++;
  }
  return moved;
}

test('cross-process shm READ: 1 GiB in 128 KiB pages, batches of 1 and of 1024, every byte verified', async () => {
  const regionBytes = 256 << 20;
  await withPublisher(regionBytes, async ({ address, descriptor }) => {
    const node = UcxTransport.open({ protocol: 'shm' });
    try {
      const ep = await node.connect(address);
      const remote = ep.attach(descriptor);
      const dst = new Uint8Array(1024 * PAGE);
      const local = node.register(dst);
      const one = await readAll(ep, remote, local, dst, regionBytes, 64 << 20, 1);
      const big = await readAll(ep, remote, local, dst, regionBytes, 1024 << 20, 1024);
      assert.is(one + big, (64 << 20) + (1 << 30));
      ep.close();
      local.free();
    } finally {
      await node.close();
    }
  });
});

test('cross-process shm WRITE then READ back, verified (blocking forms too)', async () => {
  await withPublisher(16 << 20, async ({ address, descriptor }) => {
    const node = UcxTransport.open({ protocol: 'shm' });
    try {
      const ep = await node.connect(address);
      const remote = ep.attach(descriptor);
      const src = new Uint8Array(64 * PAGE);
      fillPattern(src, 777, 0);
      const local = node.register(src);
      const ops = new Float64Array(64 * 4);
      for (let i = 0; i < 64; i++) ops.set([(63 - i) * PAGE, 0, i * PAGE, PAGE], i * 4);
      await ep.write(remote, [local], ops, 64);
      const back = new Uint8Array(64 * PAGE);
      const backLocal = node.register(back);
      ep.readSync(remote, [backLocal], ops, 64);
      assert.is(checkPattern(back, 777, 0), -1);
      ep.writeSync(remote, [local], ops, 1);
      ep.close();
    } finally {
      await node.close();
    }
  });
});

test('READ and WRITE between two worker threads of one process, bytes verified', async () => {
  const fixture = new URL('../fixtures/ucx-thread-peer.ts', import.meta.url);
  const bytes = 32 << 20;
  const publisher = tsWorker(fixture, { workerData: { role: 'publisher', bytes, seed: 99 } });
  try {
    const ready = await new Promise<{ address: string; descriptor: string }>((resolve, reject) => {
      publisher.once('message', resolve);
      publisher.once('error', reject);
    });
    const reader = tsWorker(fixture, { workerData: { role: 'reader', bytes, seed: 99, ...ready } });
    const read = await new Promise<{ readVerified?: boolean; error?: string }>((resolve, reject) => {
      reader.once('message', resolve);
      reader.once('error', reject);
    });
    assert.ok(read.readVerified, read.error ?? 'read bytes differ');
    const wrote = await new Promise<{ writeVerified: boolean }>((resolve) => {
      publisher.once('message', resolve);
      publisher.postMessage('done');
    });
    assert.ok(wrote.writeVerified, 'the WRITE landed in the publisher thread\'s region');
  } finally {
    await publisher.terminate();
  }
});

test('64 worker threads, each with its own UCX worker and endpoint, read one publisher process', async () => {
  const regionBytes = 64 << 20;
  await withPublisher(regionBytes, async ({ address, descriptor }) => {
    const threads = 64;
    const rssBefore = process.memoryUsage().rss;
    const results = await Promise.all(
      Array.from({ length: threads }, (_, index) =>
        new Promise<{ ok: boolean; error?: string; verified?: number; lanes?: string[]; rss?: number }>((resolve, reject) => {
          const w = tsWorker(readerThread, {
            workerData: {
              address: Buffer.from(address).toString('base64'),
              descriptor: Buffer.from(descriptor).toString('base64'),
              seed: SEED,
              pageBytes: PAGE,
              pages: 32,
              batches: 4,
              regionBytes,
              index,
            },
          });
          w.once('message', resolve);
          w.once('error', reject);
        }),
      ),
    );
    const failed = results.filter((r) => !r.ok);
    assert.is(failed.length, 0, failed.map((f) => f.error).join('; '));
    const verified = results.reduce((s, r) => s + (r.verified ?? 0), 0);
    assert.is(verified, threads * 4 * 32 * PAGE);
    assert.ok(results.every((r) => (r.lanes ?? []).some((l) => /^(sysv|posix)\//.test(l))), 'every thread used shared memory');
    const peakRss = Math.max(...results.map((r) => r.rss ?? 0));
    console.log(`    64 threads: ${(verified / 2 ** 20).toFixed(0)} MiB verified; rss ${(rssBefore / 2 ** 20).toFixed(0)} -> ${(peakRss / 2 ** 20).toFixed(0)} MiB (~${((peakRss - rssBefore) / threads / 2 ** 20).toFixed(1)} MiB per thread incl. its 4 MiB buffer)`);
  });
});

async function expectTransportError(fn: () => Promise<unknown> | unknown, code: string, pattern: RegExp): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.instance(err, TransportError, `expected a TransportError, got ${String(err)}`);
    assert.is((err as TransportError).code, code, (err as Error).message);
    assert.match((err as Error).message, pattern);
    return;
  }
  assert.unreachable(`expected ${code}`);
}

test('bad input: clear errors, never a crash or a hang', async () => {
  await withPublisher(4 << 20, async ({ address, descriptor }) => {
    const node = UcxTransport.open({ protocol: 'shm' });
    try {
      const ep = await node.connect(address);
      const remote = ep.attach(descriptor);
      const dst = new Uint8Array(PAGE);
      const local = node.register(dst);
      await expectTransportError(() => ep.read(remote, [local], new Float64Array([4 << 20, 0, 0, 16]), 1), 'ERR_OUT_OF_RANGE', /remote range .* outside the peer's 4194304-byte region/);
      await expectTransportError(() => ep.read(remote, [local], new Float64Array([0, 0, PAGE - 8, 16]), 1), 'ERR_OUT_OF_RANGE', /local range .* outside the registered/);
      await expectTransportError(() => ep.read(remote, [local], new Float64Array([0, 0, 0, 0]), 1), 'ERR_INVALID_ARG', /length must be a positive integer/);
      await expectTransportError(() => ep.read(remote, [local], new Float64Array([0, 3, 0, 16]), 1), 'ERR_INVALID_ARG', /local region index out of range/);
      await expectTransportError(() => ep.attach(new Uint8Array(64)), 'ERR_BAD_RKEY', /bad magic/);
      const damaged = Uint8Array.from(descriptor);
      damaged[damaged.length - 1] ^= 0xff;
      await expectTransportError(() => ep.attach(damaged), 'ERR_BAD_RKEY', /checksum mismatch/);
      await expectTransportError(() => node.register(new Uint8Array(0)), 'ERR_INVALID_ARG', /empty/);
      const freed = node.register(new Uint8Array(4096));
      freed.free();
      await expectTransportError(() => ep.read(remote, [freed], new Float64Array([0, 0, 0, 16]), 1), 'ERR_CLOSED', /freed/);
      ep.close();
      await expectTransportError(() => ep.read(remote, [local], new Float64Array([0, 0, 0, 16]), 1), 'ERR_CLOSED', /endpoint is closed/);
      await expectTransportError(() => node.connect(new Uint8Array(4)), 'ERR_BAD_ADDRESS', /too short/);
    } finally {
      await node.close();
    }
  });
});

test('the publisher killed mid-run: reads end with data or a clear error, never a hang', async () => {
  const regionBytes = 64 << 20;
  const child = spawnFixture(publisherFixture, [String(regionBytes), 'shm', String(SEED)]);
  const node = UcxTransport.open({ protocol: 'shm', timeoutMs: 3000 });
  try {
    const ready = (await child.ready) as { address: string; descriptor: string };
    const ep = await node.connect(Buffer.from(ready.address, 'base64'));
    const remote = ep.attach(Buffer.from(ready.descriptor, 'base64'));
    const dst = new Uint8Array(32 * PAGE);
    const local = node.register(dst);
    const ops = new Float64Array(32 * 4);
    for (let i = 0; i < 32; i++) ops.set([i * PAGE, 0, i * PAGE, PAGE], i * 4);
    let kills = 0;
    const started = Date.now();
    let outcomes = 0;
    while (Date.now() - started < 1500) {
      if (kills === 0 && Date.now() - started > 300) {
        child.proc.kill('SIGKILL');
        kills++;
      }
      try {
        await ep.read(remote, [local], ops, 32);
      } catch (err) {
        assert.instance(err, TransportError);
      }
      outcomes++;
    }
    assert.ok(outcomes > 0);
    // On shm the reader maps the segment, so completed READs still return the (dead) publisher's
    // bytes; what matters here is that every call returned. The store layer turns a dead node
    // into misses through the directory.
  } finally {
    await child.kill('SIGKILL');
    await node.close();
  }
});

test.run();
