import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import { ChildProc } from '../../src/bench/child-process.js';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { memoryLogger } from '../helpers/log.js';
import { TCP_WIRE, TcpTransport, decodeTcpAddress, decodeTcpDescriptor, encodeTcpAddress, encodeTcpDescriptor } from '../../src/transport/tcp/index.js';
import { TransportError, type Endpoint, type LocalRegion, type RemoteRegion } from '../../src/transport/types.js';
import { fillPattern, findMismatch } from '../../src/bench/engine/pattern.js';
import { closedByPeer, rawConnect, rawHello, rawRequest, readExactly, within } from './tcp-raw.js';

const MiB = 1 << 20;
const PAGE = 128 << 10;
const REGION = 64 * MiB;
const PAGES = REGION / PAGE;
const fixture = fileURLToPath(new URL('../fixtures/tcp-publisher.ts', import.meta.url));

// ------------------------------------------------------------------------------------ helpers

async function rejects(p: Promise<unknown>, code: string, message: RegExp, ms = 15_000): Promise<TransportError> {
  let err: unknown = null;
  try {
    await within(p, ms, `a batch expected to fail with ${code}`);
  } catch (e) {
    err = e;
  }
  assert.ok(err !== null, `expected a rejection with ${code}, it resolved`);
  assert.instance(err, TransportError, String(err));
  const te = err as TransportError;
  assert.is(te.code, code, te.message);
  assert.match(te.message, message);
  return te;
}

function throws(fn: () => unknown, code: string, message: RegExp): void {
  try {
    fn();
  } catch (err) {
    assert.instance(err, TransportError, String(err));
    assert.is((err as TransportError).code, code, (err as Error).message);
    assert.match((err as Error).message, message);
    return;
  }
  assert.unreachable(`expected a throw with ${code}`);
}

function ops(...quads: number[][]): Float64Array {
  return new Float64Array(quads.flat());
}

/** A fixed shuffle of 0..n-1. */
function permutation(n: number, seed: number): number[] {
  const p = Array.from({ length: n }, (_, i) => i);
  let x = seed >>> 0 || 1;
  for (let i = n - 1; i > 0; i--) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const j = x % (i + 1);
    [p[i], p[j]] = [p[j], p[i]];
  }
  return p;
}

function assertPage(view: Uint8Array, seed: number, viewOffset: number, patternOffset: number, what: string): void {
  const bad = findMismatch(view, seed, patternOffset, viewOffset, PAGE);
  if (bad !== -1) assert.unreachable(`${what}: byte ${bad} of the page differs`);
}

interface Publisher {
  proc: ChildProcessWithoutNullStreams;
  address: Uint8Array;
  descriptor: Uint8Array;
  length: number;
  nextLine(): Promise<string>;
}

async function spawnPublisher(bytes: number, seed: number): Promise<Publisher> {
  // Every stdout line is a message, in order: the JSON address line, then the answers ("freed").
  const child = new ChildProc<string>({ label: 'the publisher child', command: process.execPath, args: ['--import', 'tsx', fixture, String(bytes), String(seed)], lifetime: 'stdin', parseMessage: (l) => l });
  const proc = child.proc as ChildProcessWithoutNullStreams;
  const nextLine = (): Promise<string> =>
    child.next(() => true, 30_000, 'line from the publisher child').catch((err: Error) => {
      throw new Error(err.message.startsWith('exited') ? `publisher ${err.message}: ${child.stderr()}` : `the publisher child: ${err.message}`);
    });
  try {
    const first = JSON.parse(await nextLine()) as { address: string; descriptor: string; length: number };
    return {
      proc,
      address: new Uint8Array(Buffer.from(first.address, 'base64')),
      descriptor: new Uint8Array(Buffer.from(first.descriptor, 'base64')),
      length: first.length,
      nextLine,
    };
  } catch (err) {
    await reap(proc);
    throw err;
  }
}

async function reap(proc: ChildProcessWithoutNullStreams): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill('SIGKILL');
  await exited;
}

/**
 * 64 MiB each way in 128 KiB pages, every byte checked: READ in batches of 1 (one at a time, then
 * all in flight), of 1024 (two locals), pipelined batches of 32; WRITE in batches of 1 and 1024.
 * `published`: the region's own bytes when the publisher is in this process.
 */
async function moveAndVerify(node: TcpTransport, ep: Endpoint, remote: RemoteRegion, seed: number, published?: Uint8Array): Promise<void> {
  assert.is(remote.length, REGION);
  const perm = permutation(PAGES, 7);
  const dst = new Uint8Array(REGION);
  const local = node.register(dst);

  // READ, batches of 1, one at a time: page p lands reversed.
  for (let p = 0; p < PAGES; p++) await ep.read(remote, [local], ops([p * PAGE, 0, (PAGES - 1 - p) * PAGE, PAGE]), 1);
  for (let p = 0; p < PAGES; p++) assertPage(dst, seed, (PAGES - 1 - p) * PAGE, p * PAGE, `batch-of-1 READ of page ${p}`);

  // READ, batches of 1, all 512 in flight at once.
  dst.fill(0);
  await Promise.all(Array.from({ length: PAGES }, (_, p) => ep.read(remote, [local], ops([perm[p] * PAGE, 0, p * PAGE, PAGE]), 1)));
  for (let p = 0; p < PAGES; p++) assertPage(dst, seed, p * PAGE, perm[p] * PAGE, `pipelined READ of page ${perm[p]}`);

  // READ, one batch of 1024 ops into two locals: every page twice, shuffled.
  const second = new Uint8Array(REGION);
  const local2 = node.register(second);
  dst.fill(0);
  const big = new Float64Array(1024 * 4);
  for (let k = 0; k < 1024; k++) {
    const j = k % PAGES;
    big.set(k < PAGES ? [perm[j] * PAGE, 0, j * PAGE, PAGE] : [perm[j] * PAGE, 1, (PAGES - 1 - j) * PAGE, PAGE], k * 4);
  }
  await ep.read(remote, [local, local2], big, 1024);
  for (let j = 0; j < PAGES; j++) {
    assertPage(dst, seed, j * PAGE, perm[j] * PAGE, `batch-of-1024 READ, local 0, page ${j}`);
    assertPage(second, seed, (PAGES - 1 - j) * PAGE, perm[j] * PAGE, `batch-of-1024 READ, local 1, page ${j}`);
  }

  // READ, 16 batches of 32 ops in flight, each into its own slice, each checked when it lands.
  dst.fill(0);
  await Promise.all(
    Array.from({ length: PAGES / 32 }, (_, b) => {
      const q = new Float64Array(32 * 4);
      for (let i = 0; i < 32; i++) q.set([perm[b * 32 + i] * PAGE, 0, (b * 32 + i) * PAGE, PAGE], i * 4);
      return ep.read(remote, [local], q, 32).then(() => {
        for (let i = 0; i < 32; i++) assertPage(dst, seed, (b * 32 + i) * PAGE, perm[b * 32 + i] * PAGE, `batch ${b} op ${i}`);
      });
    }),
  );

  // WRITE, batches of 1: the whole region from a source of another pattern, read back whole.
  const src = new Uint8Array(REGION);
  fillPattern(src, seed + 1);
  const srcLocal = node.register(src);
  for (let p = 0; p < PAGES; p++) await ep.write(remote, [srcLocal], ops([p * PAGE, 0, p * PAGE, PAGE]), 1);
  const back = new Float64Array(PAGES * 4);
  for (let p = 0; p < PAGES; p++) back.set([p * PAGE, 0, p * PAGE, PAGE], p * 4);
  dst.fill(0);
  await ep.read(remote, [local], back, PAGES);
  for (let p = 0; p < PAGES; p++) assertPage(dst, seed + 1, p * PAGE, p * PAGE, `batch-of-1 WRITE of page ${p}`);
  if (published !== undefined) assert.is(findMismatch(published, seed + 1, 0, 0, REGION), -1, 'the publisher sees the writes');

  // WRITE, one batch of 1024: every remote page written twice, shuffled; ops run in order, so
  // the second write (from the second local) must win.
  fillPattern(src, seed + 2);
  fillPattern(second, seed + 3);
  for (let k = 0; k < 1024; k++) {
    const j = k % PAGES;
    big.set([perm[j] * PAGE, k < PAGES ? 0 : 1, j * PAGE, PAGE], k * 4);
  }
  await ep.write(remote, [srcLocal, local2], big, 1024);
  dst.fill(0);
  await ep.read(remote, [local], back, PAGES);
  for (let j = 0; j < PAGES; j++) assertPage(dst, seed + 3, perm[j] * PAGE, j * PAGE, `batch-of-1024 WRITE, page ${perm[j]}`);
  assert.is(ep.failure, null);
}

// -------------------------------------------------------------------------------------- tests

test('open: identity, address and descriptor blobs, argument checks', async () => {
  const a = await TcpTransport.open({ protocol: 'tcp' });
  try {
    assert.is(a.protocol, 'tcp');
    assert.is(a.smokeOnly, true);
    assert.is(a.transports, 'tcp (smoke, not publishable)');
    const addr = decodeTcpAddress(a.address());
    assert.is(addr.host, '127.0.0.1');
    assert.ok(addr.port > 0);
    assert.is(addr.nodeId, a.nodeId);
    const region = a.allocate(4096);
    const d = decodeTcpDescriptor(region.descriptor());
    assert.is(d.length, 4096);
    assert.is(d.nodeId, a.nodeId);
    assert.is(d.token.length, 16);
    assert.is(region.bytes.byteLength, 4096);
    throws(() => a.allocate(0), 'ERR_INVALID_ARG', /positive integer/);
    throws(() => a.allocate(1.5), 'ERR_INVALID_ARG', /positive integer/);
    throws(() => a.register(new Uint8Array(0)), 'ERR_INVALID_ARG', /cannot register an empty view/);
    throws(() => a.register([1, 2] as unknown as Uint8Array), 'ERR_INVALID_ARG', /must be a Uint8Array/);
    await rejects(TcpTransport.open({ protocol: 'shm' }), 'ERR_INVALID_ARG', /supports tcp/);
    await rejects(TcpTransport.open({ protocol: 'tcp', host: '203.0.113.7' }), 'ERR_PROTOCOL_UNAVAILABLE', /protocol 'tcp' cannot listen on 203\.0\.113\.7: EADDRNOTAVAIL/);
  } finally {
    await a.close();
  }
});

test('in one process: READ and WRITE, 64 MiB in 128 KiB pages, batches of 1 and 1024, pipelined', async () => {
  const a = await TcpTransport.open({ protocol: 'tcp' });
  const b = await TcpTransport.open({ protocol: 'tcp' });
  try {
    const published = a.allocate(REGION, { remoteWritable: true });
    fillPattern(published.bytes, 11);
    const ep = await b.connect(a.address());
    assert.equal(ep.lanes(), ['tcp']);
    const remote = ep.attach(published.descriptor());
    await within(moveAndVerify(b, ep, remote, 11, published.bytes), 120_000, 'moveAndVerify');
    // Odd sizes and offsets go through the staging buffer and split ops correctly.
    const dst = new Uint8Array(100_003);
    const local = b.register(dst);
    await ep.read(remote, [local], ops([12_345, 0, 7, 99_000], [1, 0, 99_007, 3]), 2);
    for (let i = 0; i < 99_000; i++) if (dst[7 + i] !== published.bytes[12_345 + i]) assert.unreachable(`odd READ byte ${i}`);
    for (let i = 0; i < 3; i++) assert.is(dst[99_007 + i], published.bytes[1 + i]);
    // A local over a SharedArrayBuffer (how the store registers its host pool), READ and WRITE.
    const shared = new Uint8Array(new SharedArrayBuffer(4 * MiB), MiB, 2 * MiB);
    const sharedLocal = b.register(shared);
    await ep.read(remote, [sharedLocal], ops([3 * MiB, 0, 0, 2 * MiB]), 1);
    assert.ok(Buffer.from(shared).equals(Buffer.from(published.bytes.subarray(3 * MiB, 5 * MiB))));
    shared.fill(0x42);
    await ep.write(remote, [sharedLocal], ops([0, 0, 0, 2 * MiB]), 1);
    assert.ok(published.bytes.subarray(0, 2 * MiB).every((x) => x === 0x42));
    ep.close();
    published.free();
    assert.is(published.bytes.byteLength, 0, 'the view is detached after free');
  } finally {
    await b.close();
    await a.close();
  }
});

test('two processes: READ and WRITE, 64 MiB in 128 KiB pages, batches of 1 and 1024, pipelined', async () => {
  const child = await spawnPublisher(REGION, 21);
  const node = await TcpTransport.open({ protocol: 'tcp' });
  try {
    const ep = await node.connect(child.address);
    const remote = ep.attach(child.descriptor);
    await within(moveAndVerify(node, ep, remote, 21), 120_000, 'moveAndVerify');
    ep.close();
  } finally {
    await node.close();
    await reap(child.proc);
  }
});

test('IPv6 loopback, where the host has it', async () => {
  let a: TcpTransport;
  try {
    a = await TcpTransport.open({ protocol: 'tcp', host: '::1' });
  } catch {
    return; // no IPv6 here: nothing to check
  }
  const b = await TcpTransport.open({ protocol: 'tcp', host: '::1' });
  try {
    assert.is(decodeTcpAddress(a.address()).host, '::1');
    const published = a.allocate(MiB);
    fillPattern(published.bytes, 23);
    const ep = await b.connect(a.address());
    const dst = new Uint8Array(MiB);
    await ep.read(ep.attach(published.descriptor()), [b.register(dst)], ops([0, 0, 0, MiB]), 1);
    assert.is(findMismatch(dst, 23, 0, 0, MiB), -1);
  } finally {
    await b.close();
    await a.close();
  }
});

test('a deep pipeline (192 MiB in flight, past the server\'s send limit) lands whole', async () => {
  const child = await spawnPublisher(REGION, 31);
  const node = await TcpTransport.open({ protocol: 'tcp' });
  try {
    const ep = await node.connect(child.address);
    const remote = ep.attach(child.descriptor);
    const perm = permutation(PAGES, 3);
    const n = 48;
    const dsts = Array.from({ length: n }, () => new Uint8Array(32 * PAGE));
    await within(
      Promise.all(
        dsts.map((dst, b) => {
          const q = new Float64Array(32 * 4);
          for (let i = 0; i < 32; i++) q.set([perm[(b * 32 + i) % PAGES] * PAGE, 0, i * PAGE, PAGE], i * 4);
          return ep.read(remote, [node.register(dst)], q, 32);
        }),
      ),
      60_000,
      'the deep pipeline',
    );
    dsts.forEach((dst, b) => {
      for (let i = 0; i < 32; i++) assertPage(dst, 31, i * PAGE, perm[(b * 32 + i) % PAGES] * PAGE, `batch ${b} op ${i}`);
    });
  } finally {
    await node.close();
    await reap(child.proc);
  }
});

test('bad arguments are refused before anything is sent', async () => {
  const a = await TcpTransport.open({ protocol: 'tcp' });
  const b = await TcpTransport.open({ protocol: 'tcp' });
  try {
    const published = a.allocate(MiB);
    published.bytes.fill(0x11);
    const ep = await b.connect(a.address());
    const remote = ep.attach(published.descriptor());
    const dst = new Uint8Array(64 << 10);
    const local = b.register(dst);
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 0]), 1), 'ERR_INVALID_ARG', /op 0: length must be a positive integer \(got 0\)/);
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 1.5]), 1), 'ERR_INVALID_ARG', /length must be a positive integer/);
    await rejects(ep.read(remote, [local], ops([0, 1, 0, 10]), 1), 'ERR_INVALID_ARG', /op 0: local region index out of range/);
    await rejects(ep.read(remote, [local], ops([0, 0, dst.length - 5, 10]), 1), 'ERR_OUT_OF_RANGE', /op 0: local range \[65531, \+10\) is outside the registered 65536 bytes/);
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 8], [MiB - 5, 0, 0, 10]), 2), 'ERR_OUT_OF_RANGE', /op 1: remote range \[1048571, \+10\) is outside the peer's 1048576-byte region/);
    await rejects(ep.read(remote, [local], ops([-1, 0, 0, 10]), 1), 'ERR_OUT_OF_RANGE', /remote range/);
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 10]), 0), 'ERR_INVALID_ARG', /count must be a positive integer/);
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 10]), 2), 'ERR_INVALID_ARG', /4\*count <= ops.length/);
    await rejects(ep.read(remote, [local], [0, 0, 0, 10] as unknown as Float64Array, 1), 'ERR_INVALID_ARG', /Float64Array/);
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 10]), 1, { timeoutMs: 0 }), 'ERR_INVALID_ARG', /every wait has a deadline/);
    const fake: LocalRegion = { bytes: dst, length: dst.length, view: (o, n) => dst.subarray(o, o + n), free: () => undefined };
    await rejects(ep.read(remote, [fake], ops([0, 0, 0, 10]), 1), 'ERR_INVALID_ARG', /locals\[0\] was not registered/);
    await rejects(ep.read({ length: MiB }, [local], ops([0, 0, 0, 10]), 1), 'ERR_INVALID_ARG', /not attached on a TCP endpoint/);
    // A batch with one bad op sends nothing: its good first op must not have been written.
    dst.fill(0xee);
    await rejects(ep.write(remote, [local], ops([0, 0, 0, 4096], [MiB, 0, 0, 1]), 2), 'ERR_OUT_OF_RANGE', /op 1: remote range/);
    await ep.read(remote, [local], ops([0, 0, 0, 4096]), 1);
    assert.ok(dst.subarray(0, 4096).every((x) => x === 0x11), 'the refused WRITE batch wrote nothing');
    assert.ok(published.bytes.subarray(0, 4096).every((x) => x === 0x11));
    // A remote attached on another endpoint.
    const ep2 = await b.connect(a.address());
    const remote2 = ep2.attach(published.descriptor());
    await rejects(ep.read(remote2, [local], ops([0, 0, 0, 10]), 1), 'ERR_BAD_RKEY', /not attached to this endpoint/);
    ep2.close();
    // A freed local.
    const doomed = b.register(new Uint8Array(100));
    doomed.free();
    await rejects(ep.read(remote, [doomed], ops([0, 0, 0, 10]), 1), 'ERR_CLOSED', /locals\[0\] is freed/);
    assert.is(ep.failure, null, 'argument errors never fail the endpoint');
    await ep.read(remote, [local], ops([0, 0, 0, 10]), 1);
  } finally {
    await b.close();
    await a.close();
  }
});

test('descriptors: garbage, another node, wrong token, forged length, unknown and freed regions', async () => {
  const a = await TcpTransport.open({ protocol: 'tcp' });
  const b = await TcpTransport.open({ protocol: 'tcp' });
  const c = await TcpTransport.open({ protocol: 'tcp' });
  try {
    const published = a.allocate(MiB);
    published.bytes.fill(0x5a);
    const good = decodeTcpDescriptor(published.descriptor());
    const ep = await b.connect(a.address());
    const dst = new Uint8Array(MiB);
    const local = b.register(dst);

    throws(() => ep.attach(new Uint8Array(randomBytes(52))), 'ERR_BAD_RKEY', /invalid region descriptor: bad magic/);
    throws(() => ep.attach(new Uint8Array(7)), 'ERR_BAD_RKEY', /invalid region descriptor: 7 bytes/);
    const damaged = published.descriptor();
    damaged[40] ^= 1;
    throws(() => ep.attach(damaged), 'ERR_BAD_RKEY', /checksum mismatch/);
    throws(() => ep.attach(encodeTcpDescriptor({ ...good, token: new Uint8Array(16) })), 'ERR_BAD_RKEY', /access token missing/);
    throws(() => ep.attach(c.allocate(MiB).descriptor()), 'ERR_BAD_RKEY', /names a region of node [0-9a-f]{16}, but this endpoint's peer is node/);
    throws(() => ep.attach('nope' as unknown as Uint8Array), 'ERR_INVALID_ARG', /must be a Uint8Array/);

    // Right shape, wrong token: the server refuses; the connection stays usable.
    const forged = ep.attach(encodeTcpDescriptor({ ...good, token: new Uint8Array(randomBytes(16)) }));
    await rejects(ep.read(forged, [local], ops([0, 0, 0, 4096]), 1), 'ERR_BAD_RKEY', /READ batch of 1 ops refused by peer 127\.0\.0\.1:\d+: access token does not match region/);
    await rejects(ep.write(forged, [local], ops([0, 0, 0, 4096]), 1), 'ERR_BAD_RKEY', /WRITE batch of 1 ops refused by peer .*access token does not match/);
    assert.ok(published.bytes.every((x) => x === 0x5a), 'the refused WRITE changed nothing');
    // A forged length: the client's check passes, the server's does not.
    const stretched = ep.attach(encodeTcpDescriptor({ ...good, length: 2 * MiB }));
    await rejects(ep.read(stretched, [local], ops([MiB - 10, 0, 0, 4096]), 1), 'ERR_OUT_OF_RANGE', /refused by peer .*op 0: remote range \[1048566, \+4096\) is outside region \d+ \(1048576 bytes\)/);
    // An id the node never allocated.
    const unknown = ep.attach(encodeTcpDescriptor({ ...good, regionId: 999 }));
    await rejects(ep.read(unknown, [local], ops([0, 0, 0, 10]), 1), 'ERR_BAD_RKEY', /no region 999 on this node/);
    // Pipelined: refused and served batches interleaved on one connection each get their answer.
    const remote = ep.attach(published.descriptor());
    const mixed = await Promise.allSettled([
      ep.read(remote, [local], ops([0, 0, 0, 4096]), 1),
      ep.read(forged, [local], ops([0, 0, 4096, 4096]), 1),
      ep.read(remote, [local], ops([4096, 0, 8192, 4096]), 1),
    ]);
    assert.equal(mixed.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
    assert.is(ep.failure, null, 'refusals never fail the endpoint');
    await ep.read(remote, [local], ops([0, 0, 0, MiB]), 1);
    assert.ok(dst.every((x) => x === 0x5a));

    // A freed region: the server stops serving it, the view is detached.
    published.free();
    assert.is(published.bytes.byteLength, 0);
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 10]), 1), 'ERR_BAD_RKEY', /region \d+ was freed/);
    throws(() => published.descriptor(), 'ERR_CLOSED', /was freed/);
    assert.is(ep.failure, null);
  } finally {
    await c.close();
    await b.close();
    await a.close();
  }
});

test('a freed region in another process is refused', async () => {
  const child = await spawnPublisher(MiB, 3);
  const node = await TcpTransport.open({ protocol: 'tcp' });
  try {
    const ep = await node.connect(child.address);
    const remote = ep.attach(child.descriptor);
    const dst = new Uint8Array(MiB);
    const local = node.register(dst);
    await ep.read(remote, [local], ops([0, 0, 0, MiB]), 1);
    assert.is(findMismatch(dst, 3, 0, 0, MiB), -1);
    child.proc.stdin.write('free\n');
    assert.is(await child.nextLine(), 'freed');
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 10]), 1), 'ERR_BAD_RKEY', /was freed/);
  } finally {
    await node.close();
    await reap(child.proc);
  }
});

test('closed endpoints and nodes fail clearly; batches in flight settle', async () => {
  const a = await TcpTransport.open({ protocol: 'tcp' });
  const b = await TcpTransport.open({ protocol: 'tcp' });
  try {
    const published = a.allocate(16 * MiB);
    const ep = await b.connect(a.address());
    const remote = ep.attach(published.descriptor());
    const dst = new Uint8Array(16 * MiB);
    const local = b.register(dst);
    const inFlight = ep.read(remote, [local], ops([0, 0, 0, 16 * MiB]), 1);
    ep.close();
    await rejects(inFlight, 'ERR_CLOSED', /READ batch of 1 ops failed: the endpoint was closed while the batch was in flight/);
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 10]), 1), 'ERR_CLOSED', /^endpoint is closed$/);
    throws(() => ep.attach(published.descriptor()), 'ERR_CLOSED', /endpoint is closed/);
    assert.is(ep.failure, null);
    ep.close(); // twice is fine

    // The publisher's node closes: the reader's endpoint sees the connection lost.
    const ep2 = await b.connect(a.address());
    const remote2 = ep2.attach(published.descriptor());
    await ep2.read(remote2, [local], ops([0, 0, 0, 10]), 1);
    await a.close();
    assert.is(published.bytes.byteLength, 0, 'closing the node frees its regions');
    throws(() => a.allocate(10), 'ERR_CLOSED', /TcpTransport is closed/);
    await rejects(a.connect(b.address()), 'ERR_CLOSED', /TcpTransport is closed/);
    // The reader learns of it asynchronously (the socket closes): wait for that, bounded.
    const until = Date.now() + 5_000;
    while (ep2.failure === null && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    assert.match(ep2.failure ?? '', /connection to peer 127\.0\.0\.1:\d+ lost/);
    await rejects(ep2.read(remote2, [local], ops([0, 0, 0, 10]), 1), 'ERR_CLOSED', /^endpoint failed: connection to peer .* lost/);

    // Closing the reader's node closes its endpoints.
    const c = await TcpTransport.open({ protocol: 'tcp' });
    const pc = c.allocate(MiB);
    const ep3 = await b.connect(c.address());
    const r3 = ep3.attach(pc.descriptor());
    await b.close();
    await rejects(ep3.read(r3, [local], ops([0, 0, 0, 10]), 1), 'ERR_CLOSED', /endpoint is closed/);
    await c.close();
  } finally {
    await b.close();
    await a.close();
  }
});

test('connect: malformed address, nobody listening, stale address, a peer that never answers', async () => {
  const b = await TcpTransport.open({ protocol: 'tcp', timeoutMs: 400 });
  const silent = net.createServer((s) => {
    sockets.push(s); // accept, then say nothing
  });
  const sockets: net.Socket[] = [];
  try {
    await rejects(b.connect(new Uint8Array([1, 2, 3])), 'ERR_INVALID_ARG', /not a peercache tcp address: too short/);
    await rejects(b.connect(new Uint8Array(randomBytes(40))), 'ERR_INVALID_ARG', /bad magic/);
    // A port nobody listens on.
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', () => r()));
    const freePort = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    await rejects(b.connect(encodeTcpAddress({ host: '127.0.0.1', port: freePort, nodeId: '0011223344556677' })), 'ERR_CONNECT', /cannot connect to the peer at 127\.0\.0\.1:\d+: ECONNREFUSED/);
    // A live node, but not the one the address names.
    const a = await TcpTransport.open({ protocol: 'tcp' });
    const real = decodeTcpAddress(a.address());
    await rejects(b.connect(encodeTcpAddress({ ...real, nodeId: 'ffffffffffffffff' })), 'ERR_CONNECT', /is node [0-9a-f]{16}, not node ffffffffffffffff/);
    await a.close();
    // Accepts the connection, never answers: the handshake times out.
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', () => r()));
    const port = (silent.address() as net.AddressInfo).port;
    const t0 = Date.now();
    await rejects(b.connect(encodeTcpAddress({ host: '127.0.0.1', port, nodeId: '0011223344556677' })), 'ERR_TIMEOUT', /did not answer the handshake within 400 ms/, 5_000);
    assert.ok(Date.now() - t0 < 3_000, 'the deadline holds');
  } finally {
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
    await b.close();
  }
});

test('the peer process killed mid-batch: every batch in flight rejects, no hang', async () => {
  const child = await spawnPublisher(REGION, 5);
  const node = await TcpTransport.open({ protocol: 'tcp', timeoutMs: 60_000 }); // far beyond the test: no timeouts involved
  try {
    const ep = await node.connect(child.address);
    const remote = ep.attach(child.descriptor);
    const locals = Array.from({ length: 4 }, () => node.register(new Uint8Array(4 * MiB)));
    const batches: Promise<void>[] = [];
    for (let b = 0; b < 96; b++) {
      const q = new Float64Array(32 * 4);
      for (let i = 0; i < 32; i++) q.set([((b * 32 + i) % PAGES) * PAGE, b % 4, i * PAGE, PAGE], i * 4);
      batches.push(ep.read(remote, locals, q, 32));
    }
    await batches[0];
    child.proc.kill('SIGKILL');
    const settled = await within(Promise.allSettled(batches), 10_000, 'batches in flight after the peer died');
    const rejected = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.ok(rejected.length > 0, 'some batches were still in flight');
    for (const r of rejected) {
      assert.instance(r.reason, TransportError);
      assert.is((r.reason as TransportError).code, 'ERR_TRANSFER');
      assert.match((r.reason as Error).message, /READ batch of 32 ops failed: connection to peer 127\.0\.0\.1:\d+ lost \((ECONNRESET|closed by the peer)\)/);
    }
    assert.match(ep.failure ?? '', /connection to peer 127\.0\.0\.1:\d+ lost/);
    await rejects(ep.read(remote, locals, ops([0, 0, 0, 10]), 1), 'ERR_CLOSED', /^endpoint failed: connection to peer .* lost/);
  } finally {
    await node.close();
    await reap(child.proc);
  }
});

test('a hung peer: the batch times out, the endpoint closes, later calls say why', async () => {
  const child = await spawnPublisher(MiB, 9);
  const node = await TcpTransport.open({ protocol: 'tcp', timeoutMs: 20_000 });
  try {
    const ep = await node.connect(child.address);
    const remote = ep.attach(child.descriptor);
    const local = node.register(new Uint8Array(MiB));
    await ep.read(remote, [local], ops([0, 0, 0, MiB]), 1);
    child.proc.kill('SIGSTOP');
    const t0 = Date.now();
    const other = ep.read(remote, [local], ops([0, 0, 0, 4096]), 1); // the node default deadline (20 s)
    const timed = ep.read(remote, [local], ops([0, 0, 0, 4096]), 1, { timeoutMs: 300 });
    await rejects(timed, 'ERR_TIMEOUT', /READ batch of 1 ops timed out after 300 ms \(peer 127\.0\.0\.1:\d+ unresponsive\); the endpoint was closed/, 5_000);
    assert.ok(Date.now() - t0 < 3_000);
    await rejects(other, 'ERR_TRANSFER', /the endpoint was closed \(a batch timed out\)/, 1_000);
    assert.is(ep.failure, 'a batch timed out');
    await rejects(ep.read(remote, [local], ops([0, 0, 0, 10]), 1), 'ERR_CLOSED', /^endpoint is closed \(a batch timed out\)$/);
    await rejects(ep.write(remote, [local], ops([0, 0, 0, 10]), 1), 'ERR_CLOSED', /endpoint is closed \(a batch timed out\)/);
  } finally {
    await node.close();
    await reap(child.proc); // SIGKILL ends a stopped process too
  }
});

test('garbage and oversized frames: that connection is closed, the server keeps serving', async () => {
  const { lines: logs, logger } = memoryLogger();
  const a = await TcpTransport.open({ protocol: 'tcp', logger });
  const b = await TcpTransport.open({ protocol: 'tcp' });
  const raws: net.Socket[] = [];
  try {
    const published = a.allocate(MiB);
    fillPattern(published.bytes, 13);
    const d = decodeTcpDescriptor(published.descriptor());
    const { port } = decodeTcpAddress(a.address());
    const ep = await b.connect(a.address());
    const remote = ep.attach(published.descriptor());
    const dst = new Uint8Array(MiB);
    const local = b.register(dst);

    const bad: [string, Buffer, RegExp][] = [
      ['random bytes', Buffer.concat([Buffer.from('GET / HTTP/1.1\r\n'), randomBytes(4096)]), /bad frame magic/],
      ['a 2 GiB WRITE payload', rawRequest(TCP_WIRE.kinds.write, 1, 1, 2 ** 31, d.regionId, d.token), /payload of 2147483648 bytes is over the limit/],
      ['a payload of 2^60 bytes', rawRequest(TCP_WIRE.kinds.write, 1, 1, 2 ** 60, d.regionId, d.token), /payload of >= 2\^53 bytes/],
      ['a million ops', rawRequest(TCP_WIRE.kinds.read, 1, 1 << 20, 0, d.regionId, d.token), /frame of 1048576 ops is over the limit/],
      ['a READ with a payload', rawRequest(TCP_WIRE.kinds.read, 1, 1, 100, d.regionId, d.token), /carries no payload/],
      ['an unknown kind', rawRequest(9, 1, 1, 0, d.regionId, d.token), /unknown frame kind 9/],
      ['another wire version', (() => { const f = rawRequest(TCP_WIRE.kinds.read, 1, 1, 0, d.regionId, d.token); f[4] = 77; return f; })(), /unsupported wire version 77/],
    ];
    for (const [what, bytes, reason] of bad) {
      const s = await rawConnect(port);
      raws.push(s);
      const closed = closedByPeer(s);
      s.write(bytes);
      await closed.catch((err: Error) => assert.unreachable(`${what}: ${err.message}`));
      assert.ok(logs.some((l) => reason.test(l)), `${what}: logged ${JSON.stringify(logs)}`);
    }
    // Half a header, then the client goes away: nothing to log, nothing breaks.
    const half = await rawConnect(port);
    half.write(rawRequest(TCP_WIRE.kinds.read, 1, 1, 0, d.regionId, d.token).subarray(0, 20));
    half.destroy();

    // The server checks every range itself (not only the client): a hand-made READ outside the
    // region is refused with a reason, and the connection goes on serving.
    const s = await rawHello(port);
    raws.push(s);
    s.write(rawRequest(TCP_WIRE.kinds.read, 7, 1, 0, d.regionId, d.token, [[MiB - 8, 16]]));
    const h1 = await readExactly(s, TCP_WIRE.responseHeaderBytes);
    assert.is(h1.readUInt32LE(0), TCP_WIRE.responseMagic);
    assert.is(h1[6], TCP_WIRE.status.outOfRange);
    assert.is(h1.readUInt32LE(8), 7);
    const reason = await readExactly(s, h1.readUInt32LE(16));
    assert.match(reason.toString(), /op 0: remote range \[1048568, \+16\) is outside region/);
    s.write(rawRequest(TCP_WIRE.kinds.read, 8, 2, 0, d.regionId, d.token, [[0, 8], [MiB - 8, 8]]));
    const h2 = await readExactly(s, TCP_WIRE.responseHeaderBytes);
    assert.is(h2[6], TCP_WIRE.status.ok);
    assert.is(h2.readUInt32LE(8), 8);
    const body = await readExactly(s, 16);
    assert.ok(body.subarray(0, 8).equals(Buffer.from(published.bytes.subarray(0, 8))));
    assert.ok(body.subarray(8).equals(Buffer.from(published.bytes.subarray(MiB - 8))));
    // An op of length 0 sent by hand: refused as invalid.
    s.write(rawRequest(TCP_WIRE.kinds.read, 9, 1, 0, d.regionId, d.token, [[0, 0]]));
    const h3 = await readExactly(s, TCP_WIRE.responseHeaderBytes);
    assert.is(h3[6], TCP_WIRE.status.invalid);
    await readExactly(s, h3.readUInt32LE(16));

    // The endpoint connected before all that, and a new one, still work.
    await ep.read(remote, [local], ops([0, 0, 0, MiB]), 1);
    assert.is(findMismatch(dst, 13, 0, 0, MiB), -1);
    const ep2 = await b.connect(a.address());
    dst.fill(0);
    await ep2.read(ep2.attach(published.descriptor()), [local], ops([0, 0, 0, MiB]), 1);
    assert.is(findMismatch(dst, 13, 0, 0, MiB), -1);
  } finally {
    for (const s of raws) s.destroy();
    await b.close();
    await a.close();
  }
});

test('published regions are read-only to peers by default: a WRITE with the right token is refused, bytes unchanged', async () => {
  const a = await TcpTransport.open({ protocol: 'tcp' });
  const b = await TcpTransport.open({ protocol: 'tcp' });
  const raws: net.Socket[] = [];
  try {
    const published = a.allocate(MiB);
    published.bytes.fill(0x5a);
    const ep = await b.connect(a.address());
    const remote = ep.attach(published.descriptor()); // this peer holds the region's token
    const src = new Uint8Array(64 << 10).fill(0xee);
    const local = b.register(src);
    await rejects(ep.write(remote, [local], ops([0, 0, 0, 4096], [MiB - 4096, 0, 0, 4096]), 2), 'ERR_READ_ONLY', /WRITE batch of 2 ops refused by peer 127\.0\.0\.1:\d+: region \d+ is read-only to peers/);
    assert.ok(published.bytes.every((x) => x === 0x5a), 'the refused WRITE changed nothing');
    assert.is(ep.failure, null, 'a refusal does not fail the endpoint');
    // The same by hand: HELLO, then a WRITE frame with the right token and its payload.
    const d = decodeTcpDescriptor(published.descriptor());
    const s = await rawHello(decodeTcpAddress(a.address()).port);
    raws.push(s);
    s.write(Buffer.concat([rawRequest(TCP_WIRE.kinds.write, 5, 1, 4096, d.regionId, d.token, [[0, 4096]]), Buffer.alloc(4096, 0xee)]));
    const h = await readExactly(s, TCP_WIRE.responseHeaderBytes);
    assert.is(h.readUInt32LE(8), 5);
    assert.is(h[6], TCP_WIRE.status.readOnly);
    assert.match((await readExactly(s, h.readUInt32LE(16))).toString(), /region \d+ is read-only to peers/);
    assert.ok(published.bytes.every((x) => x === 0x5a), 'the raw WRITE changed nothing');
    // READs on the same connection and endpoint still work.
    const dst = new Uint8Array(4096);
    await ep.read(remote, [b.register(dst)], ops([0, 0, 0, 4096]), 1);
    assert.ok(dst.every((x) => x === 0x5a));
    // Opting in makes a region writable.
    const writable = a.allocate(MiB, { remoteWritable: true });
    const wremote = ep.attach(writable.descriptor());
    await ep.write(wremote, [local], ops([4096, 0, 0, 4096]), 1);
    assert.ok(writable.bytes.subarray(4096, 8192).every((x) => x === 0xee));
    assert.ok(writable.bytes.subarray(0, 4096).every((x) => x === 0));
  } finally {
    for (const s of raws) s.destroy();
    await b.close();
    await a.close();
  }
});

test('a batch over the frame limits is split and still lands whole', async () => {
  // 70 000 ops of 16 bytes: more than one frame's 65 536 ops.
  const a = await TcpTransport.open({ protocol: 'tcp' });
  const b = await TcpTransport.open({ protocol: 'tcp' });
  try {
    const n = 70_000;
    const published = a.allocate(n * 16, { remoteWritable: true });
    fillPattern(published.bytes, 17);
    const ep = await b.connect(a.address());
    const remote = ep.attach(published.descriptor());
    const dst = new Uint8Array(n * 16);
    const local = b.register(dst);
    const q = new Float64Array(n * 4);
    for (let i = 0; i < n; i++) q.set([i * 16, 0, (n - 1 - i) * 16, 16], i * 4);
    await ep.read(remote, [local], q, n);
    for (let i = 0; i < n; i++) if (findMismatch(dst, 17, i * 16, (n - 1 - i) * 16, 16) !== -1) assert.unreachable(`op ${i}`);
    dst.reverse();
    await ep.write(remote, [local], ops([0, 0, 0, n * 16]), 1);
    assert.ok(Buffer.from(published.bytes).equals(Buffer.from(dst)));
  } finally {
    await b.close();
    await a.close();
  }
});

test.run();
