/**
 * Paper cuts of issue 26 item 4, through the real CLI: extra positional arguments are a usage
 * error (they were ignored, exit 0), `report --merge` refuses the same run twice (it doubled every
 * count), a diff names the run that lacks confidence intervals, and serve's segment flag is
 * node's name (--global-segment-size stays as an alias).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { freePort } from '../helpers/ports.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SharedHistogram } from '../../src/bench/histogram.js';
import { makeReport, makeRow } from '../../src/bench/report/metrics.js';
import { collectLocalHost } from '../../src/bench/report/host.js';
import { compactCells, renderConsole, renderMarkdown } from '../../src/bench/report/render.js';
import type { Report, Row } from '../../src/bench/report/types.js';

/** One of our own rows with 40 calls: its histogram is too short for a p99. */
function honestShortRow(): Row {
  const h = SharedHistogram.create();
  for (let i = 0; i < 40; i++) h.record(100_000 + i);
  const s = h.summary();
  return makeRow({ path: 'transport-read', op: 'read', protocol: 'shm', blockSize: 65536, batchSize: 64, threads: 1, calls: 40, pages: 2560, elapsedNs: 1e9, latency: s, histogram: h.encode(), latUnit: 'read' });
}

const bench = fileURLToPath(new URL('../../src/cli/peercache-bench.ts', import.meta.url));
const node = fileURLToPath(new URL('../../src/cli/peercache.ts', import.meta.url));
const cli = (bin: string, args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', bin, ...args], { encoding: 'utf8', timeout: 120_000 });
const suitePath = fileURLToPath(new URL('../../bench-results/hicache-suite-shm-20261125-014329.json', import.meta.url));

test('an extra positional argument is a one-line usage error, exit 2 (it was ignored, exit 0)', () => {
  for (const [bin, args] of [
    [bench, ['doctor', 'extra']],
    [bench, ['latency', '--protocol', 'tcp', 'oops']],
    [node, ['node', '--slot-bytes', '4k', 'stray']],
  ] as const) {
    const r = cli(bin, [...args]);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`unexpected argument '${args[args.length - 1]}' for '${args[0]}'`));
    assert.not.match(r.stderr, /\n\s+at /);
  }
});

test('report --merge of the same run twice is refused (by path and by content)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-cuts-'));
  try {
    const copy = join(dir, 'copy.json');
    writeFileSync(copy, readFileSync(suitePath));
    for (const files of [[suitePath, suitePath], [suitePath, copy]]) {
      const r = cli(bench, ['report', '--merge', ...files]);
      assert.is(r.status, 2, r.stderr);
      assert.match(r.stderr, /--merge: .* is the same (file|run) as .*; merging it twice would double its counts/);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('report a b: when only B lacks confidence intervals, the diff says so', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-cuts-'));
  try {
    const suite = JSON.parse(readFileSync(suitePath, 'utf8')) as Report;
    const withCi: Report = { ...suite, results: suite.results.map((r) => ({ ...r, trials: 3, pages_per_s_ci95: [r.pages_per_s * 0.95, r.pages_per_s * 1.05] })) };
    const a = join(dir, 'a.json');
    writeFileSync(a, JSON.stringify(withCi));
    const r = cli(bench, ['report', a, suitePath]);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /within ±5% \(B has no repeats' confidence intervals \(A has\)\)/);
    assert.not.match(r.stdout, /these runs have no/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("serve's segment flag is node's --global-segment; --global-segment-size is an alias", () => {
  const r = cli(bench, ['serve', '--help']);
  assert.match(r.stdout, /--global-segment <bytes>.*--global-segment-size is the same flag/);
  const n = cli(node, ['node', '--help']);
  assert.match(n.stdout, /--global-segment <bytes>.*Also --global-segment-size/);
});

test('a Mooncake row has no "n/a (<100 calls)" for a p99 Mooncake never reports; our own short rows keep it', () => {
  const mc = makeRow({ system: 'mooncake', path: 'transfer-engine', op: '', protocol: 'rdma', blockSize: 65536, batchSize: 64, threads: 4, calls: 40, pages: 0, ops: 2560, bytes: 2560 * 65536, elapsedNs: 1e9, latency: null });
  assert.not.match(compactCells(mc).join('|'), /n\/a \(</);
  const ours = honestShortRow();
  assert.match(compactCells(ours).join('|'), /n\/a \(<100 calls\)/);
});

test('the smoke banner of a shm run with one tcp row names that row, not protocol shm', () => {
  const shm = makeRow({ path: 'transport-read', op: 'read', protocol: 'shm', blockSize: 65536, batchSize: 64, threads: 1, calls: 200, pages: 12800, elapsedNs: 1e9, latency: null });
  const tcp = { ...makeRow({ system: 'mooncake', path: 'transfer-engine', op: '', protocol: 'tcp', blockSize: 65536, batchSize: 64, threads: 1, calls: 40, pages: 0, ops: 2560, bytes: 2560 * 65536, elapsedNs: 1e9, latency: null }), smoke: true };
  const r = makeReport({ command: 'peercache-bench compare --protocol shm', host: collectLocalHost(), meta: { mode: 'compare', protocol: 'shm' }, results: [shm, tcp], date: new Date(0) });
  for (const text of [renderMarkdown(r), renderConsole(r)]) {
    assert.match(text, /the rows marked so \(protocol tcp\) are a functional check, not a performance figure; the shm rows stand/);
    assert.not.match(text, /protocol .?shm.? is a functional check/);
  }
});

test('a mooncake --protocol rdma report whose Mooncake ran tcp names tcp as the functional check, not rdma', () => {
  const tcp = { ...makeRow({ system: 'mooncake', path: 'transfer-engine', op: '', protocol: 'tcp', blockSize: 65536, batchSize: 64, threads: 1, calls: 40, pages: 0, ops: 2560, bytes: 2560 * 65536, elapsedNs: 1e9, latency: null }), smoke: true };
  const r = makeReport({ command: 'peercache-bench mooncake --protocol rdma', host: collectLocalHost(), meta: { mode: 'mooncake', protocol: 'rdma', smoke: true }, results: [tcp], date: new Date(0) });
  const md = renderMarkdown(r);
  assert.match(md, /protocol `tcp` is a functional check/);
  assert.not.match(md, /protocol `rdma` is a functional check/);
  assert.is(r.meta.publishable, false);
});

test('an unreachable Redis directory is refused before measuring: one line, exit 2, no report (it wrote failed rows marked publishable)', async () => {
  const port = await freePort();
  const out = mkdtempSync(join(tmpdir(), 'pc-cuts-redis-'));
  try {
    const r = cli(bench, ['saturation', '--protocol', 'shm', '--directory', `redis://:hunter2@127.0.0.1:${port}/0`, '--concurrencies', '1,2', '--page-size', '16k', '--working-set', '64', '--duration', '0.5', '--warmup', '0.1', '--out-dir', out]);
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`--directory: cannot connect to the Redis directory at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0.*nothing was measured`));
    assert.not.match(r.stderr, /hunter2|\n\s+at /);
    assert.equal(readdirSync(out), [], 'no report written');
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

test.run();
