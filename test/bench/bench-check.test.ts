/**
 * `npm run bench:check` (benchmarks/bench-check.ts): a ratio that fell past its noise is named and
 * fails the run; one within it (or better) passes; bad flags are one line and exit 2. Runs its
 * shortest part (attach: a 1 and a 4 GiB sparse shm segment, ~5 s) against baselines of its own.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'benchmarks/bench-check.ts', ...args], { cwd: root, encoding: 'utf8', timeout: 240_000 });

function baseline(value: number): string {
  const dir = mkdtempSync(join(tmpdir(), 'pcb-check-'));
  const path = join(dir, 'baseline.json');
  writeFileSync(
    path,
    JSON.stringify({
      why: 'test',
      when: 'then',
      load: '-',
      command: '-',
      ratios: { attach_largest_vs_smallest: { value, noise: 0.5, better: 'lower', what: 'attach' }, other_ratio: { value: 1, noise: 0.1, better: 'higher', what: 'other' } },
    }),
  );
  return path;
}

test('a ratio past its noise is named and fails the run; within it, the run passes; --update writes median and noise', () => {
  // Attach is flat (~1): against a baseline of 0.1 (lower is better) it fell; against 10 it is better.
  const low = baseline(0.1);
  const high = baseline(10);
  try {
    const a = run(['--only', 'attach', '--baseline', low]);
    assert.is(a.status, 1, a.stdout + a.stderr);
    assert.match(a.stdout, /attach_largest_vs_smallest\s+0\.100\s+\d+\.\d+\s+±50%\s+FELL/);
    assert.match(a.stdout, /fell by more than their noise: attach_largest_vs_smallest/);
    const b = run(['--only', 'attach', '--baseline', high]);
    assert.is(b.status, 0, b.stdout + b.stderr);
    assert.match(b.stdout, /attach_largest_vs_smallest\s+10\.000\s+\d+\.\d+\s+±50%\s+better/);
    const c = run(['--only', 'attach', '--baseline', high, '--update', '--runs', '2', '--why', 'test update']);
    assert.is(c.status, 0, c.stdout + c.stderr);
    const written = JSON.parse(readFileSync(high, 'utf8')) as {
      why: string;
      ratios: Record<string, { value: number; noise: number; when: string }>;
      updates: { why: string; when: string; ratios: string[] }[];
    };
    assert.is(written.why, 'test update');
    assert.ok(written.ratios.attach_largest_vs_smallest.value < 5, JSON.stringify(written));
    assert.ok(written.ratios.attach_largest_vs_smallest.noise >= 0.05);
    // An --only update keeps the record of what it did not measure: the earlier header is its first update.
    assert.equal(written.ratios.other_ratio, { value: 1, noise: 0.1, better: 'higher', what: 'other', when: 'then' });
    assert.equal(written.updates.map((u) => [u.why, u.ratios]), [['test', ['attach_largest_vs_smallest', 'other_ratio']], ['test update', ['attach_largest_vs_smallest']]]);
    assert.is(written.ratios.attach_largest_vs_smallest.when, written.updates[1].when);
    const d = run(['--only', 'attach', '--baseline', high]);
    assert.match(d.stdout, new RegExp(`baseline of ${written.updates[1].when} \\(test update\\)`));
  } finally {
    rmSync(join(low, '..'), { recursive: true, force: true });
    rmSync(join(high, '..'), { recursive: true, force: true });
  }
});

test('bad flags: one line, exit 2', () => {
  const a = run(['--update']);
  assert.is(a.status, 2);
  assert.match(a.stderr, /--update needs --why/);
  const b = run(['--only', 'nope']);
  assert.is(b.status, 2);
  assert.match(b.stderr, /unknown part\(s\) nope; parts: exists, attach/);
});

test.run();
