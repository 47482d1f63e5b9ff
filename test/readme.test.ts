/**
 * The library examples of README.md and docs/*.md, run as written: every ```ts block is extracted and executed
 * against the built package (`import … from 'peercache'` resolves to dist/, as for a user). The
 * Redis fleet example names a fleet's hosts, so only its host-specific values are replaced (each
 * replacement must apply, so a README edit cannot silently skip it). Sizes are checked to be
 * non-zero: `4 << 30` is 0 in JavaScript.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { startRedis } from './helpers/redis.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const docFiles = ['README.md', ...readdirSync(`${root}docs`).filter((f) => f.endsWith('.md')).sort().map((f) => `docs/${f}`)];
const readme = docFiles.map((f) => readFileSync(`${root}${f}`, 'utf8')).join('\n');
const blocks = [...readme.matchAll(/```ts\n([^]*?)```/g)].map((m) => m[1]);

function runBlock(code: string, name: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  // Inside the package, so `import 'peercache'` is the package's self-reference (its exports map).
  const file = `${root}test/.readme-${name}-${process.pid}.mts`;
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

test('the docs have the library and the Redis fleet examples', () => {
  assert.is(blocks.length, 2, `${blocks.length} ts blocks`);
  assert.match(blocks[0], /PeerCacheStore\.open/);
  assert.match(blocks[1], /directoryUrl: 'redis:/);
});

test('every globalSegmentBytes in the README is a positive size (no 32-bit shifts)', () => {
  const sizes = [...readme.matchAll(/globalSegmentBytes: ([^,}\n]+?)\s*[,}]/g)].map((m) => m[1]);
  assert.ok(sizes.length >= 2, sizes.join());
  for (const expr of sizes) {
    assert.not.match(expr, /<</, `${expr}: JavaScript shifts are 32-bit`);
    const value = Number(new Function(`return (${expr});`)());
    assert.ok(Number.isSafeInteger(value) && value >= 2 ** 30, `${expr} = ${value}`);
  }
});

test('Library example runs as written and prints what its comment says', async () => {
  const r = await runBlock(blocks[0], 'library');
  assert.is(r.code, 0, r.stderr);
  const expected = /console\.log\([^)]*\);\s*\/\/ (.+)\n/.exec(blocks[0])![1].trim();
  assert.is(r.stdout.trim().split('\n').pop(), expected);
  assert.match(r.stderr, /measure \d/, 'onProgress ran');
});

test('Redis fleet example runs against a real redis-server (host-specific values replaced)', async () => {
  const redis = await startRedis();
  try {
    let code = blocks[1];
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
