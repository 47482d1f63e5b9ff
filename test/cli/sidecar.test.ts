/** `peercache node`: start-up errors of the store node are one line, exit 2, never a crash. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'pc-node-cli-'));
const CLI = join(process.cwd(), 'src', 'cli', 'peercache.ts');

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('--global-segment over 4 GiB on tcp is a one-line error, not a crash', () => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'node', '--protocol', 'tcp', '--global-segment', '8g', '--socket', join(dir, 'g.sock'), '--discovery-addr', '127.0.0.1:1', '--slot-bytes', '8k'], { encoding: 'utf8' });
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /--global-segment\) over --protocol tcp must be at most 4 GiB, got 8589934592/);
  assert.not.match(r.stderr, /double free|\n\s+at /);
});

test('--directory-tls-*: a missing certificate or a cert without its key is one line, exit 2', () => {
  const base = ['--import', 'tsx', CLI, 'node', '--protocol', 'tcp', '--global-segment', '1m', '--socket', join(dir, 't.sock'), '--slot-bytes', '8k'];
  const half = spawnSync(process.execPath, [...base, '--discovery-addr', '127.0.0.1:1', '--directory-tls-cert', join(dir, 'c.pem')], { encoding: 'utf8' });
  assert.is(half.status, 2, half.stderr);
  assert.match(half.stderr, /--directory-tls-cert and --directory-tls-key go together/);
  // Nobody serves this port: the node would serve the directory, and cannot read its certificate.
  const absent = spawnSync(process.execPath, [...base, '--discovery-addr', '127.0.0.1:9', '--directory-tls-cert', join(dir, 'c.pem'), '--directory-tls-key', join(dir, 'k.pem')], { encoding: 'utf8' });
  assert.is(absent.status, 2, absent.stderr);
  assert.match(absent.stderr, /directory TLS: cannot read the certificate .*c\.pem: ENOENT/);
  assert.not.match(absent.stderr, /\n\s+at /);
});

test.run();
