/**
 * The sidecar's socket protocol against raw Unix-socket clients: the socket's permissions, hello
 * first, every limit (frame size, keys, connections, queued requests, hello deadline), malformed
 * frames (fatal: the connection is closed) and bad requests (answered with an error, the
 * connection stays usable), ranges outside a registered pool.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import { SidecarServer } from '../../src/sidecar/server.js';
import { SIDECAR_PROTOCOL } from '../../src/sidecar/protocol.js';
import { FrameDecoder, FrameKind, encodeFrame, encodeRawFrame, type Frame } from '../../src/store/directory/framing.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../helpers/ports.js';
import { requireNative } from '../../src/transport/native.js';

const dir = mkdtempSync(join(tmpdir(), 'pc-sidecar-'));
const socketPath = join(dir, 'run', 'peercache.sock');
const logLines: string[] = [];
let store: PeerCacheStore;
let server: SidecarServer;

interface Client {
  socket: net.Socket;
  frames: Frame[];
  closed: boolean;
  send(body: unknown, id?: number): void;
  next(timeoutMs?: number): Promise<Frame>;
  call(body: unknown): Promise<{ kind: number; body: Record<string, unknown> }>;
}

let nextId = 1;

async function connect(): Promise<Client> {
  const socket = net.connect(socketPath);
  const c: Client = {
    socket,
    frames: [],
    closed: false,
    send(body, id = nextId++) {
      socket.write(encodeFrame(FrameKind.Request, id, body));
    },
    async next(timeoutMs = 3000) {
      const t0 = Date.now();
      while (!c.frames.length) {
        if (Date.now() - t0 > timeoutMs) throw new Error('no frame');
        await new Promise((r) => setTimeout(r, 5));
      }
      return c.frames.shift()!;
    },
    async call(body) {
      c.send(body);
      const f = await c.next();
      return { kind: f.kind, body: JSON.parse(f.payload.toString()) as Record<string, unknown> };
    },
  };
  const decoder = new FrameDecoder((f) => c.frames.push(f), { role: 'client', maxFrameBytes: 2 ** 24 });
  socket.on('data', (d) => decoder.push(d));
  socket.on('error', () => {});
  socket.on('close', () => (c.closed = true));
  await new Promise<void>((r) => socket.once('connect', () => r()));
  return c;
}

async function closedSoon(c: Client, ms = 2000): Promise<boolean> {
  const t0 = Date.now();
  while (!c.closed && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 10));
  return c.closed;
}

async function hello(): Promise<Client> {
  const c = await connect();
  const r = await c.call({ op: 'hello', protocol: SIDECAR_PROTOCOL, pid: process.pid });
  assert.is(r.kind, FrameKind.Response);
  return c;
}

test.before(async () => {
  store = await PeerCacheStore.open({ protocol: 'tcp', discoveryAddr: `127.0.0.1:${await freePort()}`, globalSegmentBytes: 2 ** 20, slotBytes: 4096 });
  server = await SidecarServer.listen({
    socketPath,
    store,
    limits: { maxConnections: 3, maxKeys: 4, maxFrameBytes: 4096, helloTimeoutMs: 300, maxQueuedRequests: 2 },
    logger: createLogger({ level: 'info', write: (l) => logLines.push(l) }),
  });
});

test.after(async () => {
  await server.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

test('the socket is 0600 in a 0700 directory', () => {
  assert.is(statSync(socketPath).mode & 0o777, 0o600);
  assert.is(statSync(join(dir, 'run')).mode & 0o777, 0o700);
});

test('a second node on the same socket is refused; a stale socket file is replaced', async () => {
  try {
    await SidecarServer.listen({ socketPath, store, logger: createLogger({ level: 'silent' }) });
    assert.unreachable('a second node took over a live socket');
  } catch (err) {
    assert.match((err as Error).message, /another peercache node is serving/);
  }
  // A socket file left behind as a SIGKILLed node leaves it: the file stays, nobody accepts.
  const stalePath = join(dir, 'stale.sock');
  const child = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  assert.is(child.signal, 'SIGKILL');
  assert.ok(statSync(stalePath).isSocket(), 'the stale socket file is there');
  const second = await SidecarServer.listen({ socketPath: stalePath, store, logger: createLogger({ level: 'silent' }) });
  const c = net.connect(stalePath);
  await new Promise<void>((r, j) => c.once('connect', () => r()).once('error', j));
  c.destroy();
  await second.close();
});

test('the first request must be hello naming the protocol; another protocol is refused', async () => {
  const c = await connect();
  const r = await c.call({ op: 'exists', keys: ['a'] });
  assert.is(r.kind, FrameKind.Error);
  assert.match(String(r.body.message), /first request must be hello/);
  assert.ok(await closedSoon(c));
  const d = await connect();
  const r2 = await d.call({ op: 'hello', protocol: 'peercache-sidecar/9', pid: process.pid });
  assert.is(r2.kind, FrameKind.Error);
  assert.match(String(r2.body.message), /not supported/);
  assert.ok(await closedSoon(d));
});

test('a connection that never says hello is closed at the deadline', async () => {
  const c = await connect();
  const t0 = Date.now();
  assert.ok(await closedSoon(c, 3000));
  assert.ok(Date.now() - t0 < 2000);
});

test('malformed frames close the connection: oversized, foreign version, bad kind, bad JSON', async () => {
  const cases: [string, Buffer][] = [];
  const big = encodeRawFrame(FrameKind.Request, 1, new Uint8Array(0));
  big.writeUInt32BE(5000, 0);
  cases.push(['oversized', big]);
  cases.push(['version', encodeRawFrame(FrameKind.Request, 1, Buffer.from('{}'), 7)]);
  cases.push(['kind', encodeRawFrame(FrameKind.Response, 1, Buffer.from('{}'))]);
  cases.push(['json', encodeRawFrame(FrameKind.Request, 1, Buffer.from('{"op":'))]);
  for (const [what, frame] of cases) {
    const c = await hello();
    c.socket.write(frame);
    const f = await c.next();
    assert.is(f.kind, FrameKind.Error, what);
    assert.is(JSON.parse(f.payload.toString()).fatal, true, what);
    assert.ok(await closedSoon(c), `${what}: closed`);
  }
});

test('bad requests are answered with an error and the connection stays usable', async () => {
  const c = await hello();
  const bad: [unknown, RegExp][] = [
    [{ op: 'nope' }, /unknown op/],
    [[1, 2], /JSON object/],
    [{ op: 'exists', keys: ['a', 'b', 'c', 'd', 'e'] }, /at most 4/],
    [{ op: 'exists', keys: ['a', 7] }, /keys\[1\]/],
    [{ op: 'exists', keys: ['x'.repeat(600)] }, /at most 512 characters/],
    [{ op: 'get', pool: 0, keys: ['a'], offsets: [0], lengths: [16] }, /pool 0 is not registered/],
    [{ op: 'get', pool: 0, keys: ['a'], offsets: [0, 1], lengths: [16] }, /one integer per key/],
    [{ op: 'get', pool: 0, keys: ['a'], offsets: [-1], lengths: [16] }, /offsets\[0\]/],
    [{ op: 'register', pid: process.pid, fd: 99999, bytes: 4096 }, /cannot open fd 99999/],
    [{ op: 'register', pid: 1.5, fd: 1, bytes: 4096 }, /register.pid/],
  ];
  for (const [body, re] of bad) {
    const r = await c.call(body);
    assert.is(r.kind, FrameKind.Error, JSON.stringify(body));
    assert.is(r.body.fatal, false);
    assert.match(String(r.body.message), re);
  }
  const late = await c.call({ op: 'exists', keys: ['a'], deadline: Date.now() - 1 });
  assert.match(String(late.body.message), /too late to start/);
  const ok = await c.call({ op: 'exists', keys: ['a'], deadline: Date.now() + 5000 });
  assert.is(ok.kind, FrameKind.Response);
  assert.is(ok.body.found, '0');
  c.socket.destroy();
});

test('a registered file: ranges outside it and objects larger than a slot are refused, inside ones served', async () => {
  const onDisk = join(dir, 'not-shared-memory');
  writeFileSync(onDisk, Buffer.alloc(64 * 1024));
  const diskFd = openSync(onDisk, 'r+');
  const file = `/dev/shm/pc-sidecar-test-${process.pid}`;
  const content = Buffer.alloc(64 * 1024, 0x5a);
  content.fill(0x11, 4096, 8192);
  content.fill(0, 0, 4096);
  writeFileSync(file, content);
  const fd = openSync(file, 'r+');
  const c = await hello();
  try {
    const refused = await c.call({ op: 'register', pid: process.pid, fd: diskFd, bytes: 4096 });
    assert.match(String(refused.body.message), /not a memfd or a file in \/dev\/shm/);
    const short = await c.call({ op: 'register', pid: process.pid, fd, bytes: 128 * 1024 });
    assert.match(String(short.body.message), /fewer than the 131072 registered/);
    const reg = await c.call({ op: 'register', pid: process.pid, fd, bytes: 64 * 1024 });
    assert.is(reg.kind, FrameKind.Response, JSON.stringify(reg.body));
    const pool = reg.body.pool as number;
    const outside = await c.call({ op: 'get', pool, keys: ['k'], offsets: [64 * 1024 - 100], lengths: [4096] });
    assert.match(String(outside.body.message), /outside its pool/);
    const tooBig = await c.call({ op: 'set', pool, keys: ['k'], offsets: [0], lengths: [8192] });
    assert.match(String(tooBig.body.message), /slots hold 4096/);
    const set = await c.call({ op: 'set', pool, keys: ['k1'], offsets: [4096], lengths: [4096] });
    assert.is(set.body.ok, '1');
    const get = await c.call({ op: 'get', pool, keys: ['k1', 'k2'], offsets: [0, 8192], lengths: [4096, 4096] });
    assert.is(get.body.ok, '10');
    // Both ways through the shared mapping: published from bytes 4096.., read back into 0.. of the file.
    const now = readFileSync(file);
    assert.ok(now.subarray(0, 4096).every((b) => b === 0x11), 'the get landed in the client file');
    assert.ok(now.subarray(8192, 12288).every((b) => b === 0x5a), 'a miss leaves the pages alone');
    const stats = await c.call({ op: 'stats' });
    assert.is(stats.body.pools, 1);
  } finally {
    c.socket.destroy();
    closeSync(fd);
    closeSync(diskFd);
    rmSync(file, { force: true });
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.is(server.mappings.count, 0, 'the pool is released with its last connection');
});

test('requests queued past the limit close the connection', async () => {
  const c = await hello();
  const frames = Buffer.concat(Array.from({ length: 6 }, (_, i) => encodeFrame(FrameKind.Request, 100 + i, { op: 'clear' })));
  c.socket.write(frames);
  assert.ok(await closedSoon(c));
  assert.ok(c.frames.some((f) => f.kind === FrameKind.Error && /requests queued/.test(JSON.parse(f.payload.toString()).message)));
});

test('connections past the limit are refused with an error', async () => {
  const open = [await hello(), await hello(), await hello()];
  const extra = await connect();
  const f = await extra.next();
  assert.is(f.kind, FrameKind.Error);
  assert.match(JSON.parse(f.payload.toString()).message, /too many connections/);
  assert.ok(await closedSoon(extra));
  for (const c of open) c.socket.destroy();
  await new Promise((r) => setTimeout(r, 50));
  assert.is(server.connectionCount, 0);
});

test('mapShared checks its arguments and the file size', () => {
  const native = requireNative() as unknown as { mapShared: (...a: unknown[]) => ArrayBuffer };
  for (const args of [[], [1, 2], ['/dev/null'], ['/dev/null', -1], ['/dev/null', 1.5]]) {
    assert.throws(() => native.mapShared(...args), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_ARG', JSON.stringify(args));
  }
  assert.throws(() => native.mapShared('/nonexistent/x', 4096), (e: Error & { code?: string }) => e.code === 'ERR_MAP' && /cannot open/.test(e.message));
  const f = join(dir, 'small');
  writeFileSync(f, Buffer.alloc(100));
  assert.throws(() => native.mapShared(f, 4096), (e: Error) => /fewer than the 4096/.test(e.message));
  const ab = native.mapShared(f, 100);
  assert.is(ab.byteLength, 100);
});

test.run();
