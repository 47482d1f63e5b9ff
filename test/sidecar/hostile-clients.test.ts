/**
 * Hostile local clients against a real `peercache node` process (its Unix socket, raw frames): a
 * client that streams bad requests and never reads the answers is stopped being read and then
 * closed (the node's memory stays flat), connections that said hello and nothing else are closed at
 * the first-request deadline, and a full node makes room for a new rank by evicting the connection
 * idle longest, never one that is serving or recently served; a legitimate client is answered
 * throughout.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ChildProc } from '../../src/bench/child-process.js';
import { SIDECAR_PROTOCOL } from '../../src/sidecar/protocol.js';
import { FrameDecoder, FrameKind, encodeFrame, encodeRawFrame, type Frame } from '../../src/framing.js';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/ports.js';

const peercacheEntry = fileURLToPath(new URL('../../src/cli/peercache.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pc-hostile-sidecar-'));

interface Node {
  child: ChildProc;
  socketPath: string;
  stop(): Promise<void>;
}

async function startNode(name: string, extra: string[]): Promise<Node> {
  const socketPath = join(dir, name, 'peercache.sock');
  const child = new ChildProc({
    label: `peercache node ${name}`,
    command: process.execPath,
    args: ['--import', 'tsx', peercacheEntry, 'node', '--socket', socketPath, '--discovery-addr', `127.0.0.1:${await freePort()}`, '--protocol', 'tcp', '--global-segment', '4m', '--slot-bytes', '4k', ...extra],
    lifetime: 'stdin',
  });
  try {
    await child.waitForLine(/ready: socket/, 120_000);
  } catch (err) {
    await child.stop({ via: 'SIGKILL', graceMs: 0 }); // a node that never got ready must not keep this file's process alive
    throw err;
  }
  return { child, socketPath, stop: () => child.stop({ via: 'SIGTERM', graceMs: 5000 }) };
}

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

interface Client {
  socket: net.Socket;
  frames: Frame[];
  closed: boolean;
  call(body: unknown): Promise<Frame>;
}

let nextId = 1;

async function connect(path: string, read = true): Promise<Client> {
  const socket = net.connect(path);
  const c: Client = {
    socket,
    frames: [],
    closed: false,
    async call(body) {
      socket.write(encodeFrame(FrameKind.Request, nextId++, body));
      const t0 = Date.now();
      while (!c.frames.length) {
        if (c.closed) throw new Error('closed');
        if (Date.now() - t0 > 10_000) throw new Error('no answer in 10 s');
        await new Promise((r) => setTimeout(r, 5));
      }
      return c.frames.shift()!;
    },
  };
  const decoder = new FrameDecoder((f) => c.frames.push(f), { role: 'client', maxFrameBytes: 2 ** 24 });
  if (read) socket.on('data', (d) => decoder.push(d));
  socket.on('error', () => {});
  socket.on('close', () => (c.closed = true));
  await new Promise<void>((r, j) => socket.once('connect', () => r()).once('error', j));
  return c;
}

async function hello(path: string): Promise<Client> {
  const c = await connect(path);
  const f = await c.call({ op: 'hello', protocol: SIDECAR_PROTOCOL, pid: process.pid });
  assert.is(f.kind, FrameKind.Response, f.payload.toString());
  return c;
}

const message = (f: Frame) => String((JSON.parse(f.payload.toString()) as { message?: string }).message);

async function until(what: string, ms: number, ok: () => boolean): Promise<void> {
  const t0 = Date.now();
  while (!ok()) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('a client that streams bad requests and never reads its answers is not read on, then closed; the node stays small and serves others', async () => {
  const node = await startNode('non-reader', ['--hello-timeout-ms', '1000']);
  try {
    const good = await hello(node.socketPath);
    assert.is((await good.call({ op: 'exists', keys: ['a'] })).kind, FrameKind.Response);
    // Said hello (its answer read), then reads no more.
    const evil = await hello(node.socketPath);
    assert.is((await evil.call({ op: 'exists', keys: ['a'] })).kind, FrameKind.Response);
    evil.socket.pause();
    evil.socket.removeAllListeners('data');
    const rss0 = rssMiB(node.child.pid);
    // 11-byte frames with an unknown binary op: each is answered with an ~80-byte error frame.
    const frame = encodeRawFrame(FrameKind.Request, 7, Buffer.from([0x90]));
    const burst = Buffer.concat(Array.from({ length: 6000 }, () => frame));
    const budgetBytes = 24 * 2 ** 20;
    let sent = 0;
    const t0 = Date.now();
    // Writes while the node takes them (drain), for at most 8 s or 24 MiB of requests.
    while (sent < budgetBytes && !evil.closed && Date.now() - t0 < 8000) {
      if (!evil.socket.write(burst)) {
        const drained = await Promise.race([new Promise<boolean>((r) => evil.socket.once('drain', () => r(true))), new Promise<boolean>((r) => setTimeout(() => r(false), 1500))]);
        if (!drained) break;
      }
      sent += burst.length;
    }
    const rss1 = rssMiB(node.child.pid);
    console.log(`non-reader: ${(sent / 2 ** 20).toFixed(1)} MiB of bad requests taken in ${Date.now() - t0} ms; node RSS ${rss0.toFixed(0)} → ${rss1.toFixed(0)} MiB`);
    // The legitimate client is answered while the attacker waits.
    const f = await good.call({ op: 'exists', keys: ['a', 'b'] });
    assert.is(f.kind, FrameKind.Response, f.payload.toString());
    // The attacker is closed (its answers were never read) within the unread-answer deadline.
    await until('the non-reader closed', 5000, () => evil.closed);
    const log = node.child.stderr() + node.child.stdout();
    assert.match(log, /not reading its answers/);
    assert.ok(sent < budgetBytes, `the node read all ${sent} bytes of bad requests from a client that reads nothing`);
    assert.ok(rss1 - rss0 < 48, `the node grew ${(rss1 - rss0).toFixed(0)} MiB (${rss0.toFixed(0)} → ${rss1.toFixed(0)}) answering a non-reader (${(sent / 2 ** 20).toFixed(1)} MiB of requests taken)`);
    const g = await good.call({ op: 'exists', keys: ['c'] });
    assert.is(g.kind, FrameKind.Response);
    good.socket.destroy();
  } finally {
    await node.stop();
  }
});

test('hello and then nothing: closed at the first-request deadline, so such connections cannot fill the node', async () => {
  const node = await startNode('hello-only', ['--max-connections', '4', '--hello-timeout-ms', '600']);
  try {
    const squatters = [await hello(node.socketPath), await hello(node.socketPath), await hello(node.socketPath), await hello(node.socketPath)];
    await until('hello-only connections closed', 5000, () => squatters.every((c) => c.closed));
    const last = squatters[0].frames.pop();
    assert.ok(last && last.kind === FrameKind.Error && /no request within 600 ms of hello/.test(message(last)), last ? message(last) : 'no frame');
    // A rank gets in, and a working connection (it asked something) outlives that deadline.
    const rank = await hello(node.socketPath);
    assert.is((await rank.call({ op: 'exists', keys: ['x'] })).kind, FrameKind.Response);
    await new Promise((r) => setTimeout(r, 1500));
    assert.not.ok(rank.closed, 'a connection that made a request was closed while idle');
    assert.is((await rank.call({ op: 'exists', keys: ['x'] })).kind, FrameKind.Response);
    rank.socket.destroy();
  } finally {
    await node.stop();
  }
});

test('a full node evicts the connection idle longest for a new one; busy and recently active ones stay; with none idle long enough the new one is refused', async () => {
  const node = await startNode('evict', ['--max-connections', '3', '--idle-evict-ms', '1500']);
  try {
    const a = await hello(node.socketPath);
    await a.call({ op: 'exists', keys: ['a'] }); // a: worked once, then idle
    const b = await hello(node.socketPath);
    await b.call({ op: 'exists', keys: ['b'] });
    const c = await hello(node.socketPath);
    await c.call({ op: 'exists', keys: ['c'] });
    // Full, nobody idle for 1.5 s yet: a fourth is refused.
    const early = await connect(node.socketPath);
    await until('refused', 3000, () => early.frames.length > 0 || early.closed);
    assert.match(message(early.frames[0]), /too many connections/);
    await new Promise((r) => setTimeout(r, 1700));
    await b.call({ op: 'exists', keys: ['b'] }); // b and c active again, a idle longest
    await c.call({ op: 'exists', keys: ['c'] });
    await new Promise((r) => setTimeout(r, 100));
    const d = await hello(node.socketPath);
    assert.is((await d.call({ op: 'exists', keys: ['d'] })).kind, FrameKind.Response);
    await until('a evicted', 3000, () => a.closed);
    assert.match(message(a.frames[0]), /closed: idle for \d+ s while the node is full/);
    assert.not.ok(b.closed || c.closed, 'a recently active connection was evicted');
    for (const x of [b, c, d]) x.socket.destroy();
  } finally {
    await node.stop();
  }
});

test('a full node survives clients that connect and are gone before it refuses them', async () => {
  const node = await startNode('refused', ['--max-connections', '2']);
  try {
    const held = [await hello(node.socketPath), await hello(node.socketPath)];
    for (const c of held) await c.call({ op: 'exists', keys: ['x'] });
    // Each connects, and closes before the node's refusal is written (it used to die of EPIPE).
    const t0 = Date.now();
    for (let round = 0; round < 20; round++) {
      await Promise.all(
        Array.from({ length: 20 }, () => {
          const s = net.connect(node.socketPath);
          s.on('error', () => {});
          s.on('connect', () => s.destroy());
          return new Promise((r) => s.once('close', r));
        }),
      );
    }
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(node.child.alive, `the node died: ${node.child.tail(20)}`);
    for (const c of held) assert.is((await c.call({ op: 'exists', keys: ['y'] })).kind, FrameKind.Response);
    // 400 refusals, a few log lines: one per kind every 5 s.
    const lines = node.child.stderr().split('\n').filter((l) => /refusing a connection/.test(l));
    assert.ok(lines.length >= 1 && lines.length <= 1 + Math.ceil((Date.now() - t0) / 5000), `${lines.length} log lines for 400 refusals`);
    for (const c of held) c.socket.destroy();
  } finally {
    await node.stop();
  }
});

test.run();
