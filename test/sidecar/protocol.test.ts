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
import { BINARY_HEADER_BYTES, SIDECAR_PROTOCOL } from '../../src/sidecar/protocol.js';
import { FrameDecoder, FrameKind, encodeFrame, encodeRawFrame, type Frame } from '../../src/framing.js';
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

interface BinaryRequest {
  op: 'exists' | 'get' | 'set';
  keys: string[];
  offsets?: number[];
  /** One length for all keys, or one per key (flag 2). */
  length?: number | number[];
  /** One pool, or one per key (flag 1). */
  pool?: number | number[];
  deadline?: number;
  /** Raw key bytes instead of the keys joined by '\n'. */
  keyBytes?: Buffer;
  count?: number;
}

const OPS = { exists: 0x81, get: 0x82, set: 0x83 } as const;

/** A binary exists/get/set payload (protocol.ts's layout), with overrides to forge bad ones. */
function binaryPayload(r: BinaryRequest): Buffer {
  const io = r.op !== 'exists';
  const keys = r.keyBytes ?? Buffer.from(r.keys.join('\n'));
  const n = r.count ?? r.keys.length;
  const perLength = Array.isArray(r.length);
  const perPool = Array.isArray(r.pool);
  const parts: Buffer[] = [];
  const h = Buffer.alloc(BINARY_HEADER_BYTES);
  h[0] = OPS[r.op];
  h[1] = (perPool ? 1 : 0) | (perLength ? 2 : 0);
  h.writeUInt32LE(n, 4);
  h.writeBigUInt64LE(BigInt(r.deadline ?? 0), 8);
  h.writeUInt32LE(keys.length, 16);
  h.writeUInt32LE(perPool ? 0 : ((r.pool as number | undefined) ?? 0), 20);
  h.writeBigUInt64LE(BigInt(perLength ? 0 : ((r.length as number | undefined) ?? 0)), 24);
  parts.push(h);
  const u64s = (xs: number[]) => {
    const b = Buffer.alloc(8 * xs.length);
    xs.forEach((x, i) => b.writeBigUInt64LE(BigInt(x), 8 * i));
    return b;
  };
  if (io) parts.push(u64s(r.offsets ?? []));
  if (perLength) parts.push(u64s(r.length as number[]));
  if (perPool) {
    const b = Buffer.alloc(4 * (r.pool as number[]).length);
    (r.pool as number[]).forEach((x, i) => b.writeUInt32LE(x, 4 * i));
    parts.push(b);
  }
  parts.push(keys);
  return Buffer.concat(parts);
}

/** Sends one raw payload as a request; the answer frame. */
async function rawCall(c: Client, payload: Buffer): Promise<Frame> {
  c.socket.write(encodeRawFrame(FrameKind.Request, nextId++, payload));
  return c.next();
}

/** The bits of a binary answer ('1'/'0' per key), after checking its op byte. */
function binaryBits(f: Frame, op: keyof typeof OPS): string {
  assert.is(f.kind, FrameKind.Response, f.kind === FrameKind.Error ? f.payload.toString() : '');
  assert.is(f.payload[0], OPS[op]);
  return f.payload.subarray(1).toString('latin1');
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

test('a client of protocol 1 gets a clear error: this sidecar speaks protocol 2', async () => {
  assert.is(SIDECAR_PROTOCOL, 'peercache-sidecar/2');
  const c = await connect();
  const r = await c.call({ op: 'hello', protocol: 'peercache-sidecar/1', pid: process.pid });
  assert.is(r.kind, FrameKind.Error);
  assert.is(r.body.fatal, true);
  assert.match(String(r.body.message), /protocol "peercache-sidecar\/1" not supported \(this sidecar speaks peercache-sidecar\/2\)/);
  assert.ok(await closedSoon(c));
  // A binary request before hello is refused like any other.
  const d = await connect();
  const f = await rawCall(d, binaryPayload({ op: 'exists', keys: ['a'] }));
  assert.is(f.kind, FrameKind.Error);
  assert.match(JSON.parse(f.payload.toString()).message, /first request must be hello/);
  assert.ok(await closedSoon(d));
  // So is a malformed one: no hello, no answer to what it asked.
  const e = await connect();
  const g = await rawCall(e, Buffer.from([0x82, 0, 0]));
  assert.is(g.kind, FrameKind.Error);
  assert.is(JSON.parse(g.payload.toString()).fatal, true);
  assert.match(JSON.parse(g.payload.toString()).message, /first request must be hello/);
  assert.ok(await closedSoon(e));
});

test('binary exists: answered with the op byte and one byte per key', async () => {
  const c = await hello();
  try {
    assert.is(binaryBits(await rawCall(c, binaryPayload({ op: 'exists', keys: ['nope-1', 'nope-2'] })), 'exists'), '00');
    assert.is(binaryBits(await rawCall(c, binaryPayload({ op: 'exists', keys: [] })), 'exists'), '');
    assert.is(binaryBits(await rawCall(c, binaryPayload({ op: 'exists', keys: ['clé-ü'], deadline: Date.now() + 5000 })), 'exists'), '0');
  } finally {
    c.socket.destroy();
  }
});

test('malformed binary requests are answered with an error naming the field; the connection stays usable', async () => {
  const c = await hello();
  try {
    const ex = binaryPayload({ op: 'exists', keys: ['a', 'b'] });
    const get = (over: Partial<BinaryRequest> = {}) => binaryPayload({ op: 'get', keys: ['a', 'b'], offsets: [0, 4096], length: 4096, pool: 0, ...over });
    const patch = (b: Buffer, at: number, v: number, bytes = 1) => {
      const x = Buffer.from(b);
      x.writeUIntLE(v, at, bytes);
      return x;
    };
    const hiWord = (b: Buffer, at: number) => patch(b, at + 4, 0x0020_0000, 4); // 2^53 and up
    const bad: [string, Buffer, RegExp][] = [
      ['unknown op', Buffer.from([0x90, 0, 0, 0]), /unknown binary op 0x90/],
      ['short header', ex.subarray(0, 20), /shorter than the 32-byte header/],
      ['reserved bytes', patch(ex, 2, 1), /bytes 2\.\.3 must be 0/],
      ['count past the limit', binaryPayload({ op: 'exists', keys: ['a', 'b', 'c', 'd', 'e'] }), /5 keys in one request; at most 4/],
      ['exists: count larger than the keys', patch(ex, 4, 3, 4), /2 keys in the key bytes, 3 in the header/],
      ['get: count larger than the body', patch(get(), 4, 3, 4), /get: 51 bytes, but 3 keys with 3 key bytes make 59/],
      ['get: count smaller than the body', patch(get(), 4, 1, 4), /get: 51 bytes, but 1 keys with 3 key bytes make 43/],
      ['truncated body', ex.subarray(0, ex.length - 1), /bytes, but 2 keys with 3 key bytes make 35/],
      ['a byte too many', Buffer.concat([ex, Buffer.from('x')]), /bytes, but 2 keys/],
      ['key bytes larger than the body', patch(ex, 16, 1000, 4), /but 2 keys with 1000 key bytes/],
      ['fewer keys than the count', binaryPayload({ op: 'exists', keys: ['a'], count: 2, keyBytes: Buffer.from('ab') }), /1 keys in the key bytes, 2 in the header/],
      ['an empty key', binaryPayload({ op: 'exists', keys: ['a', ''] }), /keys\[1\] must be a non-empty string/],
      ['a key too long', binaryPayload({ op: 'exists', keys: ['x'.repeat(600)] }), /at most 512 characters/],
      ['keys that are not UTF-8', binaryPayload({ op: 'exists', keys: ['a'], keyBytes: Buffer.from([0x61, 0xff, 0xfe]) }), /not valid UTF-8/],
      ['key bytes without keys', binaryPayload({ op: 'exists', keys: [], keyBytes: Buffer.from('a') }), /key bytes without keys/],
      ['exists with flags', patch(ex, 1, 2), /exists: flags, pool and length must be 0/],
      ['a deadline past 2^53', hiWord(ex, 8), /exists\.deadline must be an integer/],
      ['a deadline passed', binaryPayload({ op: 'exists', keys: ['a'], deadline: Date.now() - 1 }), /too late to start/],
      ['unknown flags', patch(get(), 1, 4), /unknown flags 0x4/],
      ['a pool past the limit', get({ pool: 16 }), /get\.pool must be an integer in 0\.\.15/],
      ['a per-key pool past the limit', get({ pool: [0, 99] }), /get\.pool\[1\] must be an integer/],
      ['a pool with per-key pools', patch(get({ pool: [0, 0] }), 20, 1, 4), /pool must be 0 when each key names its pool/],
      ['a length of 0', get({ length: 0 }), /get\.length must be an integer in 1\.\./],
      ['a per-key length of 0', get({ length: [4096, 0] }), /get\.lengths\[1\] must be an integer in 1\.\./],
      ['a length with per-key lengths', patch(get({ length: [1, 1] }), 24, 5, 4), /length must be 0 when each key has its own/],
      ['an offset past 2^47', get({ offsets: [0, 2 ** 47 + 1] }), /get\.offsets\[1\] must be an integer in 0\.\.140737488355328/],
      ['an offset past 2^53', hiWord(get(), 40), /get\.offsets\[1\] must be an integer/],
      ['offsets missing (count and body disagree)', binaryPayload({ op: 'set', keys: ['a', 'b'], offsets: [0], length: 1 }), /but 2 keys with 3 key bytes make/],
      ['an unregistered pool', get(), /pool 0 is not registered on this connection/],
    ];
    for (const [what, payload, re] of bad) {
      const f = await rawCall(c, payload);
      assert.is(f.kind, FrameKind.Error, what);
      const body = JSON.parse(f.payload.toString());
      assert.is(body.fatal, false, what);
      assert.match(String(body.message), re, `${what}: ${body.message}`);
    }
    assert.is(binaryBits(await rawCall(c, ex), 'exists'), '00', 'still usable');
  } finally {
    c.socket.destroy();
  }
});

test('random binary payloads never crash the sidecar: each gets an answer or an error', async () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const c = await hello();
  try {
    const good = binaryPayload({ op: 'get', keys: ['k1', 'k2', 'k3'], offsets: [0, 8, 16], length: [8, 8, 8], pool: [0, 0, 0] });
    for (let i = 0; i < 300; i++) {
      let p: Buffer;
      if (i % 2 === 0) {
        // A valid request with a few bytes changed, or cut short.
        p = Buffer.from(good);
        for (let k = 0; k < 1 + Math.floor(rnd() * 3); k++) p[Math.floor(rnd() * p.length)] = Math.floor(rnd() * 256);
        if (rnd() < 0.3) p = p.subarray(0, Math.floor(rnd() * p.length));
        if (p.length === 0) p = Buffer.from([0x82]);
        p[0] = 0x81 + Math.floor(rnd() * 3);
      } else {
        p = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 120) }, () => Math.floor(rnd() * 256)));
        p[0] = 0x80 | p[0];
      }
      const f = await rawCall(c, p);
      assert.ok(f.kind === FrameKind.Error || f.kind === FrameKind.Response, `payload ${p.toString('hex')}`);
      if (f.kind === FrameKind.Error) assert.is(JSON.parse(f.payload.toString()).fatal, false, p.toString('hex'));
    }
    assert.not.ok(c.closed);
    assert.is(binaryBits(await rawCall(c, binaryPayload({ op: 'exists', keys: ['z'] })), 'exists'), '0');
  } finally {
    c.socket.destroy();
  }
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
    assert.match(String(refused.body.message), /fd \d+ of process \d+ is not shared memory \(a memfd, or a file on tmpfs or hugetlbfs such as \/dev\/shm\)/);
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
    // The same through binary requests: ranges checked against the pool, bytes through the mapping.
    const outsideBin = await rawCall(c, binaryPayload({ op: 'get', keys: ['k'], offsets: [64 * 1024 - 100], length: 4096, pool }));
    assert.is(outsideBin.kind, FrameKind.Error);
    assert.match(JSON.parse(outsideBin.payload.toString()).message, /key 0 \(offset 65436, length 4096\) lies outside its pool/);
    const outsidePerKey = await rawCall(c, binaryPayload({ op: 'set', keys: ['a', 'b'], offsets: [0, 60 * 1024], length: [4096, 8192], pool: [pool, pool] }));
    assert.match(JSON.parse(outsidePerKey.payload.toString()).message, /key 1 \(offset 61440, length 8192\) lies outside its pool/);
    const otherPool = await rawCall(c, binaryPayload({ op: 'get', keys: ['a'], offsets: [0], length: 4096, pool: pool + 1 }));
    assert.match(JSON.parse(otherPool.payload.toString()).message, /pool 1 is not registered/);
    const tooBigBin = await rawCall(c, binaryPayload({ op: 'set', keys: ['k'], offsets: [0], length: 8192, pool }));
    assert.match(JSON.parse(tooBigBin.payload.toString()).message, /slots hold 4096/);
    const fileNow = readFileSync(file);
    fileNow.fill(0x22, 12288, 16384);
    writeFileSync(file, fileNow);
    assert.is(binaryBits(await rawCall(c, binaryPayload({ op: 'set', keys: ['bin-é'], offsets: [12288], length: 4096, pool })), 'set'), '1');
    assert.is(binaryBits(await rawCall(c, binaryPayload({ op: 'exists', keys: ['bin-é', 'k1', 'nope'] })), 'exists'), '110');
    assert.is(binaryBits(await rawCall(c, binaryPayload({ op: 'get', keys: ['nope', 'bin-é'], offsets: [16384, 20480], length: [4096, 4096], pool: [pool, pool] })), 'get'), '01');
    const after = readFileSync(file);
    assert.ok(after.subarray(20480, 24576).every((b) => b === 0x22), 'the binary get landed in the client file');
    assert.ok(after.subarray(16384, 20480).every((b) => b === 0x5a), 'its miss left the page alone');
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

test('pipelined requests are answered in order: the first served at once, the next behind it', async () => {
  const c = await hello();
  try {
    c.socket.write(
      Buffer.concat([
        encodeFrame(FrameKind.Request, 500, { op: 'clear' }),
        encodeRawFrame(FrameKind.Request, 501, binaryPayload({ op: 'exists', keys: ['p1'] })),
      ]),
    );
    const first = await c.next();
    const second = await c.next();
    assert.equal([first.id, second.id], [500, 501]);
    assert.is(first.kind, FrameKind.Response);
    assert.is(binaryBits(second, 'exists'), '0');
  } finally {
    c.socket.destroy();
  }
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
  // A file on disk is refused whatever its size; shared memory (here a /dev/shm file) is mapped.
  const onDisk = join(dir, 'small');
  writeFileSync(onDisk, Buffer.alloc(100));
  assert.throws(() => native.mapShared(onDisk, 100), (e: Error & { code?: string }) => e.code === 'ERR_NOT_SHARED_MEMORY' && /is not shared memory/.test(e.message));
  const f = `/dev/shm/pc-sidecar-small-${process.pid}`;
  writeFileSync(f, Buffer.alloc(100));
  try {
    assert.throws(() => native.mapShared(f, 4096), (e: Error) => /fewer than the 4096/.test(e.message));
    const ab = native.mapShared(f, 100);
    assert.is(ab.byteLength, 100);
  } finally {
    rmSync(f, { force: true });
  }
});

test.run();
