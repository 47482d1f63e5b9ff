/**
 * Noise is shown (issue 26 item 3): a repeated sweep's 95% CIs are in the Markdown table and drawn
 * as error bars in the plot, a PEAK the run cannot tell from its neighbours says so ("x4 ≈ x2
 * within noise"), the marks a table carries are explained in its notes, and `drive --processes N`
 * plots the concurrencies asked for, not N × them. The plot in a real browser: error bars drawn,
 * the PEAK label inside the plot (it ran over the right axis at the sweep's right end).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { markPeak, peakTies } from '../../src/bench/report/peak.js';
import { plotReport } from '../../src/bench/report/plot.js';
import { MARK_NOTES, renderConsole, renderMarkdown } from '../../src/bench/report/render.js';
import type { Report, Row } from '../../src/bench/report/types.js';

const suite = JSON.parse(readFileSync(new URL('../../bench-results/hicache-suite-shm-20261125-014329.json', import.meta.url), 'utf8')) as Report;
const executablePath = process.env.PEERCACHE_CHROMIUM ?? '/usr/bin/chromium';

/** The suite's get sweep as a repeated run: each row with a CI of `lo`..`hi` × its pages/s (or as given). */
function repeated(ci: (r: Row) => [number, number], pages: (r: Row) => number = (r) => r.pages_per_s): Report {
  const rows = suite.results
    .filter((r) => r.op === 'get' && r.phase === 'sweep')
    .map((r) => {
      const p = pages(r);
      return { ...r, pages_per_s: p, trials: 3, pages_per_s_ci95: ci({ ...r, pages_per_s: p }), cv: 0.12, noisy: true, peak: false };
    });
  return { ...suite, results: markPeak(rows) };
}

test('the Markdown shows each row\'s 95% CI, marks a PEAK within noise of its neighbours, and explains PEAK, NOISY and the CI', () => {
  // ±12%: x4 (150K) overlaps x2 (139K) and x8 (135K).
  const report = repeated((r) => [r.pages_per_s * 0.88, r.pages_per_s * 1.12]);
  const md = renderMarkdown(report);
  assert.match(md, /\| +pages\/s 95% CI +\|/);
  assert.match(md, /\| +132\.27K–168\.35K \|/, 'the PEAK row\'s interval');
  assert.match(md, /PEAK \(x4 ≈ x2, x8 within noise\)/);
  for (const note of [MARK_NOTES.peak, MARK_NOTES.tie, MARK_NOTES.noisy, MARK_NOTES.ci]) assert.ok(md.includes(note), note);
  assert.not.ok(md.includes(MARK_NOTES.knee), 'no KNEE in this table: not explained');
  assert.match(renderConsole(report), /PEAK \(x4 ≈ x2, x8 within noise\)/);
  // Tight intervals: the PEAK stands alone, and says nothing more.
  const clear = repeated((r) => [r.pages_per_s * 0.99, r.pages_per_s * 1.01]);
  assert.is(peakTies(clear.results).size, 0);
  const cmd = renderMarkdown(clear);
  assert.match(cmd, /\| PEAK; /);
  assert.not.ok(cmd.includes(MARK_NOTES.tie));
  // One trial: no interval, "-".
  assert.match(renderMarkdown(suite), /\| +pages\/s 95% CI +\|[^]*\| +- \|/);
});

test('the plot draws the 95% CIs as error bars and names the PEAK\'s ties', async () => {
  const plain = await plotReport(repeated(() => null as unknown as [number, number]));
  const svg = await plotReport(repeated((r) => [r.pages_per_s * 0.88, r.pages_per_s * 1.12]));
  const rules = (s: string) => (s.match(/class="mark-rule/g) ?? []).length;
  assert.ok(rules(svg!) > rules(plain!), 'error-bar marks');
  assert.ok(svg!.includes('>throughput (pages/s; bars: 95% CI)<'));
  assert.ok(svg!.includes('>PEAK 150.31K pages/s (≈ x2, x8 within noise)<'));
  assert.ok(plain!.includes('>throughput (pages/s)<'));
});

test('drive --processes 2: the x-axis shows the concurrencies asked for (1,2,4), not the total threads', async () => {
  const base = repeated((r) => [r.pages_per_s * 0.99, r.pages_per_s * 1.01]);
  const rows = base.results.slice(0, 3).map((r, i) => ({ ...r, threads: 2 * 2 ** i }));
  const svg = await plotReport({ ...base, meta: { ...base.meta, mode: 'dist', processes: 2, concurrencies: [1, 2, 4] }, results: markPeak(rows) });
  assert.ok(svg!.includes('>concurrency per process (× 2 driver processes)<'), 'axis title');
  const ticks = [...svg!.matchAll(/<text[^>]*>(\d+)<\/text>/g)].map((m) => Number(m[1]));
  assert.ok([1, 2, 4].every((t) => ticks.includes(t)) && !ticks.includes(8), `ticks ${ticks}`);
});

test('in Chromium: the error bars are drawn, and a PEAK at the right end keeps its label inside the plot', async () => {
  assert.ok(existsSync(executablePath), `${executablePath} missing: apt-get install chromium (or set PEERCACHE_CHROMIUM)`);
  // The PEAK at the last concurrency (64), where its label used to run over the right axis.
  const report = repeated((r) => [r.pages_per_s * 0.9, r.pages_per_s * 1.1], (r) => (r.threads === 64 ? 200_000 : r.pages_per_s));
  assert.is(report.results.find((r) => r.peak)!.threads, 64);
  const svg = (await plotReport(report))!;
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'], timeout: 60_000 });
  try {
    const page = await browser.newPage();
    await page.setContent(`<!doctype html><html><body style="margin:0;background:#fff">${svg}</body></html>`);
    const boxes = (await page.evaluate(`(() => {
      const box = (e) => { const b = e.getBoundingClientRect(); return { x: b.x, y: b.y, right: b.right, width: b.width, height: b.height }; };
      const peak = [...document.querySelectorAll('svg text')].find((t) => (t.textContent || '').startsWith('PEAK '));
      const axis = [...document.querySelectorAll('svg g')].find((g) => /^Y-axis titled 'latency/.test(g.getAttribute('aria-label') || ''));
      const bars = [...document.querySelectorAll('svg .mark-rule path, svg .mark-rule line')].map(box).filter((b) => b.height > 1);
      return { peak: peak && box(peak), axis: axis && box(axis), bars: bars.length };
    })()`)) as { peak?: { x: number; right: number }; axis?: { x: number }; bars: number };
    assert.ok(boxes.peak && boxes.axis, JSON.stringify(boxes));
    assert.ok(boxes.peak!.right <= boxes.axis!.x + 1, `PEAK label ends at ${boxes.peak!.right}, the right axis starts at ${boxes.axis!.x}`);
    assert.ok(boxes.bars >= 7, `${boxes.bars} error bars drawn for 7 rows`);
  } finally {
    await browser.close();
  }
});

test('saturation and suite --help explain PEAK, its ties, KNEE, SLO-PEAK and NOISY', () => {
  for (const mode of ['saturation', 'suite']) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('../../src/cli/peercache-bench.ts', import.meta.url)), mode, '--help'], { encoding: 'utf8' });
    assert.is(r.status, 0, r.stderr);
    for (const mark of ['PEAK =', 'within noise', 'KNEE =', 'SLO-PEAK =', 'NOISY =', '95% CI']) assert.ok(r.stdout.includes(mark), `${mode} --help: ${mark}`);
  }
});

test.run();
