/**
 * TLS for the embedded directory (issue 24, item 5). An on-path observer of a cleartext directory
 * sees the token in every hello and can replay a captured hello to join and learn region access
 * tokens. With TLS the hello is encrypted and a recorded session replays to nothing. Certificates
 * are made with openssl at test time in a temp directory this test creates and removes. A
 * recording proxy stands on the path between client and server (loopback).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectoryServer } from '../../src/store/directory/server.js';
import { DirectoryClient } from '../../src/store/directory/client.js';
import { openDirectory } from '../../src/store/directory/open.js';
import { FrameKind, encodeFrame } from '../../src/framing.js';
import { freePort } from '../helpers/ports.js';
import { nodeInfo, rejection, sleep } from '../helpers/directory.js';

const dir = mkdtempSync(join(tmpdir(), 'peercache-tls-test-'));
const TOKEN = 'a-directory-secret-3f9c';

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A CA and a server certificate for 127.0.0.1 signed by it; a second, unrelated CA. */
function makeCerts(): void {
  for (const ca of ['ca', 'other-ca']) {
    openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '2', '-subj', `/CN=peercache test ${ca}`);
  }
  openssl('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=directory');
  execFileSync('sh', ['-c', 'printf "subjectAltName=IP:127.0.0.1,DNS:directory.test\\n" > ext.cnf'], { cwd: dir });
  openssl('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.pem', '-days', '2', '-extfile', 'ext.cnf');
}
makeCerts();
const serverTls = { certFile: join(dir, 'server.pem'), keyFile: join(dir, 'server.key') };
const clientTls = { caFile: join(dir, 'ca.pem') };

/** A TCP proxy on the path that records what the client sends. */
async function recordingProxy(target: number): Promise<{ port: number; recorded: () => Buffer; close: () => Promise<void> }> {
  const chunks: Buffer[] = [];
  const sockets = new Set<net.Socket>();
  const server = net.createServer((c) => {
    const up = net.connect({ host: '127.0.0.1', port: target });
    sockets.add(c).add(up);
    c.on('data', (d: Buffer) => {
      chunks.push(Buffer.from(d));
      up.write(d);
    });
    up.pipe(c);
    const end = (): void => {
      c.destroy();
      up.destroy();
    };
    c.on('error', end).on('close', end);
    up.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as net.AddressInfo).port,
    recorded: () => Buffer.concat(chunks),
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise((r) => server.close(() => r()));
    },
  };
}

/** Replays `bytes` to the server on a fresh connection, then asks (in cleartext) for the member list; true if it got an answer. */
async function replayJoins(port: number, bytes: Buffer, server: DirectoryServer): Promise<boolean> {
  const before = server.stats().requests;
  const s = net.connect({ host: '127.0.0.1', port });
  s.on('error', () => undefined);
  await new Promise<void>((r) => s.once('connect', () => r()));
  s.write(bytes);
  s.write(encodeFrame(FrameKind.Request, 99, { op: 'members' }));
  s.resume();
  await sleep(500);
  s.destroy();
  return server.stats().requests > before;
}

test('cleartext baseline: the observer sees the token and a replayed hello is served (what TLS is for)', async () => {
  const server = await DirectoryServer.listen({ authToken: TOKEN });
  const proxy = await recordingProxy(server.address.port);
  try {
    const c = await DirectoryClient.connect({ port: proxy.port, authToken: TOKEN });
    await c.join(nodeInfo('victim'));
    assert.ok(proxy.recorded().includes(Buffer.from(TOKEN)), 'the token crossed in cleartext');
    const wire = proxy.recorded();
    const hello = wire.subarray(0, 10 + wire.readUInt32BE(0)); // the first frame
    assert.ok(await replayJoins(server.address.port, hello, server), 'a replayed cleartext hello is served');
    await c.close();
  } finally {
    await proxy.close();
    await server.close();
  }
});

test('TLS: the token never crosses in cleartext, and a recorded session replayed to the server gets nothing', async () => {
  const server = await DirectoryServer.listen({ authToken: TOKEN, tls: serverTls });
  const proxy = await recordingProxy(server.address.port);
  try {
    const c = await DirectoryClient.connect({ port: proxy.port, authToken: TOKEN, tls: clientTls });
    const members = await c.join(nodeInfo('victim'));
    assert.is(members.length, 1);
    const wire = proxy.recorded();
    assert.ok(wire.length > 0);
    assert.not.ok(wire.includes(Buffer.from(TOKEN)), 'the token is not on the wire');
    assert.not.ok(wire.includes(Buffer.from('victim')), 'nor the member records');
    assert.not.ok(await replayJoins(server.address.port, wire, server), 'the replayed session was served');
    assert.is((await c.members()).length, 1);
    await c.close();
  } finally {
    await proxy.close();
    await server.close();
  }
});

test('TLS: a cleartext client, a client that trusts another CA, and a wrong server name are refused with a reason', async () => {
  const server = await DirectoryServer.listen({ authToken: TOKEN, tls: serverTls, helloTimeoutMs: 1000 });
  try {
    const plain = await rejection(DirectoryClient.connect({ port: server.address.port, authToken: TOKEN, connectTimeoutMs: 3000 }));
    assert.match(plain.message, /cannot connect to the directory/);
    const other = await rejection(DirectoryClient.connect({ port: server.address.port, authToken: TOKEN, tls: { caFile: join(dir, 'other-ca.pem') } }));
    assert.match(other.message, /certificate/i);
    const name = await rejection(DirectoryClient.connect({ port: server.address.port, authToken: TOKEN, tls: { ...clientTls, servername: 'elsewhere.test' } }));
    assert.match(name.message, /elsewhere\.test|altnames/i);
    const named = await DirectoryClient.connect({ port: server.address.port, authToken: TOKEN, tls: { ...clientTls, servername: 'directory.test' } });
    await named.close();
    const missing = await rejection(DirectoryServer.listen({ tls: { certFile: join(dir, 'absent.pem'), keyFile: serverTls.keyFile } }));
    assert.match(missing.message, /cannot read the certificate .*absent\.pem: ENOENT/);
  } finally {
    await server.close();
  }
});

test('embedded mode over TLS: the first node serves, the next joins through it', async () => {
  const port = await freePort();
  const tlsAll = { ...serverTls, ...clientTls };
  const a = await openDirectory({ discoveryAddr: `127.0.0.1:${port}`, authToken: TOKEN, tls: tlsAll });
  const b = await openDirectory({ discoveryAddr: `127.0.0.1:${port}`, authToken: TOKEN, tls: tlsAll });
  try {
    assert.ok(a.server !== null && b.server === null);
    await a.directory.join(nodeInfo('a'));
    const members = await b.directory.join(nodeInfo('b'));
    assert.equal(members.map((m) => m.nodeId).sort(), ['a', 'b']);
  } finally {
    await b.directory.close();
    await a.directory.close();
  }
});

test.after(() => rmSync(dir, { recursive: true, force: true }));
test.run();
