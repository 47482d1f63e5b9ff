/**
 * The speed scripts refuse a bad flag with one line and exit 2, before measuring anything (no
 * stack trace): --only, --model, --tp, --batch of bench-set-tcp and bench-set-breakdown.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const run = (script: string, args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', `benchmarks/${script}`, ...args], { cwd: root, encoding: 'utf8', timeout: 60_000 });

const cases: [string, string[], RegExp][] = [
  ['bench-set-tcp.ts', ['--only', 'x'], /^--only: shm or tcp, got 'x'$/],
  ['bench-set-tcp.ts', ['--model', 'nope'], /^unknown model 'nope': one of deepseek-v3, /],
  ['bench-set-tcp.ts', ['--model', 'deepseek-v3', '--batch', '0'], /^--batch must be a positive integer, got '0'$/],
  ['bench-set-tcp.ts', ['--model', 'llama-3-70b', '--tp', 'two'], /^--tp must be a positive integer, got 'two'$/],
  ['bench-set-breakdown.ts', ['--model', 'llama-3-70b'], /^--model: an MLA model \(one object per page\), got llama-3-70b \(mha\)$/],
];

for (const [script, args, message] of cases) {
  test(`${script} ${args.join(' ')}: one line, exit 2`, () => {
    const r = run(script, args);
    assert.is(r.status, 2, r.stdout + r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.is(lines.length, 1, r.stderr);
    assert.match(lines[0], message);
    assert.is(r.stdout, '');
  });
}

test.run();
