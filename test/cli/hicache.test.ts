/** The HiCache modes through the real CLI in a child process: artifacts, --json, bad input, Ctrl-C. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import hdr from 'hdr-histogram-js';
import { runCli } from '../helpers/cli.js';
import { schemaErrors } from '../helpers/schema.js';
import type { Report } from '../../src/bench/report/types.js';

const quick = ['--page-size', '16k', '--working-set', '128', '--duration', '0.4', '--warmup', '0.2'];

function outDir(): string {
  return mkdtempSync(join(tmpdir(), 'pcbench-cli-'));
}

for (const protocol of ['shm', 'tcp'] as const) {
  test(`suite --protocol ${protocol} end to end: table on stdout, JSON + Markdown written, schema-valid`, async () => {
    const dir = outDir();
    try {
      const r = await runCli(['suite', '--protocol', protocol, '--concurrencies', '1,2', ...quick, '--out-dir', dir, '--tag', 'ci']);
      assert.is(r.code, 0, r.stderr);
      const files = readdirSync(dir).sort();
      assert.is(files.length, 3, files.join());
      assert.match(files[2], /\.svg$/, 'the sweep plot beside the JSON and Markdown');
      assert.match(files[0], new RegExp(`^hicache-suite-${protocol}-ci-\\d{8}-\\d{6}\\.json$`));
      const report = JSON.parse(readFileSync(join(dir, files[0]), 'utf8')) as Report;
      assert.is(schemaErrors(report), null);
      assert.is(report.results.length, 9);
      // The suite repeats every row 3 times by default: medians, CI and CV on every measured row.
      for (const row of report.results.filter((x) => x.ok)) {
        assert.is(row.trials, 3, row.note);
        assert.ok(row.cv !== null && row.pages_per_s_ci95 !== null && typeof row.noisy === 'boolean', row.note);
      }
      assert.match(report.command, /^peercache-bench suite --protocol/);
      assert.match(r.stdout, /\| op +\| proto +\| +page \| batch \| threads \| pages\/s/);
      assert.match(r.stdout, /PEAK/);
      const md = readFileSync(join(dir, files[1]), 'utf8');
      assert.match(md, /^# PeerCache HiCache benchmark/);
      if (protocol === 'tcp') {
        assert.match(r.stdout, /smoke — not publishable/);
        assert.match(md, /smoke — not publishable/);
      } else {
        assert.not.match(r.stdout, /not publishable/);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('--json prints the report on stdout (the table goes to stderr); a second run never overwrites the first', async () => {
  const dir = outDir();
  try {
    const args = ['throughput', '--protocol', 'shm', '--op', 'exists', '--concurrency', '2', ...quick, '--out-dir', dir, '--json'];
    const a = await runCli(args);
    assert.is(a.code, 0, a.stderr);
    const report = JSON.parse(a.stdout) as Report;
    assert.is(schemaErrors(report), null);
    assert.is(report.results.length, 1);
    assert.is(report.results[0].op, 'exists');
    assert.match(a.stderr, /\|\s*\*?exists/);
    const b = await runCli(args);
    assert.is(b.code, 0, b.stderr);
    assert.is(readdirSync(dir).length, 4, 'two runs, four files');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--interval 200ms: a series per row whose calls sum to the row\'s, warmup intervals, a .hlog HistogramLogReader reads back', async () => {
  const dir = outDir();
  try {
    const durationS = 1.2;
    const r = await runCli(['throughput', '--protocol', 'shm', '--op', 'get', '--concurrency', '2', '--page-size', '16k', '--working-set', '128', '--duration', String(durationS), '--warmup', '0.5', '--interval', '200ms', '--out-dir', dir]);
    assert.is(r.code, 0, r.stderr);
    const files = readdirSync(dir).sort();
    assert.equal(files.map((f) => f.replace(/^.*\./, '')), ['hlog', 'json', 'md']);
    assert.match(r.stderr, /wrote .*\.hlog/);
    const report = JSON.parse(readFileSync(join(dir, files[1]), 'utf8')) as Report;
    assert.is(schemaErrors(report), null);
    assert.is(report.meta.interval_s, 0.2);
    const row = report.results[0];
    assert.ok(row.ok, row.note);
    const measured = row.intervals!.filter((i) => i.phase === 'measure');
    const warm = row.intervals!.filter((i) => i.phase === 'warmup');
    // duration / interval boundaries, give or take one: on a loaded machine a timer may fire late.
    assert.ok(measured.length >= durationS / 0.2 - 1 && measured.length <= durationS / 0.2 + 1, `${measured.length} intervals`);
    assert.ok(warm.length >= 1 && warm.length <= 3, `${warm.length} warmup intervals`);
    // The sum is exact: every interval is a snapshot difference and the last is read after the workers finished.
    assert.is(measured.reduce((s, i) => s + i.calls, 0), row.calls);
    assert.is(measured.reduce((s, i) => s + i.pages, 0), row.pages);
    const span = measured.reduce((s, i) => s + i.duration_s, 0);
    assert.ok(Math.abs(span - row.duration_s) < 0.01, `intervals span ${span} s, window ${row.duration_s} s`);
    for (let k = 1; k < row.intervals!.length; k++) {
      const [a, b] = [row.intervals![k - 1], row.intervals![k]];
      assert.ok(Math.abs(a.start_s + a.duration_s - b.start_s) < 0.01, `contiguous at ${k}`);
    }
    const md = readFileSync(join(dir, files[2]), 'utf8');
    assert.match(md, /## Intervals/);
    const reader = new hdr.HistogramLogReader(readFileSync(join(dir, files[0]), 'utf8'), 64);
    let count = 0;
    let n = 0;
    const merged = hdr.build({ bitBucketSize: 64, highestTrackableValue: 3_600_000_000 });
    for (let h = reader.nextIntervalHistogram(); h !== null; h = reader.nextIntervalHistogram()) {
      if (h.tag !== 'row=0-get-c2-b32') continue;
      count += h.totalCount;
      merged.add(h);
      n++;
    }
    assert.is(n, measured.length);
    assert.is(count, row.calls);
    const p50 = merged.getValueAtPercentile(50);
    assert.ok(Math.abs(p50 - row.lat_us_p50!) <= row.lat_us_p50! * 0.002 + 1, `p50 ${p50} vs ${row.lat_us_p50}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input: one line, exit 2, no stack trace, nothing written', async () => {
  const dir = outDir();
  try {
    const cases: [string[], RegExp][] = [
      [['suite', '--protocol', 'shm', '--concurency', '8'], /unknown option --concurency/],
      [['suite', '--protocol', 'shm', '--duration', 'ten'], /--duration/],
      [['suite', '--protocol', 'shm', '--concurrencies', ''], /--concurrencies/],
      [['suite', '--protocol', 'shm', '--concurrencies', '0,1'], /--concurrencies/],
      [['suite', '--protocol', 'shm', '--concurrencies', '1,-2'], /--concurrencies/],
      [['saturation', '--protocol', 'shm', '--op', 'delete'], /--op/],
      [['suite', '--protocol', 'ib'], /--protocol/],
      [['suite', '--protocol', 'shm', '--page-size', '4g', '--max-bytes', '1g'], /over --max-bytes/],
      [['suite', '--protocol', 'shm', '--batch-size', '0'], /--batch-size/],
      [['throughput', '--protocol', 'shm', '--concurrency', 'x'], /--concurrency/],
      [['saturation', '--protocol', 'shm', '--repeat', '0'], /--repeat/],
      [['saturation', '--protocol', 'shm', '--noisy-cv', 'high'], /--noisy-cv/],
      [['saturation', '--protocol', 'shm', '--slo-p99', '0'], /--slo-p99/],
      [['saturation', '--protocol', 'shm', '--host-pool', 'lots'], /--host-pool/],
      [['saturation', '--protocol', 'shm', '--rate-sweep', '1k,2k'], /--rate-sweep runs at one concurrency/],
      [['saturation', '--protocol', 'shm', '--concurrencies', '4', '--rate-sweep', '1k,fast'], /--rate-sweep/],
      [['throughput', '--protocol', 'shm', '--rate', '-5'], /--rate/],
      [['throughput', '--protocol', 'shm', '--op', 'prefetch', '--hit-ratio', '1.5'], /--hit-ratio/],
      [['throughput', '--protocol', 'shm', '--op', 'prefetch', '--readers-per-key', '0'], /--readers-per-key/],
      [['throughput', '--protocol', 'shm', '--rate', '1k', '--arrival', 'bursty'], /--arrival/],
      [['saturation', '--protocol', 'shm', '--host-pool', '1m'], /the host pool holds 8 pages, fewer than the widest row has in flight/],
      [['throughput', '--protocol', 'shm', '--interval', '0'], /--interval: "0" must be more than 0 seconds/],
      [['throughput', '--protocol', 'shm', '--interval', '-1s'], /--interval: "-1s" is not a duration/],
      [['throughput', '--protocol', 'shm', '--interval', 'abc'], /--interval: "abc" is not a duration/],
      [['throughput', '--protocol', 'shm', '--interval', '5ms'], /--interval: "5ms" must be at least 100 ms/],
      [['suite', '--protocol', 'shm', '--interval', '0.05'], /--interval: "0.05" must be at least 100 ms/],
      [['suite', '--protocol', 'shm', '--model', 'gpt-5'], /--model: unknown model 'gpt-5': one of deepseek-v3, /],
      [['suite', '--protocol', 'shm', '--model', 'deepseek-v3', '--page-size', '4k'], /--model deepseek-v3 sets --page-size: give one of them/],
      [['suite', '--protocol', 'shm', '--model', 'deepseek-v3', '--layout', 'mha'], /--model deepseek-v3 sets --layout/],
      [['suite', '--protocol', 'shm', '--tp', '8'], /--tp is used with --model only/],
      [['suite', '--protocol', 'shm', '--model', 'llama-3-70b', '--tp', '0'], /--tp/],
    ];
    for (const [args, pattern] of cases) {
      const r = await runCli([...args, '--out-dir', dir]);
      assert.is(r.code, 2, `${args.join(' ')} -> ${r.code}: ${r.stderr}`);
      assert.match(r.stderr, pattern, args.join(' '));
      assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
    }
    assert.is(readdirSync(dir).length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('rdma on a host without an RDMA NIC: one clear line and exit 1', async () => {
  const dir = outDir();
  const r = await runCli(['latency', ...quick, '--out-dir', dir]).finally(() => rmSync(dir, { recursive: true, force: true }));
  if (r.code === 0) return; // a host with an RDMA NIC
  assert.is(r.code, 1);
  assert.match(r.stderr, /protocol 'rdma' cannot run here.*--protocol shm/);
  assert.not.match(r.stderr, /\n\s+at /);
});

test('Ctrl-C stops cleanly and still writes what was measured', async () => {
  const dir = outDir();
  try {
    let pid = 0;
    let interrupted = false;
    // Ctrl-C once the log says the first row is measuring (its window is 30 s).
    const run = runCli(['saturation', '--protocol', 'shm', '--concurrencies', '1,2,4', '--page-size', '16k', '--working-set', '128', '--duration', '30', '--warmup', '0.2', '--out-dir', dir, '--log-level', 'debug'], {
      onSpawn: (p) => (pid = p),
      onStderr: (soFar) => {
        if (interrupted || !/row 1\/3 get x1: measure\n/.test(soFar)) return;
        interrupted = true;
        process.kill(pid, 'SIGINT');
      },
    });
    const r = await run;
    assert.is(r.code, 130, r.stderr);
    assert.match(r.stderr, /interrupted/);
    const all = readdirSync(dir);
    assert.ok(all.some((f) => f.endsWith('.svg')), `an interrupted sweep plots what it measured: ${all.join()}`);
    const files = all.filter((f) => !f.endsWith('.svg'));
    assert.is(files.length, 2, files.join());
    const report = JSON.parse(readFileSync(join(dir, files.find((f) => f.endsWith('.json'))!), 'utf8')) as Report;
    assert.is(schemaErrors(report), null);
    assert.ok(report.results.length >= 1 && report.results[0].ok, JSON.stringify(report.results.map((x) => x.note)));
    assert.ok(report.results[0].duration_s < 30);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
