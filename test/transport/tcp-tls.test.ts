/**
 * The tcp data plane over TLS (issue 24, item 5): a READ's region token and bytes are encrypted,
 * and a reader talks only to a node whose certificate its CA signed. Certificates are made with
 * openssl at test time in a temp directory this test creates and removes; loopback only. A
 * recording proxy is the on-path observer: the node advertises the proxy's port (its address blob
 * is rewritten), so every byte the reader sends and receives crosses it.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TcpTransport, decodeTcpAddress, decodeTcpDescriptor, encodeTcpAddress } from '../../src/transport/tcp/index.js';
import type { TransportOptions } from '../../src/transport/types.js';

const dir = mkdtempSync(join(tmpdir(), 'peercache-tcp-tls-test-'));
function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}
for (const ca of ['ca', 'other-ca']) openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=${ca}`);
openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'node.key', '-out', 'node.csr', '-subj', '/CN=node');
execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1\\n" > ext.cnf'], { cwd: dir });
openssl('x509', '-req', '-in', 'node.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'node.pem', '-days', '2', '-extfile', 'ext.cnf');
const tcpTls = { certFile: join(dir, 'node.pem'), keyFile: join(dir, 'node.key'), caFile: join(dir, 'ca.pem') };
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A TCP proxy that records both directions. */
async function tap(target: number): Promise<{ port: number; bytes: () => Buffer; close: () => Promise<void> }> {
  const seen: Buffer[] = [];
  const socks = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const up = net.connect({ host: '127.0.0.1', port: target });
    socks.add(c).add(up);
    c.on('data', (d: Buffer) => (seen.push(Buffer.from(d)), up.write(d)));
    up.on('data', (d: Buffer) => (seen.push(Buffer.from(d)), c.write(d)));
    const end = (): void => (c.destroy(), up.destroy(), undefined);
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    bytes: () => Buffer.concat(seen),
    close: () => (socks.forEach((s) => s.destroy()), new Promise((r) => server.close(() => r()))),
  };
}

/** Publishes a recognisable page, reads it through the tap with `readerOptions`; returns what crossed the tap. */
async function readThroughTap(publisherOptions: Partial<TransportOptions>, readerOptions: Partial<TransportOptions>): Promise<{ wire: Buffer; token: Buffer; page: Buffer; got: Buffer | Error }> {
  const node = await TcpTransport.open({ protocol: 'tcp', ...publisherOptions });
  const reader = await TcpTransport.open({ protocol: 'tcp', ...readerOptions });
  const region = node.allocate(1 << 16);
  const page = Buffer.from('the-secret-kv-page-'.repeat(300).slice(0, 4096));
  region.bytes.set(page);
  const address = decodeTcpAddress(node.address());
  const proxy = await tap(address.port);
  try {
    const ep = await reader.connect(encodeTcpAddress({ ...address, port: proxy.port }));
    const remote = ep.attach(region.descriptor());
    const local = reader.register(new Uint8Array(4096));
    await ep.read(remote, [local], new Float64Array([0, 0, 0, 4096]), 1, { timeoutMs: 5000 });
    return { wire: proxy.bytes(), token: Buffer.from(decodeTcpDescriptor(region.descriptor()).token), page, got: Buffer.from(local.bytes) };
  } catch (err) {
    return { wire: proxy.bytes(), token: Buffer.alloc(16), page, got: err as Error };
  } finally {
    await proxy.close();
    await reader.close();
    await node.close();
  }
}

test('cleartext baseline: the observer sees the region token and the page', async () => {
  const r = await readThroughTap({}, {});
  assert.ok(Buffer.isBuffer(r.got) && r.got.equals(r.page), String(r.got));
  assert.ok(r.wire.includes(r.token), 'token on the wire');
  assert.ok(r.wire.includes(r.page.subarray(0, 64)), 'page on the wire');
});

test('TLS: the right bytes arrive; neither the region token nor the page is on the wire', async () => {
  const r = await readThroughTap({ tcpTls }, { tcpTls });
  assert.ok(Buffer.isBuffer(r.got), String(r.got));
  assert.ok((r.got as Buffer).equals(r.page));
  assert.not.ok(r.wire.includes(r.token), 'token on the wire');
  assert.not.ok(r.wire.includes(r.page.subarray(0, 64)), 'page on the wire');
});

test('TLS: 2 MiB in two ops and 64 pipelined small READs arrive byte for byte', async () => {
  const { randomBytes } = await import('node:crypto');
  const node = await TcpTransport.open({ protocol: 'tcp', tcpTls });
  const reader = await TcpTransport.open({ protocol: 'tcp', tcpTls });
  try {
    const region = node.allocate(4 << 20);
    const src = randomBytes(4 << 20);
    region.bytes.set(src);
    const ep = await reader.connect(node.address());
    const remote = ep.attach(region.descriptor());
    const local = reader.register(new Uint8Array(2 << 20));
    await ep.read(remote, [local], new Float64Array([3 << 20, 0, 0, 1 << 20, 0, 0, 1 << 20, 1 << 20]), 2, { timeoutMs: 10_000 });
    assert.ok(Buffer.from(local.bytes.subarray(0, 1 << 20)).equals(src.subarray(3 << 20, 4 << 20)));
    assert.ok(Buffer.from(local.bytes.subarray(1 << 20)).equals(src.subarray(0, 1 << 20)));
    const small = reader.register(new Uint8Array(64 * 4096));
    await Promise.all(Array.from({ length: 64 }, (_, i) => ep.read(remote, [small], new Float64Array([i * 8192, 0, i * 4096, 4096]), 1, { timeoutMs: 10_000 })));
    for (let i = 0; i < 64; i++) assert.ok(Buffer.from(small.bytes.subarray(i * 4096, (i + 1) * 4096)).equals(src.subarray(i * 8192, i * 8192 + 4096)), `read ${i}`);
  } finally {
    await reader.close();
    await node.close();
  }
});

test('TLS: a cleartext reader and a reader that trusts another CA cannot connect', async () => {
  const plain = await readThroughTap({ tcpTls }, {});
  assert.instance(plain.got, Error);
  const other = await readThroughTap({ tcpTls }, { tcpTls: { ...tcpTls, caFile: join(dir, 'other-ca.pem') } });
  assert.instance(other.got, Error);
  assert.match((other.got as Error).message, /cannot connect to the peer/);
  let err: unknown = null;
  await TcpTransport.open({ protocol: 'tcp', tcpTls: { ...tcpTls, certFile: join(dir, 'absent.pem') } }).then((n) => n.close(), (e: unknown) => (err = e));
  assert.match(String(err), /tcp data plane TLS: cannot read the certificate .*absent\.pem: ENOENT/);
});

test.run();
