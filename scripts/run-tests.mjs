#!/usr/bin/env node
// Runs every test file in its own Node process (a native crash or hang in one file cannot take
// the others down), streams its output, and ends with one line: "N passed, N failed".
// Then the Python adapter's tests (python3 -m pytest -q python/tests), counted in the same line.
// Usage: node scripts/run-tests.mjs [--quick] [substring-filter ...]   (a filter matching "python/tests" runs them)
// --quick (npm run test:quick): every file but the slow tier below — a few minutes, for the edit-test loop;
// CI and `npm test` run everything.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const perFileTimeoutMs = Number(process.env.PEERCACHE_TEST_TIMEOUT_MS ?? 300_000);
const quick = process.argv.includes('--quick');
const filters = process.argv.slice(2).filter((a) => a !== '--quick');

// The slow tier, left out by --quick: files that take tens of seconds each (installs, clusters,
// browsers, network namespaces, end-to-end CLI runs), measured with the per-file times printed below.
const SLOW_TESTS = [
  'test/package/',
  'test/net/',
  'test/docs/commands.test.ts',
  'test/docs/typescript.test.ts',
  'test/bench/two-host.test.ts',
  'test/bench/mooncake.test.ts',
  'test/bench/plot-browser.test.ts',
  'test/bench/sweep.test.ts',
  'test/cli/hicache.test.ts',
  'test/cli/compare.test.ts',
  'test/store/big-segment.test.ts',
  'test/store/directory-rejoin.test.ts',
  'test/store/eviction-race.test.ts',
  'test/transport/ucx-cross-process.test.ts',
  'test/bench/micro.test.ts',
  'test/bench/bench-check.test.ts',
  'test/bench/models.test.ts',
];
const SLOW_PYTHON = ['test_big_pool.py', 'test_package.py', 'test_sidecar_death.py', 'test_polling.py', 'test_sglang'];

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

// A file that needs longer says so in its first lines: `// run-tests: timeout 600s` (never shorter than the default).
function timeoutFor(file) {
  const m = /run-tests: timeout (\d+)s/.exec(readFileSync(file, 'utf8').slice(0, 4000));
  return m ? Math.max(perFileTimeoutMs, Number(m[1]) * 1000) : perFileTimeoutMs;
}

function runFile(file) {
  const timeoutMs = timeoutFor(file);
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
      process.stderr.write(`\n[run-tests] ${relative(root, file)} exceeded ${timeoutMs} ms, killing it\n`);
      child.kill('SIGKILL');
    }, timeoutMs);
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
  (f) => (filters.length === 0 || filters.some((s) => f.includes(s))) && !(quick && SLOW_TESTS.some((s) => relative(root, f).startsWith(s))),
);
let passed = 0;
let failed = 0;
const failures = [];
const timings = [];
const started = Date.now();
// What this run leaves in the system's temporary folder (the project owns none of it): listed at
// the end, a failure under CI. tsx's compile cache (tsx-<uid>) is the tool's own, kept on purpose.
const tmpBefore = new Set(readdirSync(tmpdir()));
for (const file of files) {
  process.stdout.write(`\n=== ${relative(root, file)}\n`);
  const fileStarted = Date.now();
  const r = await runFile(file);
  timings.push([relative(root, file), (Date.now() - fileStarted) / 1000]);
  passed += r.passed;
  failed += r.failed;
  if (r.failed > 0) failures.push(`${relative(root, r.file)} (exit ${r.code ?? r.signal})`);
}
// The Python tests: a python3 that has pytest ($PEERCACHE_PYTHON, python3, /usr/bin/python3), preferring
// one that also has torch (Debian's python3-torch), so the tests with real tensors run.
const pyTests = 'python/tests';
const runPython = filters.length === 0 || filters.some((f) => pyTests.includes(f) || f.startsWith(pyTests));
if (runPython) {
  process.stdout.write(`\n=== ${pyTests} (pytest)\n`);
  const candidates = process.env.PEERCACHE_PYTHON ? [process.env.PEERCACHE_PYTHON] : ['python3', '/usr/bin/python3'];
  // find_spec looks the modules up without importing them (importing torch takes seconds).
  const has = (py, modules) =>
    spawnSync(py, ['-c', `import importlib.util, sys; sys.exit(0 if all(importlib.util.find_spec(m) for m in ${JSON.stringify(modules)}) else 1)`], { stdio: 'ignore' }).status === 0;
  const python = candidates.find((py) => has(py, ['pytest', 'torch'])) ?? candidates.find((py) => has(py, ['pytest']));
  if (!python) {
    process.stdout.write(`pytest is missing: none of ${candidates.join(', ')} can import pytest (Debian: apt-get install python3-pytest; or set PEERCACHE_PYTHON)\n`);
    failed += 1;
    failures.push(`${pyTests} (pytest missing)`);
  } else {
    const r = await new Promise((resolve) => {
      const skip = quick ? readdirSync(join(root, pyTests)).filter((n) => SLOW_PYTHON.some((s) => n.startsWith(s))).map((n) => `--ignore=${pyTests}/${n}`) : [];
      const pyStarted = Date.now();
      // pytest's tmp_path folders go to a folder of this run, removed after it (pytest's default,
      // /tmp/pytest-of-<user>, stays behind), short enough for the sidecars' Unix socket paths.
      const baseTemp = mkdtempSync(join(tmpdir(), 'peercache-pytest-'));
      const child = spawn(python, ['-m', 'pytest', '-q', '-p', 'no:cacheprovider', `--basetemp=${baseTemp}`, ...skip, pyTests], { cwd: root, env: { ...process.env, PYTHONDONTWRITEBYTECODE: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      for (const [stream, sink] of [[child.stdout, process.stdout], [child.stderr, process.stderr]]) {
        stream.on('data', (chunk) => {
          out += chunk;
          sink.write(chunk);
        });
      }
      const timer = setTimeout(() => child.kill('SIGKILL'), perFileTimeoutMs);
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        rmSync(baseTemp, { recursive: true, force: true });
        const count = (word) => Number(new RegExp(`(\\d+) ${word}`).exec(out.split('\n').filter((l) => /\d+ (passed|failed|error)/.test(l)).at(-1) ?? '')?.[1] ?? 0);
        let pyFailed = count('failed') + count('error');
        if ((code !== 0 || signal) && pyFailed === 0) pyFailed = 1;
        timings.push([`${pyTests} (pytest)`, (Date.now() - pyStarted) / 1000]);
        resolve({ passed: count('passed'), failed: pyFailed, code: code ?? signal });
      });
    });
    passed += r.passed;
    failed += r.failed;
    if (r.failed > 0) failures.push(`${pyTests} (exit ${r.code})`);
  }
}
const leftInTmp = readdirSync(tmpdir()).filter((n) => !tmpBefore.has(n) && !/^tsx-\d+$/.test(n));
if (leftInTmp.length) {
  process.stdout.write(`\nleft in ${tmpdir()} by this run: ${leftInTmp.join(', ')}\n`);
  // Elsewhere another program may have made them; on CI's fresh machine it was this run.
  if (process.env.CI) {
    failed += 1;
    failures.push(`${tmpdir()} left with ${leftInTmp.length} new entries`);
  }
}
const slowest = timings.sort((a, b) => b[1] - a[1]).slice(0, 8).map(([f, s]) => `${f} ${s.toFixed(1)} s`);
process.stdout.write(`\n${files.length} test files${quick ? ' (--quick: the slow tier left out)' : ''} in ${((Date.now() - started) / 1000).toFixed(1)} s; slowest: ${slowest.join(', ')}\n`);
if (failures.length) process.stdout.write(`failing files:\n  ${failures.join('\n  ')}\n`);
process.stdout.write(`${passed} passed, ${failed} failed\n`);
process.exitCode = failed > 0 || (files.length === 0 && !runPython) ? 1 : 0;
