/** Progress that stays: finished rows as table lines, a live line with phase, row k of n and the run's ETA; nothing when piped; NO_COLOR. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntry, runCli } from '../helpers/cli.js';
import { colorFor, createProgress, EtaEstimator, formatDuration, phaseNamer, progressHeader, progressLine, progressRowLine } from '../../src/cli/progress.js';
import type { RowProgress } from '../../src/bench/engine/row.js';
import type { Report } from '../../src/bench/report/types.js';
import { readFileSync } from 'node:fs';

const suite = JSON.parse(readFileSync(new URL('../../bench-results/hicache-suite-shm-20261125-014329.json', import.meta.url), 'utf8')) as Report;
const p = (over: Partial<RowProgress> = {}): RowProgress => ({
  row: 4, rows: 24, op: 'get', threads: 2, stage: 'measure', elapsedS: 5, remainingS: 7, pagesPerS: 150_300, gbps: 19.7, ...over,
});

test('live line: phase, row k of n, stage, the whole run\'s time left', () => {
  const line = progressLine(p(), 'get sweep', 130);
  assert.is(line, '[get sweep] row 5/24 get x2  measuring · run ~2 min 10 s left  150.3K pages/s  19.70 GB/s');
  const suitePhase = phaseNamer('hicache', 'suite');
  assert.is(suitePhase(p({ row: 0 })), 'latency');
  assert.is(suitePhase(p({ row: 2, op: 'exists' })), 'latency');
  assert.is(suitePhase(p({ row: 10, op: 'set' })), 'set sweep');
  assert.is(formatDuration(42.4), '42 s');
  assert.is(formatDuration(3725), '1 h 02 min');
});

test('ETA: the rows still to come at their nominal length plus the setup the finished rows took', () => {
  let now = 0;
  const eta = new EtaEstimator(() => now);
  // Row 1 of 3 announces 12 s (2 warmup + 10 window).
  assert.is(eta.update(p({ row: 0, rows: 3, stage: 'starting', elapsedS: 0, remainingS: 12 })), 12 + 2 * 12);
  now = 15; // it took 3 s more than nominal
  eta.finished();
  assert.is(eta.update(p({ row: 1, rows: 3, stage: 'starting', elapsedS: 0, remainingS: 12 })), 15 + 15);
  now = 20;
  assert.is(eta.update(p({ row: 1, rows: 3, stage: 'measure', elapsedS: 7, remainingS: 5 })), 5 + 15);
});

test('finished rows are fixed-width table lines under one header', () => {
  const lines = [progressHeader(), ...suite.results.slice(0, 6).map(progressRowLine)].join('\n').split('\n');
  const bars = (l: string) => [...l].flatMap((c, i) => (c === '|' ? [i] : [])).slice(0, 9);
  for (const l of lines) assert.equal(bars(l), bars(lines[0]), l);
  assert.match(lines[0], /^\| op +\| threads \| batch \| +pages\/s \|/);
  assert.match(lines[2], /^\| get +\| +1 \| +1 \| +60\.07K \| +7\.873 \|/);
  assert.match(lines[4], /^\| exists .*\| +– \|/);
});

function fakeStream(isTTY: boolean) {
  const s = { isTTY, text: '', write: (t: string) => ((s.text += t), true) };
  return s;
}

test('createProgress: on a TTY rows stay and the live line is erased; piped nothing; colour only when allowed', () => {
  const tty = fakeStream(true);
  const prog = createProgress({ stream: tty, color: false, phaseOf: () => 'get sweep' });
  prog.update(p({ row: 0 }));
  prog.row(suite.results[3]);
  prog.update(p({ row: 1 }));
  prog.row(suite.results[4]);
  prog.clear();
  const text = tty.text;
  assert.is(text.split(progressHeader()).length, 2, 'one header');
  assert.ok(text.includes(`\r\x1b[2K${progressHeader()}\n${progressRowLine(suite.results[3])}\n`));
  assert.ok(text.includes(`${progressRowLine(suite.results[4])}\n`));
  assert.not.match(text, /\x1b\[2m/);
  const coloured = fakeStream(true);
  createProgress({ stream: coloured, color: true }).update(p());
  assert.match(coloured.text, /\x1b\[2m\[get\] row 5\/24/);
  const piped = fakeStream(false);
  const q = createProgress({ stream: piped });
  q.update(p());
  q.row(suite.results[0]);
  q.clear();
  assert.is(piped.text, '');
  assert.is(colorFor(true, {}), true);
  assert.is(colorFor(true, { NO_COLOR: '1' }), false);
  assert.is(colorFor(false, {}), false);
});

const run = ['saturation', '--protocol', 'shm', '--op', 'get', '--concurrencies', '1,2', '--page-size', '16k', '--working-set', '128', '--duration', '0.6', '--warmup', '0.2'];

/** The CLI under a pseudo-terminal (util-linux `script`), stdout and stderr both on it. */
function underPty(args: string[], env: NodeJS.ProcessEnv): Promise<{ code: number | null; out: string }> {
  const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const cmd = [process.execPath, '--import', 'tsx', cliEntry, ...args].map(quote).join(' ');
  return new Promise((resolve) => {
    // The test runner sets NO_COLOR for every test file: only what `env` says applies here.
    const base = { ...process.env };
    delete base.NO_COLOR;
    delete base.FORCE_COLOR;
    const child = spawn('script', ['-q', '-e', '-c', cmd, '/dev/null'], { env: { ...base, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

test('through a pseudo-TTY: row lines stay, live line with phase and ETA; NO_COLOR leaves no escapes but the line erase', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-progress-'));
  try {
    const r = await underPty([...run, '--out-dir', dir], { NO_COLOR: '1' });
    assert.is(r.code, 0, r.out);
    assert.match(r.out, /\[get sweep\] row 1\/2 get x1 .* run ~\d+ s left/);
    assert.match(r.out, /\[get sweep\] row 2\/2 get x2 /);
    const kept = r.out.split(/\r?\n/).map((l) => l.replace(/^[^]*\r\x1b\[2K/, ''));
    const header = kept.findIndex((l) => /^\| op +\| threads \| batch \|/.test(l));
    assert.ok(header >= 0, r.out);
    assert.match(kept[header + 2], /^\| get +\| +1 \| +32 \|/);
    assert.match(kept[header + 3], /^\| get +\| +2 \| +32 \|/);
    assert.not.match(r.out, /\x1b\[(1|2|22)m/, 'no colour with NO_COLOR');
    const coloured = await underPty([...run, '--out-dir', dir], {});
    assert.is(coloured.code, 0, coloured.out);
    assert.match(coloured.out, /\x1b\[1m\| get .*PEAK/, 'the PEAK row bold on a terminal');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('piped: nothing but the final table (no live line, no row lines)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-progress-'));
  try {
    const r = await runCli([...run, '--out-dir', dir]);
    assert.is(r.code, 0, r.stderr);
    assert.not.match(r.stderr, /row \d+\/\d+|\| op +\| threads/);
    assert.not.match(r.stdout + r.stderr, /\x1b\[/);
    assert.match(r.stdout, /\| op +\| proto \|/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
