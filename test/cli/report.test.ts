/** `peercache-bench report`: re-render, diff and merge of committed artifacts in bench-results/. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { schemaErrors } from '../helpers/schema.js';
import { diffReports } from '../../src/bench/report/diff.js';
import { mergeReports } from '../../src/bench/report/merge-runs.js';
import { SharedHistogram } from '../../src/bench/histogram.js';
import type { Report, Row } from '../../src/bench/report/types.js';

const B = 'bench-results';
const SUITE_SHM = `${B}/hicache-suite-shm-20261125-014329.json`;
const SUITE_TCP = `${B}/hicache-suite-tcp-20261125-015015.json`;
const DIST_A = `${B}/hicache-dist-get-shm-20261125-000032.json`;
const DIST_B = `${B}/hicache-dist-get-shm-20261125-000059.json`;
const MICRO = `${B}/micro-shm-20261125-002253.json`;
const load = (p: string) => JSON.parse(readFileSync(p, 'utf8')) as Report;
const cells = (l: string): string[] => l.split('|').slice(1, -1).map((c) => c.trim());

test('report a.json re-renders the Markdown with the baseline table; csv and json formats', async () => {
  const md = await runCli(['report', SUITE_SHM]);
  assert.is(md.code, 0, md.stderr);
  assert.match(md.stdout, /^# PeerCache HiCache benchmark\n\n\| op +\| layout \|/);
  assert.match(md.stdout, /\n\| get \(peak\) +\| mla +\| 128 KiB \| +32 \| +4 \| 150\.31K \|/);
  const csv = await runCli(['report', SUITE_SHM, '--format', 'csv']);
  assert.is(csv.code, 0, csv.stderr);
  const lines = csv.stdout.trim().split('\r\n');
  assert.is(lines.length, 1 + 24);
  assert.ok(lines[0].startsWith('layout,system,path,protocol,block_size,'), lines[0]);
  assert.not.match(csv.stdout, /histogram|HISTF/);
  const json = await runCli(['report', SUITE_SHM, '--format', 'json']);
  assert.equal(JSON.parse(json.stdout), load(SUITE_SHM));
});

test('report --write puts the .md and the .svg plot beside the JSON', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-report-'));
  try {
    copyFileSync(SUITE_SHM, join(dir, 'run.json'));
    const r = await runCli(['report', '--write', join(dir, 'run.json')]);
    assert.is(r.code, 0, r.stderr);
    assert.equal(readdirSync(dir).sort(), ['run.json', 'run.md', 'run.svg']);
    assert.match(readFileSync(join(dir, 'run.md'), 'utf8'), /\]\(run\.svg\)/);
    assert.match(readFileSync(join(dir, 'run.svg'), 'utf8'), /^<svg[^]*>PEAK 150\.31K pages\/s</);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('report a.json b.json diffs two committed runs row by row', async () => {
  const r = await runCli(['report', SUITE_SHM, SUITE_TCP]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /configuration differs: protocol \("shm" vs "tcp"\)/);
  const rows = r.stdout.split('\n').filter((l) => l.startsWith('| ')).slice(2);
  assert.is(rows.length, 24);
  const getPeak = rows.map(cells).find((c) => c[0] === 'get' && c[4] === '4')!;
  assert.equal(getPeak.slice(5, 8), ['150.31K', '19.12K', '×0.13']);
  const setLatency = rows.map(cells).find((c) => c[0] === 'set (latency)')!;
  assert.is(setLatency[14], '≈ noise', 'within ±5%');
  const json = await runCli(['report', SUITE_SHM, SUITE_TCP, '--format', 'json']);
  const d = JSON.parse(json.stdout) as { rows: { op: string; threads: number; throughput_ratio: number; within_noise: boolean }[] };
  assert.is(d.rows.length, 24);
  assert.ok(d.rows.every((x) => typeof x.throughput_ratio === 'number'));
  const csv = await runCli(['report', SUITE_SHM, SUITE_TCP, '--format', 'csv']);
  assert.match(csv.stdout, /^op,phase,layout,page,batch,threads,unit,a_throughput,b_throughput,throughput_ratio,/);
  // Rows of one side only are listed as such.
  const dist = await runCli(['report', DIST_A, DIST_B]);
  assert.is(dist.code, 0, dist.stderr);
  assert.match(dist.stdout, /\| get +\| mla +\| 128 KiB \| +32 \| +1 \|.*\| only in A +\|/);
});

test('diff: the confidence intervals decide the noise marker when the rows have them', () => {
  const a = load(SUITE_SHM);
  const withCi = (r: Report, lo: number, hi: number): Report => ({
    ...r,
    results: r.results.map((row) => ({ ...row, throughput_gbps_ci95: [row.throughput_gbps * lo, row.throughput_gbps * hi] }) as Row),
  });
  const b: Report = { ...a, results: a.results.map((row) => ({ ...row, pages_per_s: row.pages_per_s * 1.2, throughput_gbps: row.throughput_gbps * 1.2 })) };
  const overlapping = diffReports(withCi(a, 0.8, 1.2), withCi(b, 0.8, 1.2), { a: 'a', b: 'b' });
  const row = overlapping.rows.find((d) => d.key.op === 'get' && d.key.threads === 4 && d.key.phase === 'sweep')!;
  assert.is(row.throughput_ratio, 1.2);
  assert.is(row.noise_basis, 'ci95');
  assert.is(row.within_noise, true, '20% apart but the intervals overlap');
  const tight = diffReports(withCi(a, 0.99, 1.01), withCi(b, 0.99, 1.01), { a: 'a', b: 'b' });
  assert.is(tight.rows.find((d) => d.key.op === 'get' && d.key.threads === 4)!.within_noise, false);
  assert.is(diffReports(a, b, { a: 'a', b: 'b' }).rows[0].noise_basis, 'threshold');
});

test('incompatible inputs: one line naming the fields that differ, exit 2', async () => {
  const diff = await runCli(['report', DIST_A, MICRO]);
  assert.is(diff.code, 2);
  assert.is(diff.stderr.trim().split('\n').length, 1, diff.stderr);
  assert.match(diff.stderr, /^peercache-bench report: .* have no row in common .*; they differ in mode \("dist" vs "micro"\)/);
  const merge = await runCli(['report', '--merge', DIST_A, DIST_B]);
  assert.is(merge.code, 2);
  assert.match(merge.stderr, /^peercache-bench report: cannot merge hicache-dist-get-shm-20261125-000032\.json and hicache-dist-get-shm-20261125-000059\.json: they differ in concurrencies \(\[1,2,4\] vs \[1,2\]\)\n$/);
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-report-'));
  try {
    writeFileSync(join(dir, 'bad.json'), '{ not json');
    const bad = await runCli(['report', join(dir, 'bad.json')]);
    assert.is(bad.code, 2);
    assert.match(bad.stderr, /bad\.json: not JSON/);
    writeFileSync(join(dir, 'other.json'), '{"a": 1}');
    const other = await runCli(['report', join(dir, 'other.json')]);
    assert.match(other.stderr, /other\.json: not a peercache-bench report/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const none = await runCli(['report']);
  assert.is(none.code, 2);
  const three = await runCli(['report', SUITE_SHM, SUITE_TCP, DIST_A]);
  assert.is(three.code, 2);
  assert.match(three.stderr, /add --merge/);
});

const only = (r: Report, threads: number): Report => ({ ...r, meta: { ...r.meta, concurrencies: [threads] }, results: r.results.filter((x) => x.threads === threads) });

test('--merge: histograms merged exactly (counts add, percentiles of the union), threads and counters added', () => {
  const a = only(load(DIST_A), 2);
  const b = only(load(DIST_B), 2);
  const merged = mergeReports([{ name: 'a.json', report: a }, { name: 'b.json', report: b }]);
  assert.is(schemaErrors(merged), null);
  const [ra, rb, m] = [a.results[0], b.results[0], merged.results[0]];
  assert.is(m.threads, 4);
  assert.is(m.calls, ra.calls + rb.calls);
  assert.is(m.pages, ra.pages + rb.pages);
  const count = (h: string) => SharedHistogram.decode(h).count;
  assert.is(count(m.histogram!), count(ra.histogram!) + count(rb.histogram!));
  assert.ok(m.lat_us_p50! >= Math.min(ra.lat_us_p50!, rb.lat_us_p50!) && m.lat_us_p50! <= Math.max(ra.lat_us_p50!, rb.lat_us_p50!));
  assert.is(m.lat_us_max, Math.max(ra.lat_us_max!, rb.lat_us_max!));
  assert.match(m.note, /merged 2 runs/);
  assert.equal(merged.meta.merged_from, ['a.json', 'b.json']);
});

test('report --merge x.json y.json through the CLI: one row per configuration, --out-dir writes the artifact', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-report-'));
  try {
    copyFileSync(DIST_A, join(dir, 'host1.json'));
    // A second host's run with the same figures (the same run twice is refused: paper-cuts.test.ts).
    const second = load(DIST_A);
    writeFileSync(join(dir, 'host2.json'), JSON.stringify({ ...second, host: { ...second.host, hostname: `${second.host.hostname}-2` } }));
    const out = join(dir, 'merged');
    const r = await runCli(['report', '--merge', join(dir, 'host1.json'), join(dir, 'host2.json'), '--format', 'json', '--out-dir', out]);
    assert.is(r.code, 0, r.stderr);
    const merged = JSON.parse(r.stdout) as Report;
    const src = load(DIST_A);
    assert.equal(merged.results.map((x) => x.threads), src.results.map((x) => x.threads * 2));
    merged.results.forEach((x, i) => {
      assert.is(x.calls, src.results[i].calls * 2);
      assert.is(x.lat_us_p99, src.results[i].lat_us_p99, 'the same samples twice: the same percentiles');
    });
    assert.equal(readdirSync(out).map((f) => f.replace(/^host1-merged/, 'X')).sort(), ['X.json', 'X.md', 'X.svg']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
