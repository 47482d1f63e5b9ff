#!/usr/bin/env node
// Runs every test file in its own Node process (a native crash or hang in one file cannot take
// the others down), streams its output, and ends with one line: "N passed, N failed".
// Usage: node scripts/run-tests.mjs [substring-filter ...]
import { spawn } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const perFileTimeoutMs = Number(process.env.PEERCACHE_TEST_TIMEOUT_MS ?? 300_000);
const filters = process.argv.slice(2);

function listTests(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const path = join(dir, name);
    if (name === 'fixtures' || name === 'helpers') continue;
    if (statSync(path).isDirectory()) out.push(...listTests(path));
    else if (name.endsWith('.test.ts')) out.push(path);
  }
  return out;
}

function runFile(file) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', file], {
      cwd: root,
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const onData = (stream) => (chunk) => {
      out += chunk;
      stream.write(chunk);
    };
    child.stdout.on('data', onData(process.stdout));
    child.stderr.on('data', onData(process.stderr));
    const timer = setTimeout(() => {
      process.stderr.write(`\n[run-tests] ${relative(root, file)} exceeded ${perFileTimeoutMs} ms, killing it\n`);
      child.kill('SIGKILL');
    }, perFileTimeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const total = Number(/^\s+Total:\s+(\d+)/m.exec(out)?.[1] ?? 0);
      const passed = Number(/^\s+Passed:\s+(\d+)/m.exec(out)?.[1] ?? 0);
      let failed = total - passed;
      // A file that died (crash, timeout, early exit) without reporting failures still fails.
      if ((code !== 0 || signal) && failed === 0) failed = 1;
      resolve({ file, passed, failed, code, signal });
    });
  });
}

const files = listTests(join(root, 'test')).filter(
  (f) => filters.length === 0 || filters.some((s) => f.includes(s)),
);
let passed = 0;
let failed = 0;
const failures = [];
const started = Date.now();
for (const file of files) {
  process.stdout.write(`\n=== ${relative(root, file)}\n`);
  const r = await runFile(file);
  passed += r.passed;
  failed += r.failed;
  if (r.failed > 0) failures.push(`${relative(root, r.file)} (exit ${r.code ?? r.signal})`);
}
process.stdout.write(`\n${files.length} test files in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
if (failures.length) process.stdout.write(`failing files:\n  ${failures.join('\n  ')}\n`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exitCode = failed > 0 || files.length === 0 ? 1 : 0;
