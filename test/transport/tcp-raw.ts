/**
 * Speaking the tcp transport's wire by hand, as a broken or hostile client would: raw frames,
 * raw sockets, bounded waits. Shared by the tcp transport tests.
 */
import net from 'node:net';
import { TCP_WIRE } from '../../src/transport/tcp/index.js';

/** Fails the test instead of hanging it. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: still pending after ${ms} ms (a hang)`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

/** Encodes a request frame by hand (what a broken or malicious client could send). */
export function rawRequest(kind: number, id: number, count: number, payload: number, regionId: number, token: Uint8Array | null, quads: number[][] = []): Buffer {
  const out = Buffer.alloc(TCP_WIRE.requestHeaderBytes + quads.length * TCP_WIRE.opBytes);
  out.writeUInt32LE(TCP_WIRE.requestMagic, 0);
  out[4] = TCP_WIRE.version;
  out[5] = kind;
  out.writeUInt32LE(id, 8);
  out.writeUInt32LE(count, 12);
  out.writeUInt32LE(payload % 2 ** 32, 16);
  out.writeUInt32LE(Math.floor(payload / 2 ** 32), 20);
  out.writeUInt32LE(regionId, 24);
  if (token !== null) Buffer.from(token).copy(out, 32);
  quads.forEach(([roff, len], i) => {
    const at = TCP_WIRE.requestHeaderBytes + i * TCP_WIRE.opBytes;
    out.writeUInt32LE(roff % 2 ** 32, at);
    out.writeUInt32LE(Math.floor(roff / 2 ** 32), at + 4);
    out.writeUInt32LE(len % 2 ** 32, at + 8);
  });
  return out;
}

export function rawConnect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Resolves once the server has closed the socket (any data it sent is drained and ignored). */
export function closedByPeer(s: net.Socket, ms = 5_000): Promise<void> {
  s.resume();
  s.on('error', () => undefined);
  if (s.destroyed) return Promise.resolve(); // already closed (a reset closes it at once)
  return within(new Promise<void>((resolve) => s.once('close', () => resolve())), ms, 'the server closing a connection');
}

/** Reads exactly n bytes from a raw socket. */
export function readExactly(s: net.Socket, n: number, ms = 5_000): Promise<Buffer> {
  return within(
    new Promise<Buffer>((resolve, reject) => {
      let got = Buffer.alloc(0);
      const onData = (c: Buffer): void => {
        got = Buffer.concat([got, c]);
        if (got.length >= n) {
          s.off('data', onData);
          s.pause();
          if (got.length > n) s.unshift(got.subarray(n));
          resolve(got.subarray(0, n));
        }
      };
      s.on('data', onData);
      s.once('close', () => reject(new Error('the socket closed')));
      s.resume();
    }),
    ms,
    'a raw answer',
  );
}

/** Connects and completes the HELLO by hand; the socket is left paused. */
export async function rawHello(port: number): Promise<net.Socket> {
  const s = await rawConnect(port);
  s.write(rawRequest(TCP_WIRE.kinds.hello, 0, 0, 0, 0, null));
  const h = await readExactly(s, TCP_WIRE.responseHeaderBytes);
  await readExactly(s, Number(h.readUInt32LE(16)));
  return s;
}
