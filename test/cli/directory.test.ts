/**
 * `peercache directory`: the directory as its own process. With --tenants, two models' stores that
 * join it with their own tokens neither poison nor see each other (issue 24, item 4); bad input is
 * one line and exit 2. The directory runs as a real child process on loopback.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import { freePort } from '../helpers/ports.js';

const dir = mkdtempSync(join(tmpdir(), 'pc-directory-cli-'));
const CLI = join(process.cwd(), 'src', 'cli', 'peercache.ts');
test.after(() => rmSync(dir, { recursive: true, force: true }));

test('peercache directory --tenants: each model joins its own directory; SIGTERM stops it', async () => {
  const tenants = { 'model-a': 'secret-a-19f', 'model-b': 'secret-b-77c' };
  const file = join(dir, 'tenants.json');
  writeFileSync(file, JSON.stringify(tenants), { mode: 0o600 });
  const port = await freePort();
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'directory', '--listen', `127.0.0.1:${port}`, '--tenants', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const stores: PeerCacheStore[] = [];
  try {
    for (let i = 0; i < 200 && !/listening/.test(out); i++) await new Promise((r) => setTimeout(r, 50));
    assert.match(out, new RegExp(`peercache directory listening on 127.0.0.1:${port}, 2 tenants`), err);
    const open = async (nodeId: string, authToken: string): Promise<PeerCacheStore> => {
      const s = await PeerCacheStore.open({ discoveryAddr: `127.0.0.1:${port}`, authToken, protocol: 'tcp', globalSegmentBytes: 1 << 20, slotBytes: 4096, nodeId });
      stores.push(s);
      return s;
    };
    const b = await open('b-rank', tenants['model-b']);
    const a = await open('a-rank', tenants['model-a']);
    assert.ok(await b.set('shared-name', Buffer.alloc(4096, 0x62)));
    assert.ok(await a.set('shared-name', Buffer.alloc(4096, 0x61)));
    assert.is((await a.get('shared-name', Buffer.alloc(4096)))?.[0], 0x61);
    assert.equal((await a.members()).map((m) => m.nodeId), ['a-rank']);
    const wrong = await PeerCacheStore.open({ discoveryAddr: `127.0.0.1:${port}`, authToken: 'guess', protocol: 'tcp', globalSegmentBytes: 0 }).then(
      (s) => s.close().then(() => null),
      (e: Error) => e,
    );
    assert.match(String(wrong), /authentication failed/);
  } finally {
    for (const s of stores) await s.close();
    child.kill('SIGTERM');
  }
  assert.is(await exited, 0, err);
  assert.match(out, /peercache directory stopped/);
});

test('peercache directory: a bad tenants file or listen address is one line, exit 2', () => {
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '["not", "an", "object"]');
  for (const [args, message] of [
    [['--tenants', bad], /must hold one JSON object of tenant name/],
    [['--listen', 'nowhere'], /--listen: invalid discoveryAddr 'nowhere'/],
  ] as const) {
    const listen = args[0] === '--listen' ? [] : ['--listen', '127.0.0.1:1'];
    const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'directory', ...listen, ...args], { encoding: 'utf8' });
    assert.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message);
    assert.not.match(r.stderr, /\n\s+at /);
  }
});

test.run();
