/**
 * READ answers sent as views of the region (no user-space copy, server.ts): the kernel takes the
 * bytes when it sends them, possibly after the region changed. What must still hold, tested with a
 * client that does not read, so the answer waits in the server while the test changes the region:
 * - a header READ after the data (the store's check) never vouches for data taken after a rewrite
 *   (the kernel takes the ops in order);
 * - a WRITE after a READ on the same connection never shows in that READ's answer;
 * - a region freed while views of it wait stays attached until they are done, then is detached;
 * - their bodies start at a multiple of TCP_WIRE.answerAlign into the answer stream (the padding
 *   says how far), and an endpoint refuses padding where there may be none.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { TCP_WIRE, TcpTransport, decodeTcpDescriptor, encodeTcpAddress } from '../../src/transport/tcp/index.js';
import type { PublishedRegion } from '../../src/transport/types.js';
import { rawHello, rawRequest, readExactly, within } from './tcp-raw.js';

const MiB = 1 << 20;
/** Far more than the kernel's socket buffers take from a client that does not read. */
const DATA = 12 * MiB;
const HEADER = 16;
const H = TCP_WIRE.responseHeaderBytes;

/** A READ answer read whole: its header, and its body without the padding before it. */
async function readAnswer(s: Parameters<typeof readExactly>[0], bodyBytes: number): Promise<{ header: Buffer; body: Buffer }> {
  const header = await readExactly(s, H);
  const pad = header.readUInt32LE(12);
  assert.ok(pad < TCP_WIRE.answerAlign, `padding of ${pad} bytes`);
  const rest = await readExactly(s, pad + bodyBytes);
  return { header, body: rest.subarray(pad) };
}

async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  await within(
    (async () => {
      while (!cond()) await new Promise((r) => setTimeout(r, 5));
    })(),
    ms,
    what,
  );
}

/** A node with one region: DATA bytes of `fill`, then a HEADER holding generation `gen`. */
async function publish(fill: number, gen: number, remoteWritable = false): Promise<{ node: TcpTransport; region: PublishedRegion; id: number; token: Uint8Array }> {
  const node = await TcpTransport.open({ protocol: 'tcp', host: '127.0.0.1' });
  const region = node.allocate(DATA + HEADER, { remoteWritable });
  region.bytes.fill(fill, 0, DATA);
  stamp(region, gen);
  const d = decodeTcpDescriptor(region.descriptor());
  return { node, region, id: d.regionId, token: d.token };
}

function stamp(region: PublishedRegion, gen: number): void {
  Buffer.from(region.bytes.buffer, region.bytes.byteOffset + DATA, HEADER).writeUInt32LE(gen, 0);
}

/** Lets the server hand what the kernel takes to it, so the rest of the answer waits in the server. */
async function settle(node: TcpTransport): Promise<void> {
  await until(() => node.serverStats().queuedAnswerBytes > 0, 'the answer queued');
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(node.serverStats().queuedAnswerBytes > 0, 'the answer still waits in the server');
}

test('a slot rewritten while its answer waits: the header taken after the data never vouches for new bytes', async () => {
  const { node, region, id, token } = await publish(0xaa, 1);
  try {
    const s = await rawHello(node.port);
    // The store's READ: the data, then (fence) the slot header, in one frame.
    s.write(rawRequest(TCP_WIRE.kinds.read, 1, 2, 0, id, token, [[0, DATA], [DATA, HEADER]]));
    await settle(node);
    // The writer protocol of published-pool.ts: invalidate, rewrite the data, stamp a new generation.
    stamp(region, 0);
    region.bytes.fill(0xbb, 0, DATA);
    stamp(region, 2);
    const answer = await readAnswer(s, DATA + HEADER);
    assert.is(answer.header[6], TCP_WIRE.status.ok);
    const data = answer.body.subarray(0, DATA);
    const gen = answer.body.readUInt32LE(DATA);
    const firstNew = data.indexOf(0xbb);
    // The race happened: part of the answer was taken after the rewrite (else this proves nothing).
    assert.ok(firstNew > 0, `the answer was taken before the rewrite (new bytes from ${firstNew})`);
    assert.is(data.subarray(firstNew).indexOf(0xaa), -1, 'old bytes after new ones: ops taken out of order');
    // The reader's check: a header with the old generation would accept these mixed bytes.
    assert.is(gen, 2, `the header says generation ${gen}, with ${DATA - firstNew} new bytes in the data`);
    s.destroy();
  } finally {
    await node.close();
  }
});

test('a WRITE after a READ on one connection waits for the READ to be taken: the READ never shows its bytes', async () => {
  const { node, region, id, token } = await publish(0xaa, 1, true);
  try {
    const s = await rawHello(node.port);
    s.write(rawRequest(TCP_WIRE.kinds.read, 1, 1, 0, id, token, [[0, DATA]]));
    await settle(node);
    // Into the tail of the range read, which is still waiting in the server.
    const tail = 64 << 10;
    s.write(Buffer.concat([rawRequest(TCP_WIRE.kinds.write, 2, 1, tail, id, token, [[DATA - tail, tail]]), Buffer.alloc(tail, 0xcc)]));
    await new Promise((r) => setTimeout(r, 100));
    const answer = await readAnswer(s, DATA);
    assert.is(answer.header[6], TCP_WIRE.status.ok);
    assert.is(answer.body.indexOf(0xcc), -1, 'the READ answer holds bytes of the WRITE after it');
    const ack = await readExactly(s, H);
    assert.is(ack[5], TCP_WIRE.kinds.write);
    assert.is(ack[6], TCP_WIRE.status.ok);
    assert.is(region.bytes[DATA - 1], 0xcc, 'the WRITE landed once the READ was taken');
    s.destroy();
  } finally {
    await node.close();
  }
});

test('a region freed while views of it wait: the answer is its bytes, and it is detached once they are done', async () => {
  for (const end of ['read', 'reset'] as const) {
    const { node, region, id, token } = await publish(0xaa, 1);
    try {
      const s = await rawHello(node.port);
      s.write(rawRequest(TCP_WIRE.kinds.read, 1, 1, 0, id, token, [[0, DATA]]));
      await settle(node);
      region.free();
      assert.is(region.bytes.byteLength, DATA + HEADER, `${end}: still attached while the kernel has not taken it all`);
      if (end === 'read') {
        const answer = await readAnswer(s, DATA);
        assert.is(answer.header[6], TCP_WIRE.status.ok);
        assert.is(answer.body.findIndex((b) => b !== 0xaa), -1, 'the freed region\'s bytes, whole');
        await until(() => node.serverStats().queuedAnswerBytes === 0, 'the answer written');
      } else {
        s.destroy(); // the views are cancelled with the socket
        await until(() => node.serverStats().connections === 0, 'the connection gone');
      }
      await until(() => region.bytes.byteLength === 0, `${end}: the region detached`);
      s.destroy();
    } finally {
      await node.close();
    }
  }
});

test('a view answer\'s body starts aligned in the answer stream, whatever came before it', async () => {
  const { node, id, token } = await publish(0xaa, 1);
  try {
    const s = await rawHello(node.port);
    let streamAt = H + 8; // the HELLO answer
    for (const small of [100, 7, 1000]) {
      // A small READ is copied, unpadded, and moves the stream on by an odd amount.
      s.write(rawRequest(TCP_WIRE.kinds.read, 1, 1, 0, id, token, [[0, small]]));
      const a = await readAnswer(s, small);
      assert.is(a.header.readUInt32LE(12), 0, 'a copied answer has no padding');
      streamAt += H + small;
      s.write(rawRequest(TCP_WIRE.kinds.read, 2, 1, 0, id, token, [[0, 1 << 20]]));
      const b = await readAnswer(s, 1 << 20);
      const pad = b.header.readUInt32LE(12);
      streamAt += H + pad;
      assert.is(streamAt % TCP_WIRE.answerAlign, 0, `after ${small} bytes: the body starts ${streamAt} bytes in (padding ${pad})`);
      streamAt += 1 << 20;
    }
    s.destroy();
  } finally {
    await node.close();
  }
});

test('an endpoint refuses padding where there may be none (a forged server)', async () => {
  const nodeId = randomBytes(8).toString('hex');
  const server = net.createServer((c) => {
    c.on('error', () => undefined);
    let got = 0;
    c.on('data', (d) => {
      got += d.length;
      if (got === TCP_WIRE.requestHeaderBytes) {
        // The HELLO answer, with 8 bytes of padding a HELLO may not have.
        const h = Buffer.alloc(H);
        h.writeUInt32LE(TCP_WIRE.responseMagic, 0);
        h[4] = TCP_WIRE.version;
        h[5] = TCP_WIRE.kinds.hello;
        h.writeUInt32LE(8, 12);
        h.writeUInt32LE(8, 16);
        c.write(Buffer.concat([h, Buffer.alloc(8), Buffer.from(nodeId, 'hex')]));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const node = await TcpTransport.open({ protocol: 'tcp', host: '127.0.0.1', timeoutMs: 5_000 });
  try {
    const port = (server.address() as net.AddressInfo).port;
    let err: unknown = null;
    try {
      await within(node.connect(encodeTcpAddress({ host: '127.0.0.1', port, nodeId })), 10_000, 'connect');
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof Error, 'the handshake with a padded HELLO answer must fail');
    assert.match((err as Error).message, /8 bytes of padding/);
  } finally {
    await node.close();
    server.close();
  }
});

test.run();
