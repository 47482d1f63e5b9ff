/** Help texts a user reads: no flag a command ignores, one default per flag, no "the original". */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { main } from '../../src/cli/program.js';

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(argv, { out: (t) => void (out += t), err: (t) => void (err += t) });
  return { code, out, err };
}

const COMMANDS = ['latency', 'throughput', 'saturation', 'suite', 'micro', 'mooncake', 'compare', 'serve', 'drive', 'report', 'doctor'];

test('every --help: one default per flag, no reference to "the original"', async () => {
  for (const c of COMMANDS) {
    const r = await run([c, '--help']);
    assert.is(r.code, 0, c);
    assert.not.match(r.out, /original/i, `${c} --help`);
    for (const line of r.out.split('\n')) assert.ok((line.match(/\(default:/g) ?? []).length <= 1, `${c}: ${line}`);
  }
});

test('latency has no --batch-size (it is batch 1 by definition); the others keep it', async () => {
  assert.not.match((await run(['latency', '--help'])).out, /--batch-size/);
  assert.match((await run(['suite', '--help'])).out, /--batch-size <n> +Pages per batch call \(default: 32\)/);
  const r = await run(['latency', '--batch-size', '4']);
  assert.is(r.code, 2);
  assert.match(r.err, /unknown option --batch-size for 'latency'/);
});

test('--gid-index shows one default', async () => {
  const out = (await run(['suite', '--help'])).out;
  assert.match(out, /--gid-index <n\|auto> +RoCE GID index; auto lets UCX pick a RoCE v2 GID \(default: auto\)\n/);
});

test('no command: usage on stderr, exit 2', async () => {
  const r = await run([]);
  assert.is(r.code, 2);
  assert.is(r.out, '');
  assert.match(r.err, /^peercache-bench [^\n]+\n\nUSAGE/);
});

test.run();
