/**
 * The tcp data-plane server's limits against hostile or broken peers, on loopback with small
 * limits: nothing is allocated for a peer before HELLO, unfinished and trickling frames and silent
 * connections are closed by their deadlines, connections are capped, and answers that peers do
 * not read are budgeted before they are made.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { memoryLogger } from '../helpers/log.js';
import { TCP_WIRE, TcpTransport, decodeTcpAddress, decodeTcpDescriptor } from '../../src/transport/tcp/index.js';
import { TransportError, type TcpServerLimits } from '../../src/transport/types.js';
import { closedByPeer, rawConnect, rawHello, rawRequest, within } from './tcp-raw.js';

const MiB = 1 << 20;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Live JS memory (heap + Buffers) after a full collection: what the server holds on to. */
async function liveBytes(): Promise<number> {
  await sleep(200); // sockets closed just before are let go
  gc();
  gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
}


interface Node {
  node: TcpTransport;
  port: number;
  regionId: number;
  token: Uint8Array;
  logs: string[];
}

async function publisher(limits: Partial<TcpServerLimits>, regionBytes = MiB): Promise<Node> {
  const { lines: logs, logger } = memoryLogger();
  const node = await TcpTransport.open({ protocol: 'tcp', tcpLimits: limits, logger });
  const region = node.allocate(regionBytes);
  region.bytes.fill(0x3c);
  const d = decodeTcpDescriptor(region.descriptor());
  return { node, port: decodeTcpAddress(node.address()).port, regionId: d.regionId, token: d.token, logs };
}

/** A READ frame asking for `ops` ops of `len` bytes each (offsets spread over `regionBytes`). */
function bigRead(id: number, regionId: number, token: Uint8Array, ops: number, len: number, regionBytes: number): Buffer {
  const quads: number[][] = [];
  for (let i = 0; i < ops; i++) quads.push([(i * len) % regionBytes, len]);
  return rawRequest(TCP_WIRE.kinds.read, id, ops, 0, regionId, token, quads);
}

/** The header and the first 1000 bytes of the op list of a READ frame of 65 536 ops. */
function unfinishedFrame(regionId: number, token: Uint8Array): Buffer {
  const header = rawRequest(TCP_WIRE.kinds.read, 1, TCP_WIRE.maxFrameOps, 0, regionId, token);
  return Buffer.concat([header, Buffer.alloc(1000)]);
}

/** Consumes `n` answers from a raw socket without keeping them; resolves with their statuses. */
function drainAnswers(s: net.Socket, n: number, ms: number): Promise<number[]> {
  const statuses: number[] = [];
  let header = Buffer.alloc(0);
  let bodyLeft = 0;
  return within(
    new Promise<number[]>((resolve, reject) => {
      const onData = (chunk: Buffer): void => {
        let pos = 0;
        while (pos < chunk.length) {
          if (bodyLeft > 0) {
            const k = Math.min(bodyLeft, chunk.length - pos);
            bodyLeft -= k;
            pos += k;
          } else {
            const k = Math.min(TCP_WIRE.responseHeaderBytes - header.length, chunk.length - pos);
            header = Buffer.concat([header, chunk.subarray(pos, pos + k)]);
            pos += k;
            if (header.length === TCP_WIRE.responseHeaderBytes) {
              statuses.push(header[6]);
              bodyLeft = header.readUInt32LE(12) + header.readUInt32LE(16); // padding, then the body
              header = Buffer.alloc(0);
            }
          }
          if (statuses.length === n && bodyLeft === 0) {
            s.off('data', onData);
            resolve(statuses);
            return;
          }
        }
      };
      s.on('data', onData);
      s.once('close', () => reject(new Error(`the socket closed after ${statuses.length} of ${n} answers`)));
      s.resume();
    }),
    ms,
    `${n} answers`,
  );
}

test('before HELLO only a HELLO is accepted: unfinished large frames pin no memory and are closed at once', async () => {
  const p = await publisher({ helloTimeoutMs: 3_000, idleTimeoutMs: 3_000 });
  const socks: net.Socket[] = [];
  try {
    const frame = unfinishedFrame(p.regionId, p.token); // even with the right token
    const before = await liveBytes();
    for (let i = 0; i < 48; i++) {
      const s = await rawConnect(p.port);
      socks.push(s);
      s.write(frame);
    }
    await sleep(500);
    const grown = (await liveBytes()) - before;
    assert.ok(grown < 16 * MiB, `48 unfinished 1 MiB frames before HELLO hold ${(grown / MiB).toFixed(1)} MiB`);
    await Promise.all(socks.map((s) => closedByPeer(s, 2_000)));
    assert.ok(p.logs.some((l) => /the first frame must be HELLO/.test(l)), JSON.stringify(p.logs.slice(0, 3)));
  } finally {
    for (const s of socks) s.destroy();
    await p.node.close();
  }
});

test('after HELLO, a forged-token frame trickling in pins no memory and is closed after the idle timeout', async () => {
  const p = await publisher({ helloTimeoutMs: 5_000, idleTimeoutMs: 600 });
  const socks: net.Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    const frame = unfinishedFrame(p.regionId, new Uint8Array(randomBytes(16)));
    const before = await liveBytes();
    for (let i = 0; i < 32; i++) {
      const s = await rawHello(p.port);
      socks.push(s);
      s.write(frame);
      // A byte every 100 ms: the frame keeps growing, never completes.
      timers.push(setInterval(() => s.writable && s.write(Buffer.alloc(1)), 100));
    }
    await sleep(300);
    const grown = (await liveBytes()) - before;
    assert.ok(grown < 16 * MiB, `32 unfinished forged frames hold ${(grown / MiB).toFixed(1)} MiB`);
    await Promise.all(socks.map((s) => closedByPeer(s, 5_000)));
    assert.ok(p.logs.some((l) => /no complete frame for \d+ ms/.test(l)), JSON.stringify(p.logs.slice(0, 3)));
  } finally {
    for (const t of timers) clearInterval(t);
    for (const s of socks) s.destroy();
    await p.node.close();
  }
});

test('200 half-open connections (silent, or silent after HELLO) are closed within their deadlines', async () => {
  const p = await publisher({ helloTimeoutMs: 500, idleTimeoutMs: 800, maxUnauthenticated: 1024 }); // deadlines, not eviction (tcp-fairness.test.ts)
  const socks: net.Socket[] = [];
  try {
    for (let i = 0; i < 150; i++) socks.push(await rawConnect(p.port));
    for (let i = 0; i < 50; i++) socks.push(await rawHello(p.port));
    const t0 = Date.now();
    await Promise.all(socks.map((s) => closedByPeer(s, 8_000)));
    assert.ok(Date.now() - t0 < 8_000);
    assert.ok(p.logs.some((l) => /no HELLO within 500 ms of connecting/.test(l)), JSON.stringify(p.logs.slice(0, 3)));
    // The server still serves.
    const b = await TcpTransport.open({ protocol: 'tcp' });
    try {
      await b.connect(p.node.address());
    } finally {
      await b.close();
    }
  } finally {
    for (const s of socks) s.destroy();
    await p.node.close();
  }
});

test('connections over maxConnections are refused; freeing one lets a new one in', async () => {
  const p = await publisher({ maxConnections: 8 });
  const b = await TcpTransport.open({ protocol: 'tcp', timeoutMs: 2_000 });
  const socks: net.Socket[] = [];
  try {
    for (let i = 0; i < 7; i++) socks.push(await rawHello(p.port));
    const ep = await b.connect(p.node.address()); // the 8th
    const extra = await rawConnect(p.port);
    await closedByPeer(extra, 3_000);
    let refused: unknown = null;
    await b.connect(p.node.address()).catch((err: unknown) => (refused = err));
    assert.instance(refused, TransportError);
    assert.is((refused as TransportError).code, 'ERR_CONNECT');
    assert.ok(p.logs.some((l) => /refused .*connection.* limit of 8/.test(l)), JSON.stringify(p.logs));
    assert.is(ep.failure, null, 'connections within the limit are untouched');
    socks.pop()?.destroy();
    const until = Date.now() + 5_000;
    let ok = false;
    while (!ok && Date.now() < until) {
      ok = await b.connect(p.node.address()).then(
        () => true,
        () => false,
      );
      if (!ok) await sleep(50);
    }
    assert.ok(ok, 'a slot freed is a slot available');
  } finally {
    for (const s of socks) s.destroy();
    await b.close();
    await p.node.close();
  }
});

test('peers that do not read their READ answers: answers are budgeted before they are made, then delivered', async () => {
  const region = 64 * MiB;
  const p = await publisher({ maxQueuedAnswerBytes: 16 * MiB, maxTotalAnswerBytes: 32 * MiB }, region);
  const socks: net.Socket[] = [];
  try {
    // 6 frames of 64 KiB per connection, each asking for 16 MiB (4096 ops of 4 KiB).
    const frames = Array.from({ length: 6 }, (_, i) => bigRead(i + 1, p.regionId, p.token, 4096, 4096, region));
    const burst = Buffer.concat(frames);
    for (let i = 0; i < 3; i++) socks.push(await rawHello(p.port));
    const before = await liveBytes();
    for (const s of socks) s.write(burst);
    await sleep(1_500);
    const grown = (await liveBytes()) - before;
    assert.ok(grown < 100 * MiB, `3 non-reading connections with 6 x 16 MiB READs grew the publisher by ${(grown / MiB).toFixed(1)} MiB`);
    const stats = p.node.serverStats();
    assert.ok(stats.queuedAnswerBytes <= 32 * MiB + MiB, `queued ${stats.queuedAnswerBytes}`);
    // Backpressure, not loss: once read, every answer arrives, on every connection.
    const all = await Promise.all(socks.map((s) => drainAnswers(s, 6, 60_000)));
    for (const statuses of all) assert.equal(statuses, [0, 0, 0, 0, 0, 0]);
    assert.is(p.node.serverStats().queuedAnswerBytes, 0);
  } finally {
    for (const s of socks) s.destroy();
    await p.node.close();
  }
});

test('forged-token READs whose errors are never read: queued errors stay bounded', async () => {
  const p = await publisher({ maxQueuedAnswerBytes: MiB });
  const socks: net.Socket[] = [];
  try {
    const forged = new Uint8Array(randomBytes(16));
    const one = rawRequest(TCP_WIRE.kinds.read, 1, 1, 0, p.regionId, forged, [[0, 4096]]);
    const n = 200_000;
    const burst = Buffer.alloc(one.length * n);
    for (let i = 0; i < n; i++) one.copy(burst, i * one.length);
    const s = await rawHello(p.port);
    socks.push(s);
    const before = await liveBytes();
    s.write(burst);
    await sleep(2_000);
    const grown = (await liveBytes()) - before;
    assert.ok(grown < 16 * MiB, `${n} unread forged-token errors grew the publisher by ${(grown / MiB).toFixed(1)} MiB`);
    assert.ok(p.node.serverStats().queuedAnswerBytes <= 2 * MiB, `queued ${p.node.serverStats().queuedAnswerBytes}`);
    // Then read: every error arrives, in order.
    const statuses = await drainAnswers(s, n, 60_000);
    assert.ok(statuses.every((x) => x === TCP_WIRE.status.badRkey));
  } finally {
    for (const s of socks) s.destroy();
    await p.node.close();
  }
});

test('limits: defaults exported, bad values refused', async () => {
  const { TCP_SERVER_LIMITS } = await import('../../src/transport/tcp/index.js');
  assert.ok(TCP_SERVER_LIMITS.helloTimeoutMs > 0 && TCP_SERVER_LIMITS.maxConnections > 0);
  for (const bad of [{ helloTimeoutMs: 0 }, { idleTimeoutMs: -1 }, { maxConnections: 1.5 }, { maxQueuedAnswerBytes: Number.NaN }, { maxTotalAnswerBytes: 10 }]) {
    let err: unknown = null;
    await TcpTransport.open({ protocol: 'tcp', tcpLimits: bad }).then((n) => n.close(), (e: unknown) => (err = e));
    assert.instance(err, TransportError, JSON.stringify(bad));
    assert.is((err as TransportError).code, 'ERR_INVALID_ARG');
    assert.match((err as Error).message, /tcpLimits\./);
  }
});

test.run();
