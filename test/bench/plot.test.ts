/** The sweep plot in Node (no browser): which reports get one, what it says, the marker hook, and writeReport embedding it. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { plotReport, plotSpec, sweeps } from '../../src/bench/report/plot.js';
import { writeReport } from '../../src/bench/report/write.js';
import type { Report } from '../../src/bench/report/types.js';

const load = (name: string) => JSON.parse(readFileSync(new URL(`../../bench-results/${name}`, import.meta.url), 'utf8')) as Report;
const suite = load('hicache-suite-shm-20261125-014329.json');

test('sweeps: one per op of the suite; none for compare or micro', () => {
  assert.equal(sweeps(suite).map((s) => [s.series, s.rows.map((r) => r.threads).join(',')]), [
    ['get', '1,2,4,8,16,32,64'], ['set', '1,2,4,8,16,32,64'], ['exists', '1,2,4,8,16,32,64'],
  ]);
  assert.is(plotSpec(load('compare-shm-skip-mooncake-20261125-002016.json')), undefined);
  assert.is(plotSpec(load('micro-shm-20261125-002253.json')), undefined);
  assert.is(sweeps(load('hicache-dist-get-shm-20261125-000032.json')).length, 1);
});

test('plotReport: an SVG with the axis titles, the PEAK labels and extra markers', async () => {
  const svg = await plotReport(suite, { markers: () => [{ series: 'get', x: 8, label: 'knee' }] });
  assert.ok(svg && svg.startsWith('<svg'), 'svg');
  for (const t of ['concurrency (workers)', 'throughput (pages/s)', 'latency µs (per call of 32 pages)', 'PEAK 150.31K pages/s', 'PEAK 60.02K pages/s', 'PEAK 382.33K pages/s', 'knee']) {
    assert.ok(svg!.includes(`>${t}<`), t);
  }
});

test('plot: an open-loop sweep is drawn against the offered load', async () => {
  const open: Report = {
    ...suite,
    results: suite.results.filter((r) => r.op === 'get' && r.phase === 'sweep').map((r, i) => ({ ...r, extra: { offered_pages_per_s: 10_000 * (i + 1) } })),
  };
  const svg = await plotReport(open);
  assert.ok(svg!.includes('>offered load (pages/s)<'));
});

test('writeReport writes the SVG beside the JSON/MD and the Markdown embeds it', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pcbench-plot-'));
  try {
    const svg = await plotReport(suite);
    const paths = await writeReport(suite, { outDir: dir, name: 'hicache-suite-shm-x', svg });
    assert.equal(readdirSync(dir).sort(), ['hicache-suite-shm-x.json', 'hicache-suite-shm-x.md', 'hicache-suite-shm-x.svg']);
    assert.is(paths.svg, join(dir, 'hicache-suite-shm-x.svg'));
    assert.match(readFileSync(paths.md, 'utf8'), /\n!\[throughput and latency vs concurrency\]\(hicache-suite-shm-x\.svg\)\n/);
    // A second run of the same name gets -1 for all three files, and its Markdown points at its own plot.
    const again = await writeReport(suite, { outDir: dir, name: 'hicache-suite-shm-x', svg });
    assert.match(readFileSync(again.md, 'utf8'), /\(hicache-suite-shm-x-1\.svg\)/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
