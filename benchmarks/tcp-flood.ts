/**
 * The tcp data-plane server under the floods of issue 24 (item 7), at its default limits: a
 * publisher, one flood, then a legitimate reader's 64 KiB READ (10 s deadline). Loopback only,
 * bounded (a few seconds, at most 1024 sockets).
 *   node --import tsx benchmarks/tcp-flood.ts nonreaders|forged|hello
 * nonreaders: 20 connections with a valid token ask 30 x 1 MiB each and never read;
 * forged: 24 connections stream 200 000 forged-token READs each and never read;
 * hello: 1024 connections say HELLO and nothing else.
 */
import { randomBytes } from 'node:crypto';
import type net from 'node:net';
import { TcpTransport, TCP_WIRE, decodeTcpAddress, decodeTcpDescriptor } from '../src/transport/tcp/index.js';
import { rawHello, rawRequest } from '../test/transport/tcp-raw.js';

const MiB = 1 << 20;
const REGION = 64 * MiB;
const mode = process.argv[2];
if (mode !== 'nonreaders' && mode !== 'forged' && mode !== 'hello') {
  process.stderr.write('usage: node --import tsx benchmarks/tcp-flood.ts nonreaders|forged|hello\n');
  process.exit(2);
}
import { silentLogger } from '../src/log.js';
const quiet = silentLogger;
const node = await TcpTransport.open({ protocol: 'tcp', logger: quiet });
const descriptor = node.allocate(REGION).descriptor();
const { regionId, token } = decodeTcpDescriptor(descriptor);
const port = decodeTcpAddress(node.address()).port;

async function legitimateRead(): Promise<string> {
  const reader = await TcpTransport.open({ protocol: 'tcp' });
  const t0 = performance.now();
  try {
    const ep = await reader.connect(node.address());
    const remote = ep.attach(descriptor);
    const local = reader.register(new Uint8Array(64 << 10));
    await ep.read(remote, [local], new Float64Array([0, 0, 0, 64 << 10]), 1, { timeoutMs: 10_000 });
    return `served in ${(performance.now() - t0).toFixed(1)} ms`;
  } catch (err) {
    return `FAILED after ${(performance.now() - t0).toFixed(0)} ms: ${(err as Error).message}`;
  } finally {
    await reader.close();
  }
}

const socks: net.Socket[] = [];
if (mode === 'nonreaders') {
  const frames: Buffer[] = [];
  for (let f = 0; f < 30; f++) {
    const quads: number[][] = [];
    for (let i = 0; i < 16; i++) quads.push([((f * 16 + i) * 65536) % REGION, 65536]);
    frames.push(rawRequest(TCP_WIRE.kinds.read, f + 1, 16, 0, regionId, token, quads));
  }
  const burst = Buffer.concat(frames);
  for (let i = 0; i < 20; i++) socks.push(await rawHello(port));
  for (const s of socks) s.write(burst);
} else if (mode === 'forged') {
  const one = rawRequest(TCP_WIRE.kinds.read, 1, 1, 0, regionId, new Uint8Array(randomBytes(16)), [[0, 4096]]);
  const burst = Buffer.alloc(one.length * 200_000);
  for (let i = 0; i < 200_000; i++) one.copy(burst, i * one.length);
  for (let i = 0; i < 24; i++) {
    const s = await rawHello(port).catch(() => null);
    if (s === null) break;
    socks.push(s);
    s.write(burst);
  }
  process.stdout.write(`${socks.length} of 24 forged-token connections got their HELLO answered\n`);
} else {
  for (let i = 0; i < 1024; i++) {
    const s = await rawHello(port).catch(() => null);
    if (s === null) continue;
    s.on('error', () => undefined);
    socks.push(s);
  }
}
await new Promise((r) => setTimeout(r, 2000));
const st = node.serverStats();
process.stdout.write(`${mode}: the flood holds ${(st.queuedAnswerBytes / MiB).toFixed(1)} MiB of answers on ${st.connections} connections\n`);
process.stdout.write(`${mode}: a legitimate 64 KiB READ ${await legitimateRead()}\n`);
for (const s of socks) s.destroy();
await node.close();
process.exit(0);
