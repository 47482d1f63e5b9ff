/**
 * The directory's semantics on both kinds (the embedded server, and RedisDirectory on a real
 * redis-server), then the embedded server and client on their own: frame limits, auth, malformed
 * control messages, timeouts, connection loss, a SIGKILLed member, openDirectory. Redis on its own
 * (URLs, liveness by key expiry, restarts): redis-directory.test.ts.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PeercacheError } from '../../src/errors.js';
import { flagFor } from '../../src/cli/flags.js';
import { memoryLogger } from '../helpers/log.js';
import net from 'node:net';
import { DirectoryServer } from '../../src/store/directory/server.js';
import { DirectoryClient } from '../../src/store/directory/client.js';
import type { DirectoryClientOptions } from '../../src/store/directory/client.js';
import { openDirectory, parseDiscoveryAddr } from '../../src/store/directory/open.js';
import { RedisDirectory } from '../../src/store/directory/redis.js';
import { FrameDecoder, FrameKind, PROTOCOL_VERSION, decodeJson, encodeFrame, encodeRawFrame } from '../../src/framing.js';
import type { Frame } from '../../src/framing.js';
import type { Directory, DirectoryEvent, Location, NodeInfo } from '../../src/store/types.js';
import { spawnFixture } from '../helpers/child.js';
import { loc, nodeInfo, rejection, sleep, waitFor } from '../helpers/directory.js';
import { freePort } from '../helpers/ports.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

const FIXTURE = new URL('../fixtures/directory-node.ts', import.meta.url);

function connect(server: DirectoryServer, extra: Partial<DirectoryClientOptions> = {}): Promise<DirectoryClient> {
  return DirectoryClient.connect({ host: server.address.host, port: server.address.port, ...extra });
}


/** One directory for one test: its clients connect to it; close() ends it. */
interface Setup {
  connect(): Promise<Directory>;
  /** The embedded directory's server (its stats); null on Redis. */
  server: DirectoryServer | null;
  close(): Promise<void>;
}

interface Kind {
  name: 'embedded' | 'redis';
  /** A fresh directory; `redis` are options of the Redis URL. */
  open(redis?: Record<string, string | number>): Promise<Setup>;
  /** How long events may take to arrive. */
  waitMs: number;
}

let redis: RedisServer | undefined;
let prefixes = 0;

const kinds: Kind[] = [
  {
    name: 'embedded',
    waitMs: 3000,
    async open() {
      const server = await DirectoryServer.listen();
      return { connect: () => connect(server), server, close: () => server.close() };
    },
  },
  {
    name: 'redis',
    waitMs: 5000,
    async open(q = {}) {
      redis ??= await startRedis();
      // A prefix of its own: tests do not see each other's keys.
      const url = redis.urlWith({ prefix: `t${++prefixes}:`, ttl_ms: 1000, poll_ms: 100, ...q });
      return { connect: () => RedisDirectory.connect({ url }), server: null, close: async () => {} };
    },
  },
];

test.after(async () => {
  await redis?.stop();
});

for (const kind of kinds) {
  test(`${kind.name}: join, members, node; events node-joined and node-left`, async () => {
    const d = await kind.open();
    const a = await d.connect();
    const b = await d.connect();
    try {
      const aEvents: DirectoryEvent[] = [];
      a.subscribe((e) => aEvents.push(e));
      assert.equal(await a.join(nodeInfo('a')), [nodeInfo('a')]);
      const members = await b.join(nodeInfo('b'));
      assert.equal(members.map((m) => m.nodeId).sort(), ['a', 'b']);
      assert.equal(await a.node('b'), nodeInfo('b'));
      assert.is(await a.node('nobody'), null);
      assert.is((await b.members()).length, 2);
      await waitFor('node-joined', () => aEvents.length === 1, kind.waitMs);
      assert.equal(aEvents[0], { type: 'node-joined', node: nodeInfo('b') });
      await b.publish([{ key: 'kb', location: loc('b', 0, 1) }]);
      await b.close();
      if (kind.name === 'redis') {
        // Redis: close() itself deletes the node and its entries; the others' poll sees it later.
        assert.equal(await a.lookup(['kb']), [null], "a closed node's entries are gone at once");
        assert.is(await a.node('b'), null);
      }
      await waitFor('node-left', () => aEvents.length === 2, kind.waitMs);
      if (d.server) {
        assert.equal(aEvents[1], { type: 'node-left', nodeId: 'b', reason: 'left' });
        assert.equal(await a.lookup(['kb']), [null], "a closed node's entries are gone");
        assert.is(await a.node('b'), null);
        assert.equal(d.server.stats().members, 1);
      } else {
        assert.is(aEvents[1].type, 'node-left');
        assert.is((aEvents[1] as { nodeId: string }).nodeId, 'b');
      }
      // A closed client fails fast.
      assert.match((await rejection(b.lookup(['kb']))).message, 'directory client is closed');
    } finally {
      await a.close();
      await b.close();
      await d.close();
    }
  });

  test(`${kind.name}: publish / lookup / remove semantics: first publisher wins, generations, conditional removal`, async () => {
    const d = await kind.open();
    const a = await d.connect();
    const b = await d.connect();
    try {
      await a.join(nodeInfo('a'));
      await b.join(nodeInfo('b'));
      // First live publisher wins; the second publisher is refused.
      assert.equal(await a.publish([{ key: 'k1', location: loc('a', 0, 5) }, { key: 'k2', location: loc('a', 4096, 5) }]), [true, true]);
      assert.equal(await b.publish([{ key: 'k1', location: loc('b', 0, 9) }, { key: 'k3', location: loc('b', 0, 1) }]), [false, true]);
      assert.equal(await b.lookup(['k1', 'k2', 'k3', 'missing']), [loc('a', 0, 5), loc('a', 4096, 5), loc('b', 0, 1), null]);
      // The same node replaces with a newer (or the same) generation, not with an older one.
      assert.equal(await a.publish([{ key: 'k1', location: loc('a', 8192, 7) }]), [true]);
      assert.equal(await a.publish([{ key: 'k1', location: loc('a', 0, 6) }]), [false]);
      assert.equal(await a.publish([{ key: 'k1', location: loc('a', 8192, 7) }]), [true], 'republishing is idempotent');
      assert.equal(await a.lookup(['k1']), [loc('a', 8192, 7)]);
      // Entries for a node that is not a live member are refused.
      assert.equal(await a.publish([{ key: 'k9', location: loc('ghost', 0, 1) }]), [false]);
      assert.equal(await a.lookup(['k9']), [null]);
      // Conditional removal: a slow remover with an old generation (or the wrong owner) changes nothing.
      await b.remove([
        { key: 'k1', nodeId: 'b', generation: 7 },
        { key: 'k1', nodeId: 'a', generation: 5 },
        { key: 'missing', nodeId: 'a', generation: 1 },
      ]);
      assert.equal(await a.lookup(['k1']), [loc('a', 8192, 7)]);
      // Another member cannot remove a's entry even with the owner and generation a lookup gave it.
      await b.remove([{ key: 'k1', nodeId: 'a', generation: 7 }]);
      assert.equal(await a.lookup(['k1']), [loc('a', 8192, 7)], 'a member removed another member\'s entry');
      await a.remove([{ key: 'k1', nodeId: 'a', generation: 7 }]);
      assert.equal(await a.lookup(['k1', 'k2']), [null, loc('a', 4096, 5)]);
      // Once removed, another node may publish the key.
      assert.equal(await b.publish([{ key: 'k1', location: loc('b', 0, 2) }]), [true]);
      // When a leaves, its entries go and b may take them.
      await a.close();
      assert.equal(await b.lookup(['k1', 'k2', 'k3']), [loc('b', 0, 2), null, loc('b', 0, 1)]);
      assert.equal(await b.publish([{ key: 'k2', location: loc('b', 4096, 1) }]), [true]);
      if (d.server) {
        assert.is(d.server.stats().entries, 3);
      } else {
        // Empty batches, bad entries.
        assert.equal(await b.lookup([]), []);
        assert.equal(await b.publish([]), []);
        await b.remove([]);
        assert.match((await rejection(b.publish([{ key: 'x', location: loc('b', -1, 1) }]))).message, /non-negative integers/);
      }
    } finally {
      await a.close();
      await b.close();
      await d.close();
    }
  });

  test(`${kind.name}: a session publishes and removes only its own node's entries; one that never joined mutates nothing`, async () => {
    const d = await kind.open();
    const a = await d.connect();
    const b = await d.connect();
    const stranger = await d.connect();
    try {
      await a.join(nodeInfo('a'));
      await b.join(nodeInfo('b'));
      assert.equal(await a.publish([{ key: 'k', location: loc('a', 0, 3) }]), [true]);
      // b squats a's keys under a's nodeId with the largest generation: refused.
      const squat = { key: 'k2', location: loc('a', 0, Number.MAX_SAFE_INTEGER) };
      assert.equal(await b.publish([squat, { key: 'k', location: loc('a', 0, Number.MAX_SAFE_INTEGER) }, { key: 'kb', location: loc('b', 0, 1) }]), [false, false, true]);
      assert.equal(await a.publish([{ key: 'k2', location: loc('a', 4096, 1) }]), [true], "the owner's own publish must not be blocked");
      // A session that never joined can neither remove nor publish.
      const removal = stranger.remove([{ key: 'k', nodeId: 'a', generation: 3 }]);
      assert.match((await rejection(removal)).message, /not joined/);
      assert.match((await rejection(stranger.publish([{ key: 'k3', location: loc('a', 0, 9) }]))).message, /not joined/);
      assert.equal(await a.lookup(['k', 'k2', 'k3']), [loc('a', 0, 3), loc('a', 4096, 1), null]);
      assert.equal(await b.lookup(['kb']), [loc('b', 0, 1)]);
    } finally {
      await stranger.close();
      await a.close();
      await b.close();
      await d.close();
    }
  });

  test(`${kind.name}: a nodeId in use by a live member is refused; one node per client; the id is free once it left`, async () => {
    const d = await kind.open();
    const a = await d.connect();
    const b = await d.connect();
    try {
      await a.join(nodeInfo('same'));
      const err = await rejection(b.join(nodeInfo('same')));
      assert.match(err.message, kind.name === 'embedded' ? "nodeId 'same' is already in use by a live member" : 'nodeId same is already in use by a live member');
      // The connection stays usable.
      if (b instanceof DirectoryClient) assert.ok(b.isOpen);
      await b.join(nodeInfo('other'));
      assert.match((await rejection(b.join(nodeInfo('third')))).message, "already joined as 'other'");
      if (d.server) {
        assert.is((await b.members()).length, 2);
      } else {
        // A re-join from the same client updates the node's info.
        const updated = { ...nodeInfo('other'), attributes: { v: 2 } };
        assert.equal((await b.join(updated)).find((m) => m.nodeId === 'other'), updated);
      }
      await a.close();
      // Once the first one left, the id is free again.
      const c = await d.connect();
      await c.join(nodeInfo('same'));
      await c.close();
    } finally {
      await a.close();
      await b.close();
      await d.close();
    }
  });

  test(`${kind.name}: batches of 100k keys in one request, and many requests in flight`, async () => {
    // Redis: a TTL well above what 100k entries take on a 2-core machine: the heartbeat waits behind them.
    const d = await kind.open({ ttl_ms: 10_000, poll_ms: 500 });
    const a = await d.connect();
    try {
      await a.join(nodeInfo('a'));
      const n = 100_000;
      const entries = Array.from({ length: n }, (_, i) => ({ key: `sha256:${i.toString(16).padStart(64, '0')}`, location: loc('a', i * 4096, 1) }));
      const t0 = performance.now();
      const ok = await a.publish(entries);
      const t1 = performance.now();
      assert.is(ok.length, n);
      assert.ok(ok.every(Boolean));
      const found = await a.lookup(entries.map((e) => e.key));
      const t2 = performance.now();
      assert.is(found.length, n);
      for (let i = 0; i < n; i++) if (found[i]?.offset !== i * 4096) assert.unreachable(`key ${i}`);
      console.log(`    ${kind.name}: 100k publish ${(t1 - t0).toFixed(0)} ms, 100k lookup ${(t2 - t1).toFixed(0)} ms`);
      // Pipelining: many requests in flight, each answered with its own result.
      const results = await Promise.all(Array.from({ length: 500 }, (_, i) => a.lookup([entries[i * 7].key, 'nope'])));
      results.forEach((r, i) => assert.equal(r, [loc('a', i * 7 * 4096, 1), null]));
      if (!d.server) {
        await a.remove(entries.map((e) => ({ key: e.key, nodeId: 'a', generation: 1 })));
        assert.equal(await a.lookup([entries[0].key, entries[n - 1].key]), [null, null]);
      }
    } finally {
      await a.close();
      await d.close();
    }
  });
}

test('a request over the server frame limit is refused locally; a response over the client limit is refused, not fatal', async () => {
  const server = await DirectoryServer.listen({ maxFrameBytes: 4096 });
  const a = await connect(server, { maxFrameBytes: 2048 });
  try {
    await a.join(nodeInfo('a'));
    const big = Array.from({ length: 1000 }, (_, i) => `key-${i}`);
    const err = await rejection(a.lookup(big));
    assert.match(err.message, 'directory lookup request too large');
    assert.match(err.message, 'split the batch');
    // A request that fits but whose answer exceeds the client's limit.
    const entries = Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, location: loc('a', i, 1) }));
    await a.publish(entries);
    const err2 = await rejection(a.lookup(entries.map((e) => e.key)));
    assert.match(err2.message, 'lookup response too large');
    assert.ok(a.isOpen);
    assert.equal(await a.lookup(['k1']), [loc('a', 1, 1)]);
  } finally {
    await a.close();
    await server.close();
  }
});

test('64 clients joining concurrently', async () => {
  const server = await DirectoryServer.listen();
  const clients: DirectoryClient[] = [];
  try {
    const watcher = await connect(server);
    clients.push(watcher);
    const joined = new Set<string>();
    watcher.subscribe((e) => {
      if (e.type === 'node-joined') joined.add(e.node.nodeId);
    });
    const results = await Promise.all(
      Array.from({ length: 64 }, async (_, i) => {
        const c = await connect(server);
        clients.push(c);
        const members = await c.join(nodeInfo(`n${i}`));
        await c.publish([{ key: `key-${i}`, location: loc(`n${i}`, 0, 1) }]);
        return members.length;
      }),
    );
    assert.ok(results.every((m) => m >= 1 && m <= 64));
    assert.is(results.filter((m) => m === 64).length, 1, 'exactly one joiner saw all 64');
    assert.is((await watcher.members()).length, 64);
    await waitFor('64 node-joined events', () => joined.size === 64);
    const found = await watcher.lookup(Array.from({ length: 64 }, (_, i) => `key-${i}`));
    assert.ok(found.every((l, i) => l?.nodeId === `n${i}`));
    assert.is(server.stats().connections, 65);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
  }
});

test('auth token: missing and wrong tokens are rejected, the right one accepted', async () => {
  const log = memoryLogger();
  const server = await DirectoryServer.listen({ authToken: 's3cret', logger: log.logger });
  try {
    const missing = await rejection(connect(server));
    assert.match(missing.message, 'authentication failed: missing token');
    assert.is((missing as { code?: string }).code, 'ERR_AUTH');
    const wrong = await rejection(connect(server, { authToken: 's3cre7' }));
    assert.match(wrong.message, 'authentication failed: wrong token');
    const ok = await connect(server, { authToken: 's3cret' });
    assert.equal(await ok.join(nodeInfo('a')), [nodeInfo('a')]);
    await ok.close();
    assert.equal(server.stats().framesRejected, { auth: 2 });
    assert.ok(log.lines.some((l) => /^warn: .*authentication failed: wrong token/.test(l)));
  } finally {
    await server.close();
  }
});

/** Opens a raw socket, sends `bytes`, and collects what comes back until the server closes it. */
async function rawExchange(port: number, bytes: Buffer[], timeoutMs = 3000): Promise<{ closed: boolean; frames: Frame[]; sentAll: boolean }> {
  const socket = net.connect({ host: '127.0.0.1', port });
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f), { role: 'client' });
  socket.on('data', (c: Buffer) => decoder.push(c));
  socket.on('error', () => {});
  await new Promise<void>((r) => socket.once('connect', () => r()));
  let sentAll = true;
  for (const b of bytes) {
    if (socket.destroyed) sentAll = false;
    else socket.write(b);
    await sleep(10);
  }
  const closed = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), timeoutMs);
    socket.once('close', () => {
      clearTimeout(t);
      resolve(true);
    });
    if (socket.destroyed) resolve(true);
  });
  socket.destroy();
  return { closed, frames, sentAll };
}

function hello(token?: string): Buffer {
  return encodeFrame(FrameKind.Request, 1, { op: 'hello', version: PROTOCOL_VERSION, token });
}

test('malformed control messages close only that connection, with a logged reason; the server keeps serving', async () => {
  const log = memoryLogger();
  const server = await DirectoryServer.listen({ authToken: 'tok', logger: log.logger });
  const port = server.address.port;
  const good = await connect(server, { authToken: 'tok' });
  try {
    await good.join(nodeInfo('good'));
    await good.publish([{ key: 'g', location: loc('good', 0, 1) }]);
    const oversized = encodeRawFrame(FrameKind.Request, 5, new Uint8Array(0));
    oversized.writeUInt32BE(0xfff0_0000, 0);
    const cases: { name: string; bytes: Buffer[]; reason: RegExp }[] = [
      { name: 'garbage bytes', bytes: [Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')], reason: /protocol version 47 not supported/ },
      { name: 'oversized frame header', bytes: [oversized], reason: /frame of 4293918720 bytes exceeds the limit of 262144 bytes/ },
      {
        name: 'wrong version',
        bytes: [encodeRawFrame(FrameKind.Request, 1, Buffer.from(JSON.stringify({ op: 'hello', version: 9 })), 9)],
        reason: /protocol version 9 not supported \(server speaks 1\)/,
      },
      { name: 'wrong version in hello body', bytes: [encodeFrame(FrameKind.Request, 1, { op: 'hello', version: 2, token: 'tok' })], reason: /protocol version 2 not supported \(server speaks 1\)/ },
      { name: 'wrong token', bytes: [hello('nope')], reason: /authentication failed: wrong token/ },
      { name: 'missing token', bytes: [hello()], reason: /authentication failed: missing token/ },
      { name: 'request before hello', bytes: [encodeFrame(FrameKind.Request, 1, { op: 'lookup', keys: ['g'] })], reason: /request 'lookup' before hello/ },
      { name: 'invalid JSON', bytes: [hello('tok'), encodeRawFrame(FrameKind.Request, 2, Buffer.from('{"op":"lookup",'))], reason: /invalid JSON payload/ },
      { name: 'unknown operation', bytes: [hello('tok'), encodeFrame(FrameKind.Request, 2, { op: 'frobnicate' })], reason: /unknown operation 'frobnicate'/ },
      { name: 'bad arguments', bytes: [hello('tok'), encodeFrame(FrameKind.Request, 2, { op: 'lookup', keys: 'g' })], reason: /keys must be an array/ },
      { name: 'response frame from a client', bytes: [hello('tok'), encodeFrame(FrameKind.Response, 2, {})], reason: /unexpected response frame from a client/ },
      { name: 'unknown frame kind', bytes: [encodeRawFrame(42, 1, Buffer.from('{}'))], reason: /unknown frame kind 42/ },
      { name: 'duplicate hello', bytes: [hello('tok'), hello('tok')], reason: /duplicate hello/ },
    ];
    for (const c of cases) {
      const before = log.lines.length;
      const { closed, frames } = await rawExchange(port, c.bytes);
      assert.ok(closed, `${c.name}: the connection is closed`);
      const logged = log.lines.slice(before);
      assert.ok(logged.some((l) => l.startsWith('warn: directory: closing connection') && c.reason.test(l)), `${c.name}: logged ${JSON.stringify(logged)}`);
      const err = frames.find((f) => f.kind === FrameKind.Error);
      assert.ok(err, `${c.name}: an error frame came before the close`);
      const body = decodeJson(err as Frame) as { message: string; fatal: boolean };
      assert.match(body.message, c.reason);
      assert.is(body.fatal, true);
      // The server still serves the good client, whose entries are intact.
      assert.equal(await good.lookup(['g']), [loc('good', 0, 1)], `${c.name}: server still serves`);
    }
    const stats = server.stats();
    assert.is(stats.framesRejected['bad-version'], 3);
    assert.is(stats.framesRejected.auth, 2);
    assert.is(stats.framesRejected.oversized, 1);
    assert.is(stats.framesRejected['unknown-op'], 1);
    // And new clients still get in.
    const late = await connect(server, { authToken: 'tok' });
    assert.is((await late.join(nodeInfo('late'))).length, 2);
    await late.close();
    assert.ok(good.isOpen);
  } finally {
    await good.close();
    await server.close();
  }
});

test('a hello may carry the node: hello + join in one round trip', async () => {
  const server = await DirectoryServer.listen();
  const watcher = await connect(server);
  try {
    const events: DirectoryEvent[] = [];
    watcher.subscribe((e) => events.push(e));
    const { closed, frames } = await rawExchange(server.address.port, [encodeFrame(FrameKind.Request, 1, { op: 'hello', version: PROTOCOL_VERSION, node: nodeInfo('raw') })], 300);
    assert.not.ok(closed, 'a well-behaved raw client stays connected');
    const body = decodeJson(frames[0]) as { version: number; members: NodeInfo[] };
    assert.is(frames[0].kind, FrameKind.Response);
    assert.is(body.version, PROTOCOL_VERSION);
    assert.equal(body.members, [nodeInfo('raw')]);
    await waitFor('events', () => events.length === 2);
    assert.equal(events[0], { type: 'node-joined', node: nodeInfo('raw') });
    assert.is(events[1].type, 'node-left');
    assert.match((events[1] as { reason: string }).reason, /^connection (closed|lost)/);
  } finally {
    await watcher.close();
    await server.close();
  }
});

test('an oversized header closes the connection without the body being sent', async () => {
  const log = memoryLogger();
  const server = await DirectoryServer.listen({ maxFrameBytes: 1024, logger: log.logger });
  try {
    const socket = net.connect({ host: '127.0.0.1', port: server.address.port });
    socket.on('error', () => {});
    socket.resume(); // read (and drop) the error frame, so the FIN is seen
    await new Promise<void>((r) => socket.once('connect', () => r()));
    const header = encodeRawFrame(FrameKind.Request, 1, new Uint8Array(0));
    header.writeUInt32BE(1025, 0);
    const t0 = Date.now();
    socket.write(header); // only the header: the server must not wait for 1025 bytes
    await new Promise<void>((r) => socket.once('close', () => r()));
    assert.ok(Date.now() - t0 < 1000);
    assert.ok(log.lines.some((l) => /frame of 1025 bytes exceeds the limit of 1024 bytes/.test(l)));
  } finally {
    await server.close();
  }
});

test('a connection that never says hello is closed after the idle timeout', async () => {
  const log = memoryLogger();
  const server = await DirectoryServer.listen({ idleTimeoutMs: 200, logger: log.logger });
  try {
    const t0 = Date.now();
    const { closed } = await rawExchange(server.address.port, []);
    assert.ok(closed);
    assert.ok(Date.now() - t0 < 1500, `closed after ${Date.now() - t0} ms`);
    assert.ok(log.lines.some((l) => /no hello within 200 ms/.test(l)));
    // A client with heartbeats faster than the idle timeout stays.
    const c = await connect(server, { heartbeatMs: 50 });
    await sleep(600);
    assert.ok(c.isOpen);
    assert.equal(await c.members(), []);
    await c.close();
  } finally {
    await server.close();
  }
});

/** A fake server that answers hello and then does what `onRequest` says (nothing by default). */
async function fakeServer(onRequest: (socket: net.Socket, frame: Frame) => void = () => {}): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    const decoder = new FrameDecoder((f) => {
      const body = decodeJson(f) as { op: string };
      if (body.op === 'hello') socket.write(encodeFrame(FrameKind.Response, f.id, { version: PROTOCOL_VERSION, maxFrameBytes: 1 << 24 }));
      else onRequest(socket, f);
    });
    socket.on('data', (c: Buffer) => decoder.push(c));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return {
    port: (srv.address() as net.AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

test('request timeout: a server that never answers makes the call reject in time, with a clear message', async () => {
  const fake = await fakeServer();
  const client = await DirectoryClient.connect({ port: fake.port, requestTimeoutMs: 300, heartbeatMs: 0 });
  try {
    const t0 = Date.now();
    const err = await rejection(client.lookup(['k']));
    const ms = Date.now() - t0;
    assert.match(err.message, `directory lookup timed out after 300 ms (server 127.0.0.1:${fake.port})`);
    assert.ok(ms >= 290 && ms < 1000, `rejected after ${ms} ms`);
  } finally {
    await client.close();
    await fake.close();
  }
  // A server that accepts but never answers hello: connect rejects at its deadline.
  const silent = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  try {
    const port = (silent.address() as net.AddressInfo).port;
    const t0 = Date.now();
    const err = await rejection(DirectoryClient.connect({ port, connectTimeoutMs: 300 }));
    assert.match(err.message, 'timed out after');
    assert.ok(Date.now() - t0 < 1000);
  } finally {
    silent.close();
  }
});

test('connection loss: pending requests reject with "directory connection lost", later calls fail fast', async () => {
  const fake = await fakeServer((socket) => socket.destroy());
  let lostReason = '';
  const client = await DirectoryClient.connect({ port: fake.port, heartbeatMs: 0, onConnectionLost: (r) => (lostReason = r) });
  try {
    const [e1, e2] = await Promise.all([rejection(client.lookup(['a'])), rejection(client.lookup(['b']))]);
    assert.match(e1.message, /^directory connection lost: /);
    assert.match(e2.message, /^directory connection lost: /);
    assert.ok(lostReason.length > 0);
    assert.not.ok(client.isOpen);
    const t0 = Date.now();
    const e3 = await rejection(client.members());
    assert.match(e3.message, /^directory connection lost: /);
    assert.ok(Date.now() - t0 < 50);
  } finally {
    await client.close();
    await fake.close();
  }
});

/** What a directory-node fixture prints once it joined and published. */
interface NodeReady {
  ready: boolean;
  served?: boolean;
  accepted?: number;
  error?: string;
}

test('a SIGKILLed member: its entries become misses at once, others get node-left, the server keeps serving', async () => {
  const server = await DirectoryServer.listen();
  const watcher = await connect(server);
  const child = spawnFixture(FIXTURE, ['join', `127.0.0.1:${server.address.port}`, 'victim', '1000']);
  try {
    await watcher.join(nodeInfo('watcher'));
    const events: DirectoryEvent[] = [];
    watcher.subscribe((e) => events.push(e));
    const r = (await child.ready) as unknown as NodeReady;
    assert.equal(r.accepted, 1000);
    const keys = Array.from({ length: 1000 }, (_, i) => `victim/k${i}`);
    assert.ok((await watcher.lookup(keys)).every((l) => l?.nodeId === 'victim'));
    const t0 = performance.now();
    child.proc.kill('SIGKILL');
    const left = await waitFor('node-left', () => events.find((e) => e.type === 'node-left'), 2000);
    const tEvent = performance.now() - t0;
    assert.equal(left, { type: 'node-left', nodeId: 'victim', reason: (left as { reason: string }).reason });
    assert.match((left as { reason: string }).reason, /connection/);
    await waitFor('misses', async () => (await watcher.lookup(keys)).every((l) => l === null), 2000);
    const tMiss = performance.now() - t0;
    console.log(`    SIGKILL → node-left ${tEvent.toFixed(1)} ms, → all misses ${tMiss.toFixed(1)} ms`);
    assert.ok(tMiss < 2000);
    assert.is(server.stats().entries, 0);
    assert.equal((await watcher.members()).map((m) => m.nodeId), ['watcher']);
    // The victim's id is free again, and the server still serves.
    const again = await connect(server);
    await again.join(nodeInfo('victim'));
    assert.equal(await again.publish([{ key: 'victim/k0', location: loc('victim', 0, 2) }]), [true]);
    await again.close();
  } finally {
    await child.kill('SIGKILL');
    await watcher.close();
    await server.close();
  }
});

test('openDirectory: the first serves, the second joins; closing the server fails the others fast', async () => {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const first = await openDirectory({ discoveryAddr: addr });
  let second: Awaited<ReturnType<typeof openDirectory>> | null = null;
  try {
    assert.ok(first.server, 'the first one serves');
    assert.is(first.server?.address.port, port);
    second = await openDirectory({ discoveryAddr: addr });
    assert.is(second.server, null, 'the second one joins');
    const events: DirectoryEvent[] = [];
    first.directory.subscribe((e) => events.push(e));
    await first.directory.join(nodeInfo('one'));
    await second.directory.join(nodeInfo('two'));
    await waitFor('node-joined on the serving node', () => events.length === 1);
    // Same semantics through the in-process short circuit and over the socket.
    assert.equal(await first.directory.publish([{ key: 'k', location: loc('one', 0, 1) }]), [true]);
    assert.equal(await second.directory.publish([{ key: 'k', location: loc('two', 0, 1) }, { key: 'k2', location: loc('two', 0, 1) }]), [false, true]);
    const seen = await first.directory.lookup(['k', 'k2', 'x']);
    assert.equal(seen, [loc('one', 0, 1), loc('two', 0, 1), null]);
    (seen[0] as Location).offset = 999; // results are copies: mutating one does not touch the directory
    assert.equal(await second.directory.lookup(['k']), [loc('one', 0, 1)]);
    await second.directory.close();
    await waitFor('node-left on the serving node', () => events.length === 2);
    assert.equal(events[1], { type: 'node-left', nodeId: 'two', reason: 'left' });
    assert.equal(await first.directory.lookup(['k2']), [null]);
    // A third joins, then the serving node closes: the third loses its directory.
    const third = await openDirectory({ discoveryAddr: addr });
    assert.is(third.server, null);
    await third.directory.join(nodeInfo('three'));
    await first.directory.close();
    assert.ok(first.server?.isClosed);
    const err = await rejection(waitFor('loss', async () => (await third.directory.members(), undefined), 2000));
    assert.match(err.message, /^directory connection lost: server closed the connection: directory server shutting down/);
    await third.directory.close();
  } finally {
    await second?.directory.close();
    await first.directory.close();
  }
});

test('openDirectory: many concurrent openers on one address (in-process and in child processes) elect exactly one server', async () => {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const opened = await Promise.all(Array.from({ length: 8 }, () => openDirectory({ discoveryAddr: addr, localShortCircuit: false })));
  try {
    assert.is(opened.filter((o) => o.server !== null).length, 1);
    await Promise.all(opened.map((o, i) => o.directory.join(nodeInfo(`p${i}`))));
    assert.is((await opened[0].directory.members()).length, 8);
  } finally {
    // Close the joiners first, then the server.
    for (const o of [...opened].sort((x, y) => Number(x.server !== null) - Number(y.server !== null))) await o.directory.close();
  }
  const port2 = await freePort();
  const children = Array.from({ length: 4 }, (_, i) => spawnFixture(FIXTURE, ['open', `127.0.0.1:${port2}`, `c${i}`, '10']));
  try {
    const results = (await Promise.all(children.map((c) => c.ready))) as unknown as NodeReady[];
    assert.ok(results.every((r) => r.ready && r.accepted === 10), JSON.stringify(results));
    assert.is(results.filter((r) => r.served).length, 1, JSON.stringify(results));
    const probe = await DirectoryClient.connect({ port: port2 });
    assert.is((await probe.members()).length, 4);
    assert.ok((await probe.lookup(['c0/k0', 'c3/k9'])).every((l) => l !== null));
    await probe.close();
  } finally {
    await Promise.all(children.map((c) => c.kill('SIGKILL')));
  }
});

test('openDirectory validates the address and fails with a clear error', async () => {
  for (const bad of ['localhost', 'localhost:0', 'localhost:65536', ':80', 'host:port', 'a:b:1', '']) {
    await rejection(openDirectory({ discoveryAddr: bad })).then((e) => assert.match(e.message, `invalid discoveryAddr '${bad}'`));
  }
  assert.equal(parseDiscoveryAddr('[::1]:7600'), { host: '::1', port: 7600 });
  assert.equal(parseDiscoveryAddr('node-3.cluster:1'), { host: 'node-3.cluster', port: 1 });
  // Nobody listens at a non-local address: this host cannot serve it either.
  const err = await rejection(openDirectory({ discoveryAddr: '192.0.2.1:7600', connectTimeoutMs: 300 }));
  assert.match(err.message, /192\.0\.2\.1:7600/);
});

test('a directory on a non-loopback address needs a token (refused before binding), unless insecure', async () => {
  for (const host of ['0.0.0.0', '::', '192.0.2.1']) {
    const err = await rejection(DirectoryServer.listen({ host, port: 0 }));
    assert.is((err as { code?: string }).code, 'ERR_AUTH_REQUIRED', host);
    assert.match(err.message, /without an auth token/);
    // The library names its options; the CLI renders the same message with its flags.
    assert.match(err.message, /\(authToken <secret>, or PEERCACHE_AUTH_TOKEN/);
    assert.match(err.message, /with insecure$/);
    assert.match((err as PeercacheError).render(flagFor), /--auth-token <secret>.*with --insecure$/);
  }
  const viaOpen = await rejection(openDirectory({ discoveryAddr: '0.0.0.0:1', maxAttempts: 1 }));
  assert.is((viaOpen as { code?: string }).code, 'ERR_AUTH_REQUIRED');
  // Loopback needs none; a token makes any address acceptable (not bound here: loopback only in tests).
  const local = await DirectoryServer.listen({ host: '127.0.0.1', port: 0 });
  await local.close();
});

test('auth through openDirectory: a joiner without the token is refused', async () => {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const first = await openDirectory({ discoveryAddr: addr, authToken: 'k' });
  try {
    assert.ok(first.server);
    const err = await rejection(openDirectory({ discoveryAddr: addr }));
    assert.match(err.message, 'authentication failed: missing token');
    const ok = await openDirectory({ discoveryAddr: addr, authToken: 'k' });
    assert.is(ok.server, null);
    await ok.directory.close();
  } finally {
    await first.directory.close();
  }
});

test('a discovery port held by a program that is not a directory: "in use by a program that does not answer", not a bare hello timeout', async () => {
  const squatter = net.createServer(() => {});
  await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
  const port = (squatter.address() as net.AddressInfo).port;
  try {
    const err = await rejection(openDirectory({ discoveryAddr: `127.0.0.1:${port}`, connectTimeoutMs: 300, maxAttempts: 1, rejoin: false }));
    assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port} is in use by a program that does not answer as a peercache directory`));
  } finally {
    squatter.close();
  }
});

test.run();

