/** A run is never lost: a bad --out-dir fails before measuring; a write that fails at the end keeps the report elsewhere. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { runAndReport, type ReportIo } from '../../src/cli/run-report.js';
import { prepareOutDir, OutDirError } from '../../src/bench/report/write.js';
import { silentLogger } from '../../src/log.js';
import type { Report } from '../../src/bench/report/types.js';

const fixture = JSON.parse(
  readFileSync(new URL('../../bench-results/hicache-suite-shm-20261125-014329.json', import.meta.url), 'utf8'),
) as Report;

// A long window: a run that measured before checking --out-dir would be killed by the deadline instead of exiting 2.
const long = ['throughput', '--protocol', 'shm', '--op', 'exists', '--concurrency', '1', '--page-size', '16k', '--working-set', '64', '--duration', '60', '--warmup', '0'];

test('--out-dir under /proc: exit 2 at once with one line (no mkdir loop, nothing measured)', async () => {
  const r = await runCli([...long, '--out-dir', '/proc/nope/deeper'], { timeoutMs: 45_000 });
  assert.is(r.code, 2, `code ${r.code} signal ${r.signal}: ${r.stderr}`);
  assert.is(r.stdout, '');
  const lines = r.stderr.trim().split('\n');
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0], /^peercache-bench throughput: --out-dir \/proc\/nope\/deeper: /);
  assert.not.match(r.stderr, /\n\s+at /);
});

test('--out-dir below a file: exit 2 naming the file, before measuring', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-outdir-'));
  try {
    const file = join(dir, 'plain-file');
    writeFileSync(file, 'x');
    const r = await runCli([...long, '--json', '--out-dir', join(file, 'results')], { timeoutMs: 45_000 });
    assert.is(r.code, 2, `code ${r.code} signal ${r.signal}: ${r.stderr}`);
    assert.match(r.stderr, /plain-file is a file, not a directory/);
    assert.is(r.stderr.trim().split('\n').length, 1, r.stderr);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('prepareOutDir creates missing parts and leaves no probe file behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-outdir-'));
  try {
    const target = join(dir, 'a', 'b');
    assert.is(await prepareOutDir(target), target);
    assert.ok(existsSync(target));
    assert.equal(readdirSync(target), []);
    try {
      await prepareOutDir('/proc/nope');
      assert.unreachable('should throw');
    } catch (e) {
      assert.instance(e, OutDirError);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a run that fails before measuring takes back the --out-dir folders it made (none left behind), and keeps a folder that was there', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-outdir-'));
  try {
    // rdma cannot run on a host without an RDMA NIC (and is refused clearly where it can't): the run fails after --out-dir is made.
    const r = await runCli(['latency', '--protocol', 'rdma', '--out-dir', join(dir, 'made', 'here')], { timeoutMs: 45_000 });
    if (r.code === 0) return console.log('    skipped: this host runs rdma');
    assert.not.match(r.stderr, /\n\s+at /);
    assert.equal(readdirSync(dir), [], 'the folders this run made are gone');
    const r2 = await runCli(['latency', '--protocol', 'rdma', '--out-dir', dir], { timeoutMs: 45_000 });
    assert.ok(r2.code !== 0);
    assert.ok(existsSync(dir), 'a folder that existed before the run is kept');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

function captureIo(): ReportIo & { stdout: string; stderr: string } {
  const io = { stdout: '', stderr: '', out: (t: string) => void (io.stdout += t), err: (t: string) => void (io.stderr += t), outIsTty: false };
  return io;
}

for (const json of [false, true]) {
  test(`writing fails after measuring${json ? ' (--json)' : ''}: table printed, report saved in a temp dir and named, exit 1`, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'pcbench-outdir-'));
    const out = join(dir, 'results');
    const io = captureIo();
    let saved: string | undefined;
    try {
      const result = await runAndReport({
        kind: 'hicache', mode: 'suite', name: 'suite', outDir: out, tag: `lost${json ? 'json' : ''}`, json, logger: silentLogger, io,
        // The directory passed the check, then disappears under the run (replaced by a file).
        run: async () => {
          rmSync(out, { recursive: true, force: true });
          writeFileSync(out, 'not a directory any more');
          return fixture;
        },
      });
      assert.is(result.exitCode, 1);
      const tableOut = json ? io.stderr : io.stdout;
      assert.match(tableOut, /\| op /);
      if (json) assert.is((JSON.parse(io.stdout) as Report).results.length, fixture.results.length);
      assert.match(io.stderr, /could not write the report to .*results: /);
      const m = /saved instead in (\S+\.json)/.exec(io.stderr);
      assert.ok(m, io.stderr);
      saved = m![1];
      assert.is((JSON.parse(readFileSync(saved, 'utf8')) as Report).results.length, fixture.results.length);
      assert.ok(existsSync(saved.replace(/\.json$/, '.md')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
      if (saved) {
        for (const ext of ['.json', '.md', '.svg']) rmSync(saved.replace(/\.json$/, ext), { force: true });
        // The fallback directory too, when nothing else is in it (it is not the test's to empty).
        try {
          rmdirSync(dirname(saved));
        } catch {
          /* not empty, or gone */
        }
      }
    }
  });
}

test.run();
