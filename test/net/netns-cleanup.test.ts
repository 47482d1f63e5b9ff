/**
 * The namespace helper cleans up on every exit path: SIGINT and SIGTERM remove a process's
 * namespaces as it exits; after a SIGKILL (nothing runs), the next run removes them, because
 * their names carry the pid of a process that is gone.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { netnsUnavailable, removeStaleNamespaces } from '../helpers/netns.js';
import { spawnFixture } from '../helpers/child.js';

const skip = netnsUnavailable();
const holder = new URL('../fixtures/netns-holder.ts', import.meta.url);

const listed = (): string[] => (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '').split('\n').map((l) => l.split(' ')[0]).filter(Boolean);
const exited = (proc: import('node:child_process').ChildProcess): Promise<void> =>
  proc.exitCode !== null || proc.signalCode !== null ? Promise.resolve() : new Promise((r) => proc.once('exit', () => r()));

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  test(`${sig}: the namespaces are gone when the process exits`, async () => {
    if (skip) return console.log(`    skipped: ${skip}`);
    const c = spawnFixture(holder);
    const { ns, pid } = (await c.ready) as { ns: string[]; pid: number };
    const prefix = `pcpart${pid}x`;
    assert.ok(ns.every((n) => listed().includes(n)), 'made');
    c.proc.kill(sig);
    await exited(c.proc);
    assert.equal(listed().filter((n) => n.startsWith(prefix)), [], `left behind after ${sig}`);
  });
}

test('SIGKILL: the next run removes what the killed process left (its pid is gone), and nothing else', async () => {
  if (skip) return console.log(`    skipped: ${skip}`);
  const c = spawnFixture(holder);
  const { pid } = (await c.ready) as { pid: number };
  const prefix = `pcpart${pid}x`;
  const live = spawnFixture(holder);
  const { pid: livePid } = (await live.ready) as { pid: number };
  try {
    c.proc.kill('SIGKILL');
    await exited(c.proc);
    assert.ok(listed().some((n) => n.startsWith(prefix)), 'a SIGKILL leaves them');
    removeStaleNamespaces();
    assert.equal(listed().filter((n) => n.startsWith(prefix)), [], 'stale ones removed');
    assert.ok(listed().some((n) => n.startsWith(`pcpart${livePid}x`)), "a live process's namespaces are kept");
  } finally {
    await live.kill('SIGTERM');
  }
});

test.run();
