/**
 * The library examples of README.md and docs/*.md (```ts blocks), run as written against the built
 * package (`import … from 'peercache'` resolves to dist/, as for a user) and real processes. A block
 * annotated `<!-- docs-test: redis-fleet -->` names a fleet's hosts: only its host-specific values
 * are replaced (a real redis-server's URL, shm for the RDMA NIC, loopback; each replacement must
 * apply, so an edit cannot silently skip it). Every other ts block runs unchanged and must exit 0;
 * a `// <value>` comment after its last console.log is the output it must print. Sizes are checked
 * to be non-zero: `4 << 30` is 0 in JavaScript.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { startRedis } from '../helpers/redis.js';
import { allBlocks, repoRoot as root, TS_LANGS, where } from '../helpers/doc-blocks.js';

const tsBlocks = allBlocks().filter((b) => TS_LANGS.has(b.lang));
const fleet = tsBlocks.filter((b) => b.annotation?.mode === 'redis-fleet');
const plain = tsBlocks.filter((b) => !b.annotation);
const readme = tsBlocks.map((b) => b.code).join('\n');

function runBlock(code: string, name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Inside the package, so `import 'peercache'` is the package's self-reference (its exports map).
  const file = `${root}test/.docs-${name}-${process.pid}.mts`;
  writeFileSync(file, code);
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      rmSync(file, { force: true });
      resolve({ code, stdout, stderr });
    });
  });
}

test('the docs have a library example and a Redis fleet example; no ts block with another annotation', () => {
  assert.ok(plain.some((b) => /PeerCacheStore\.open/.test(b.code)), 'a library example');
  assert.is(fleet.length, 1, `${fleet.length} redis-fleet blocks`);
  assert.match(fleet[0].code, /directoryUrl: 'redis:/);
  const other = tsBlocks.filter((b) => b.annotation && b.annotation.mode !== 'redis-fleet').map(where);
  assert.equal(other, []);
});

test('every globalSegmentBytes in the README is a positive size (no 32-bit shifts)', () => {
  const sizes = [...readme.matchAll(/globalSegmentBytes: ([^,}\n]+?)\s*[,}]/g)].map((m) => m[1]);
  assert.ok(sizes.length >= 2, sizes.join());
  for (const expr of sizes) {
    assert.not.match(expr, /<</, `${expr}: JavaScript shifts are 32-bit`);
    const value = Number(new Function(`return (${expr});`)());
    assert.ok(Number.isSafeInteger(value) && value > 0, `${expr} = ${value}`);
  }
});

for (const [i, block] of plain.entries()) {
  test(`${where(block)} runs as written and prints what its comment says`, async () => {
    const r = await runBlock(block.code, `plain${i}`);
    assert.is(r.code, 0, `${where(block)}: ${r.stderr}`);
    const expected = /console\.log\([^)]*\);\s*\/\/ (.+)\n[^]*$/.exec(block.code)?.[1]?.trim();
    if (expected) assert.is(r.stdout.trim().split('\n').pop(), expected);
    if (/onProgress/.test(block.code)) assert.match(r.stderr, /measure \d/, 'onProgress ran');
  });
}

test('Redis fleet example runs against a real redis-server (host-specific values replaced)', async () => {
  const redis = await startRedis();
  try {
    let code = fleet[0].code;
    const replace = (from: string, to: string) => {
      assert.ok(code.includes(from), `README example no longer has ${from}`);
      code = code.replace(from, to);
    };
    replace("'redis://cache-dir.internal:6379/0'", `'${redis.url}'`);
    replace("protocol: 'rdma', deviceName: 'mlx5_0', localHost: '10.0.0.12'", "protocol: 'shm', localHost: '127.0.0.1'");
    replace("port: 9464, host: '0.0.0.0'", "port: 0, host: '127.0.0.1'");
    code += "\nawait store.close();\nconsole.log('fleet example ok');\nprocess.exit(0);\n";
    const r = await runBlock(code, 'redis');
    assert.is(r.code, 0, r.stderr);
    assert.match(r.stdout, /fleet example ok/);
  } finally {
    await redis.stop();
  }
});

test.run();
