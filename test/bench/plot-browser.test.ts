/**
 * The sweep plot rendered in a real browser: headless Chromium (Debian's `chromium`, installed by
 * .ci/run) driven by playwright-core. Checks the SVG draws something, carries its axis titles and
 * the PEAK label, and saves a PNG (path printed) for a person to look at.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { plotReport } from '../../src/bench/report/plot.js';
import type { Report } from '../../src/bench/report/types.js';

const executablePath = process.env.PEERCACHE_CHROMIUM ?? '/usr/bin/chromium';
const suite = JSON.parse(readFileSync(new URL('../../bench-results/hicache-suite-shm-20261125-014329.json', import.meta.url), 'utf8')) as Report;

test('suite plot in headless Chromium: drawn, axis titles and PEAK present, PNG saved', async () => {
  assert.ok(existsSync(executablePath), `${executablePath} missing: apt-get install chromium (or set PEERCACHE_CHROMIUM)`);
  const svg = await plotReport(suite);
  assert.ok(svg, 'a suite has sweeps');
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox'], timeout: 60_000 });
  try {
    const page = await browser.newPage();
    await page.setContent(`<!doctype html><html><body style="margin:0;background:#fff">${svg}</body></html>`);
    const plot = page.locator('svg').first();
    const box = await plot.boundingBox();
    assert.ok(box && box.width > 200 && box.height > 200, `size ${JSON.stringify(box)}`);
    const texts = await page.$$eval('svg text', (els) => els.map((e) => e.textContent ?? ''));
    for (const title of ['concurrency (workers)', 'throughput (pages/s)', 'latency µs (per call of 32 pages)']) {
      assert.ok(texts.includes(title), `axis title ${title}`);
    }
    assert.is(texts.filter((t) => t.startsWith('PEAK ')).length, 3, 'one PEAK per op');
    // Drawn, not blank: the rendered lines paint non-white pixels.
    // (a string: this code runs in the page, and the project's TS config has no DOM types)
    const painted = (await page.evaluate(`(async () => {
      const img = new Image();
      img.src = 'data:image/svg+xml;charset=utf-8,' + encodeURIComponent(${JSON.stringify(svg)});
      await img.decode();
      const canvas = document.createElement('canvas');
      canvas.width = img.width;
      canvas.height = img.height;
      const g = canvas.getContext('2d');
      g.drawImage(img, 0, 0);
      const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
      let n = 0;
      for (let i = 0; i < data.length; i += 4) if (data[i] < 200 || data[i + 1] < 200 || data[i + 2] < 200) n++;
      return n / (data.length / 4);
    })()`)) as number;
    assert.ok(painted > 0.01, `painted fraction ${painted}`);
    const png = await plot.screenshot();
    assert.ok(png.length > 10_000, `png ${png.length} bytes`);
    // Kept for a person to look at, so in the checkout's ignored .tmp/, not in /tmp.
    const dir = new URL('../../.tmp/plot-test/', import.meta.url).pathname;
    mkdirSync(dir, { recursive: true });
    const file = join(dir, 'suite-plot.png');
    writeFileSync(file, png);
    console.log(`  plot PNG: ${file}`);
  } finally {
    await browser.close();
  }
});

test.run();
