/**
 * `peercache node --socket` and the socket's directory, with real node processes in directories
 * this test creates: an existing directory keeps its mode (shared ones, and one reached through a
 * symlink, are never chmodded), an absent one is created 0700 (not through a dangling symlink), and
 * a directory others can write to without the sticky bit, or owned by another user, is refused
 * with one line and exit 2 before the node joins anything.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChildProc } from '../../src/bench/child-process.js';
import { freePort } from '../helpers/ports.js';

const peercacheEntry = fileURLToPath(new URL('../../src/cli/peercache.ts', import.meta.url));
const root = mkdtempSync(join(tmpdir(), 'pc-socket-dir-'));
chmodSync(root, 0o700);

const modeOf = (p: string) => statSync(p).mode & 0o7777;

function dirWithMode(name: string, mode: number): string {
  const d = join(root, name);
  mkdirSync(d);
  chmodSync(d, mode); // (mkdir's mode goes through the umask)
  return d;
}

/** Runs `peercache node --socket <socketPath>`: 'ready' once it serves (then stopped), or its exit and output. */
async function startSidecar(socketPath: string): Promise<{ ready: boolean; code: number | null; stderr: string }> {
  const child = new ChildProc({
    label: 'peercache node',
    command: process.execPath,
    args: ['--import', 'tsx', peercacheEntry, 'node', '--socket', socketPath, '--discovery-addr', `127.0.0.1:${await freePort()}`, '--protocol', 'tcp', '--global-segment', '4m', '--slot-bytes', '4k'],
    lifetime: 'stdin',
  });
  const ready = await child.waitForLine(/ready: socket/, 120_000).then(
    () => true,
    () => false,
  );
  if (ready) {
    assert.ok(statSync(socketPath).isSocket());
    assert.is(modeOf(socketPath), 0o600);
    await child.stop({ via: 'SIGTERM', graceMs: 5000 });
  } else if (child.alive) await child.stop({ via: 'SIGKILL', graceMs: 0 }); // neither ready nor refused in time
  const exit = await child.exited;
  return { ready, code: exit.code, stderr: child.stderr() };
}

test.after(() => rmSync(root, { recursive: true, force: true }));

test('an existing directory keeps its mode: 0755, a sticky 01777 one (as /tmp), one reached through a symlink', async () => {
  const shared = dirWithMode('shared', 0o755);
  assert.ok((await startSidecar(join(shared, 'x.sock'))).ready);
  assert.is(modeOf(shared).toString(8), '755', 'the node chmodded a directory it did not create');

  const sticky = dirWithMode('sticky', 0o1777);
  assert.ok((await startSidecar(join(sticky, 'x.sock'))).ready);
  assert.is(modeOf(sticky).toString(8), '1777');

  const real = dirWithMode('real', 0o750);
  const link = join(root, 'link');
  symlinkSync(real, link);
  assert.ok((await startSidecar(join(link, 'x.sock'))).ready);
  assert.is(modeOf(real).toString(8), '750', 'the node chmodded the target of a symlink');
  assert.ok(lstatSync(link).isSymbolicLink());
});

test('an absent directory is created 0700; not through a dangling symlink', async () => {
  const fresh = join(root, 'fresh', 'run');
  assert.ok((await startSidecar(join(fresh, 'x.sock'))).ready);
  assert.is(modeOf(fresh).toString(8), '700');

  const nowhere = join(root, 'nowhere');
  const dangling = join(root, 'dangling');
  symlinkSync(nowhere, dangling);
  const r = await startSidecar(join(dangling, 'x.sock'));
  assert.not.ok(r.ready);
  assert.is(r.code, 2, r.stderr);
  assert.match(r.stderr, /--socket: .*dangling is not a directory/);
  assert.not.ok(existsSync(nowhere), 'a directory was created where a dangling symlink pointed');
});

test('a directory others can write to (not sticky), or that another user owns, is refused: one line, exit 2, left as it was', async () => {
  for (const mode of [0o777, 0o775]) {
    const open = dirWithMode(`open-${mode.toString(8)}`, mode);
    const r = await startSidecar(join(open, 'x.sock'));
    assert.not.ok(r.ready, `the node served a socket in a ${mode.toString(8)} directory`);
    assert.is(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0], new RegExp(`--socket: .*open-${mode.toString(8)} \\(mode 0${mode.toString(8)}\\) is writable by other users and not sticky`));
    assert.not.match(r.stderr, /\n\s+at /, 'a stack trace');
    assert.is(modeOf(open), mode, 'the refused directory was changed');
    assert.not.ok(existsSync(join(open, 'x.sock')));
  }
  if (process.getuid?.() === 0) {
    const theirs = dirWithMode('theirs', 0o755);
    chownSync(theirs, 65534, 65534);
    const r = await startSidecar(join(theirs, 'x.sock'));
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /belongs to uid 65534/);
  }
});

test.run();
