import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { failedRow, makeReport, makeRow, type LatencySummary, type RowInput } from '../../src/bench/report/metrics.js';
import { markPeak, peakKey } from '../../src/bench/report/peak.js';
import { fileTimestamp, humanBytes, humanCount, iecBytes, isoSeconds, thousands, toJsonSafe } from '../../src/bench/report/format.js';
import { formats, hicacheCells, render, renderConsole, renderMarkdown, setupSentence, SMOKE_BANNER } from '../../src/bench/report/render.js';
import { artifactName, sanitizeTag, writeReport } from '../../src/bench/report/write.js';
import { collectHost } from '../../src/bench/report/host.js';
import { packageVersion } from '../../src/version.js';
import { SMOKE_LABEL, type Host, type JsonValue, type Meta, type Report, type Row } from '../../src/bench/report/types.js';
import { errorsOf, validate } from '../helpers/schema.js';

const KiB = 1024;
const SEC = 1e9;

const host: Host = {
  platform: 'linux', os_release: '6.1.0', arch: 'x64', cpu_model: 'Test CPU @ 2.0GHz', cpu_count: 2,
  node_version: 'v20.20.2', package_version: '0.1.0', ucx_version: '1.13.1', hostname: 'box',
};

const lat = (us: number): LatencySummary => ({
  count: 10000, min_ns: us * 500, max_ns: us * 3000, mean_ns: us * 1000, p50_ns: us * 1000,
  p90_ns: us * 1500, p95_ns: us * 1600, p99_ns: us * 2000, p999_ns: us * 2500, p9999_ns: us * 2900,
});

function getRow(over: Partial<RowInput> = {}): Row {
  return makeRow({
    path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 128 * KiB, components: 1, batchSize: 32,
    threads: 1, tokensPerPage: 64, calls: 32, pagesRequested: 1000, pages: 1000, elapsedNs: 2 * SEC,
    latency: lat(100), phase: 'sweep', latUnit: 'batch_call', transports: ['sysv/memory'], ...over,
  });
}

function report(results: Row[], protocol: 'shm' | 'tcp' = 'shm'): Report {
  return makeReport({
    command: `peercache-bench suite --protocol ${protocol}`,
    host,
    meta: { mode: 'suite', protocol, transports: ['sysv/memory'], device: null, layout: 'mla', page_size: 131072, batch_size: 32, tokens_per_page: 64, concurrencies: [1, 2, 4], duration_s: 10, warmup_s: 2 },
    results,
    notes: ['a note'],
    date: new Date(Date.UTC(2026, 10, 24, 23, 5, 26, 789)),
  });
}

// ---------------------------------------------------------------- metrics

test('metrics: 1000 pages of 128 KiB mla in 2 s', () => {
  const r = getRow();
  assert.is(r.duration_s, 2);
  assert.is(r.pages, 1000);
  assert.is(r.pages_per_s, 500);
  assert.is(r.tokens_per_s, 32000);
  assert.is(r.ops, 1000);
  assert.is(r.ops_per_s, 500);
  assert.is(r.bytes_total, 131_072_000);
  assert.is(r.throughput_gbps, 0.0655);
  assert.is(r.hit_rate, 1);
  assert.is(r.calls, 32);
  assert.is(r.pages_requested, 1000);
  assert.is(r.errors, 0);
  assert.is(r.ok, true);
  assert.is(r.peak, false);
  assert.is(r.smoke, false);
  assert.is(r.system, 'peercache');
  assert.equal(r.transports, ['sysv/memory']);
});

test('metrics: field order starts with the original BenchResult order', () => {
  const keys = Object.keys(getRow());
  assert.equal(keys.slice(0, 25), [
    'system', 'path', 'protocol', 'block_size', 'batch_size', 'threads', 'duration_s', 'ops', 'bytes_total',
    'throughput_gbps', 'ops_per_s', 'lat_us_mean', 'lat_us_p50', 'lat_us_p90', 'lat_us_p95', 'lat_us_p99',
    'lat_us_p999', 'lat_us_max', 'op', 'pages', 'pages_per_s', 'tokens_per_s', 'hit_rate', 'note', 'ok',
  ]);
});

test('metrics: mha doubles ops and bytes, not pages', () => {
  const r = getRow({ components: 2 });
  assert.is(r.pages_per_s, 500);
  assert.is(r.ops, 2000);
  assert.is(r.bytes_total, 262_144_000);
  assert.is(r.throughput_gbps, 0.1311);
});

test('metrics: hit rate, exists and set defaults', () => {
  assert.is(getRow({ pages: 750, pagesRequested: 1000 }).hit_rate, 0.75);
  assert.is(getRow({ pagesRequested: 0, pages: 0 }).hit_rate, null);
  const ex = getRow({ path: 'hicache-exists', op: 'exists', pages: 1000, pagesRequested: 1000 });
  assert.is(ex.ops, 1000);
  assert.is(ex.bytes_total, 0);
  assert.is(ex.throughput_gbps, 0);
  assert.is(ex.hit_rate, null);
  assert.is(getRow({ path: 'hicache-set', op: 'set' }).hit_rate, null);
  const explicit = getRow({ ops: 7, bytes: 7000 });
  assert.is(explicit.ops, 7);
  assert.is(explicit.bytes_total, 7000);
});

test('metrics: elapsed 0 (or negative) gives zero rates, never NaN/Infinity', () => {
  for (const elapsedNs of [0, -5, 0n, Number.NaN]) {
    const r = getRow({ elapsedNs });
    assert.is(r.duration_s, 0);
    assert.is(r.pages_per_s, 0);
    assert.is(r.tokens_per_s, 0);
    assert.is(r.ops_per_s, 0);
    assert.is(r.throughput_gbps, 0);
  }
  assert.is(getRow({ elapsedNs: 2_000_000_000n }).pages_per_s, 500);
});

test('metrics: latency ns → µs with 2 dp; no sample → null', () => {
  const r = getRow({
    latency: { count: 1000, min_ns: 1000, max_ns: 123_456_789, mean_ns: 12_345.6, p50_ns: 1_234, p90_ns: 1_235, p95_ns: 1_999.4, p99_ns: 5_006, p999_ns: 100_001, p9999_ns: 100_002 },
  });
  assert.is(r.lat_us_mean, 12.35);
  assert.is(r.lat_us_p50, 1.23);
  assert.is(r.lat_us_p90, 1.24);
  assert.is(r.lat_us_p95, 2);
  assert.is(r.lat_us_p99, 5.01);
  assert.is(r.lat_us_p999, 100);
  assert.is(r.lat_us_max, 123_456.79);
  for (const latency of [null, { ...lat(1), count: 0 }]) {
    const e = getRow({ latency });
    for (const k of ['lat_us_mean', 'lat_us_p50', 'lat_us_p90', 'lat_us_p95', 'lat_us_p99', 'lat_us_p999', 'lat_us_max'] as const) {
      assert.is(e[k], null, k);
    }
  }
});

test('metrics: rounding of rates (3/4/1 dp)', () => {
  const r = getRow({ pages: 1, pagesRequested: 1, elapsedNs: 3 * SEC, tokensPerPage: 64, blockSize: 1000 });
  assert.is(r.duration_s, 3);
  assert.is(r.pages_per_s, 0.3);
  assert.is(r.tokens_per_s, 21.3); // 64/3 = 21.333 from the unrounded rate
  assert.is(r.throughput_gbps, 0);
  assert.is(getRow({ elapsedNs: 1_234_567_891 }).duration_s, 1.235);
});

test('metrics: bad counters throw; smoke rows carry the label; cpu/rss/extra', () => {
  assert.throws(() => getRow({ pages: -1 }), /pages/);
  assert.throws(() => getRow({ calls: Number.NaN }), /calls/);
  const s = makeRow({ path: 'hicache-get', op: 'get', protocol: 'tcp', blockSize: 4096, batchSize: 4, threads: 1, calls: 1, pages: 4, elapsedNs: SEC, latency: null, note: 'batch_get_v1 mla' });
  assert.is(s.smoke, true);
  assert.is(s.note, `batch_get_v1 mla [${SMOKE_LABEL}]`);
  assert.is(s.tokens_per_s, 0);
  const c = getRow({ cpu: 93.456, rss: 1234.7, extra: { queue_depth: 3, bad: Number.NaN } });
  assert.is(c.cpu_client_pct, 93.5);
  assert.is(c.rss_per_worker_bytes, 1235);
  assert.equal(c.extra, { queue_depth: 3, bad: null });
  assert.ok(validate(toJsonSafe(report([c, s]))), errorsOf());
  assert.is(getRow().cpu_client_pct, null);
});

test('metrics: failedRow', () => {
  const f = failedRow({ path: 'hicache-set', op: 'set', protocol: 'shm', blockSize: 4096, batchSize: 8, threads: 4, phase: 'sweep' }, 'pool exhausted');
  assert.is(f.ok, false);
  assert.is(f.note, 'pool exhausted');
  assert.is(f.ops, 0);
  assert.is(f.pages, 0);
  assert.is(f.bytes_total, 0);
  assert.is(f.pages_per_s, 0);
  assert.is(f.lat_us_p99, null);
  assert.is(f.hit_rate, null);
  assert.is(f.histogram, null);
  assert.is(f.threads, 4);
});

test('makeReport: header fields, smoke/publishable from protocol', () => {
  const r = report([getRow()]);
  assert.is(r.schema, 'peercache-bench/report');
  assert.is(r.schema_version, 1);
  assert.is(r.created_at, '2026-11-24T23:05:26Z');
  assert.equal(r.tool, { name: 'peercache-bench', version: '0.1.0' });
  assert.is(r.meta.smoke, false);
  assert.is(r.meta.publishable, true);
  const t = report([], 'tcp');
  assert.is(t.meta.smoke, true);
  assert.is(t.meta.publishable, false);
});

// ---------------------------------------------------------------- peak

test('peak: highest wins per op group; input not mutated', () => {
  const rows = [
    getRow({ threads: 1, pages: 100 }),
    getRow({ threads: 2, pages: 300 }),
    getRow({ threads: 4, pages: 200 }),
    getRow({ path: 'hicache-set', op: 'set', threads: 1, pages: 50 }),
    getRow({ path: 'hicache-set', op: 'set', threads: 2, pages: 40 }),
  ];
  const out = markPeak(rows);
  assert.equal(out.map((r) => r.peak), [false, true, false, true, false]);
  assert.ok(rows.every((r) => !r.peak), 'input untouched');
  assert.is.not(out[1], rows[1]);
});

test('peak: ties go to the first; ok:false, zero and baseline rows never peak', () => {
  const rows = [
    getRow({ threads: 1, phase: 'latency-baseline', pages: 9000 }),
    getRow({ threads: 2, pages: 500 }),
    getRow({ threads: 4, pages: 500 }),
    { ...getRow({ threads: 8, pages: 900 }), ok: false },
  ];
  assert.equal(markPeak(rows).map((r) => r.peak), [false, true, false, false]);
  const none = [getRow({ pages: 0 }), failedRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 1, batchSize: 1, threads: 1 }, 'x')];
  assert.equal(markPeak(none).map((r) => r.peak), [false, false]);
  // An earlier mark is cleared when the group has a better row.
  assert.equal(markPeak([{ ...getRow({ pages: 1 }), peak: true }, getRow({ pages: 2 })]).map((r) => r.peak), [false, true]);
});

test('peak: read rows compare GB/s; exists rows compare pages/s', () => {
  assert.is(peakKey({ op: 'read' }), 'throughput_gbps');
  assert.is(peakKey({ op: '' }), 'throughput_gbps');
  assert.is(peakKey({ op: 'exists' }), 'pages_per_s');
  const micro = [
    getRow({ path: 'transport-read', op: 'read', blockSize: 4096, pages: 1000 }),
    getRow({ path: 'transport-read', op: 'read', blockSize: 4096, pages: 100, elapsedNs: SEC / 100 }),
  ];
  // The higher GB/s wins (the second moves 100 pages in 10 ms).
  assert.equal(markPeak(micro).map((r) => r.peak), [false, true]);
  // Two block sizes never compete: each is its own PEAK.
  const sizes = [getRow({ path: 'transport-read', op: 'read', blockSize: 4096 }), getRow({ path: 'transport-read', op: 'read', blockSize: 1 << 20 })];
  assert.equal(markPeak(sizes).map((r) => r.peak), [true, true]);
  const ex = [getRow({ path: 'hicache-exists', op: 'exists', pages: 10 }), getRow({ path: 'hicache-exists', op: 'exists', pages: 20 })];
  assert.equal(markPeak(ex).map((r) => r.peak), [false, true]);
});

// ---------------------------------------------------------------- schema

test('schema: a normal report validates', () => {
  const rows = markPeak([getRow({ threads: 1 }), getRow({ threads: 2, pages: 2000 }), getRow({ path: 'hicache-exists', op: 'exists', latency: null })]);
  const doc: unknown = JSON.parse(render(report(rows), 'json'));
  assert.ok(validate(doc), errorsOf());
});

test('schema: a report whose rows all failed validates', () => {
  const f = (op: 'get' | 'set' | 'exists'): Row => failedRow({ path: `hicache-${op}`, op, protocol: 'tcp', blockSize: 4096, batchSize: 4, threads: 1 }, 'transport unavailable');
  const doc: unknown = JSON.parse(render(report([f('get'), f('set'), f('exists')], 'tcp'), 'json'));
  assert.ok(validate(doc), errorsOf());
});

test('schema: NaN fails validation; toJsonSafe turns it into null, which validates', () => {
  const bad = { ...getRow(), lat_us_p99: Number.NaN, pages_per_s: Number.POSITIVE_INFINITY } as Row;
  const r = report([bad]);
  assert.not.ok(validate(r), 'NaN must not validate');
  const safe = toJsonSafe(r) as { results: Array<Record<string, unknown>> };
  assert.is(safe.results[0].lat_us_p99, null);
  // pages_per_s must be a number: a non-finite rate is still invalid once it is null.
  assert.not.ok(validate(safe));
  const onlyLatency = toJsonSafe(report([{ ...getRow(), lat_us_p99: Number.NaN }]));
  assert.ok(validate(onlyLatency), errorsOf());
  assert.not.match(render(report([bad]), 'json'), /NaN|Infinity/);
});

test('schema: rejects unknown row fields, tcp without smoke, bad created_at', () => {
  const ok = JSON.parse(render(report([getRow()]), 'json')) as Record<string, unknown> & { results: Record<string, unknown>[]; meta: Record<string, unknown> };
  assert.ok(validate(ok), errorsOf());
  assert.not.ok(validate({ ...ok, results: [{ ...ok.results[0], typo_field: 1 }] }));
  assert.not.ok(validate({ ...ok, meta: { ...ok.meta, protocol: 'tcp', smoke: false } }));
  assert.not.ok(validate({ ...ok, meta: { ...ok.meta, smoke: true, publishable: true } }));
  assert.not.ok(validate({ ...ok, created_at: '2026-11-24 23:05' }));
  assert.ok(validate({ ...ok, meta: { ...ok.meta, custom_knob: [1, 2] } }), 'meta is open');
});

// ---------------------------------------------------------------- format + render

test('format: human_bytes / human_count / thousands / timestamps', () => {
  assert.is(humanBytes(131072), '128KB');
  assert.is(humanBytes(1536), '1.5KB');
  assert.is(humanBytes(512), '512B');
  assert.is(humanBytes(1 << 20), '1MB');
  assert.is(humanBytes(3 * 1024 ** 3), '3GB');
  assert.is(iecBytes(131072), '128 KiB');
  assert.is(iecBytes(1536), '1.5 KiB');
  assert.is(iecBytes(512), '512 B');
  assert.is(iecBytes(1 << 20), '1 MiB');
  assert.is(iecBytes(null), '-');
  assert.is(humanCount(500), '500');
  assert.is(humanCount(32000), '32K');
  assert.is(humanCount(1234.5), '1.23K');
  assert.is(humanCount(999.5), '999.50');
  assert.is(humanCount(999_999.9), '1.00M');
  assert.is(humanCount(2.5e9), '2.50G');
  assert.is(thousands(35165.1), '35,165');
  assert.is(isoSeconds(new Date(Date.UTC(2026, 10, 24, 23, 5, 26, 999))), '2026-11-24T23:05:26Z');
  assert.is(fileTimestamp(new Date(Date.UTC(2026, 0, 2, 3, 4, 5))), '20260102-030405');
});

test('render: HiCache table columns and formats', () => {
  const rows = markPeak([getRow({ threads: 1 }), getRow({ threads: 2, pages: 2469, pagesRequested: 2500, note: 'batch_get_v1 mla' })]);
  const md = renderMarkdown(report(rows));
  assert.match(md, /^# PeerCache HiCache benchmark\n/);
  assert.match(md, /\n- created: 2026-11-24T23:05:26Z\n/);
  assert.match(md, /\n- command: `peercache-bench suite --protocol shm`\n/);
  // host and meta are readable lists, one item a line
  assert.match(md, /\n- mode: suite\n- protocol: shm\n/);
  assert.match(md, /\n- concurrencies: 1, 2, 4\n/);
  assert.match(md, /\n- page_size: 128 KiB \(131072 bytes\)\n/);
  assert.match(md, /\n- host: box \(linux 6\.1\.0, x64\)\n- CPU: Test CPU @ 2\.0GHz, 2 CPUs\n- node v20\.20\.2, peercache 0\.1\.0, UCX 1\.13\.1\n/);
  assert.ok(md.split('\n').every((l) => l.startsWith('|') || l.length < 200), 'no long meta line');
  const lines = md.split('\n');
  const head = lines.filter((l) => l.startsWith('| op')).pop()!;
  assert.equal(head.split('|').slice(1, -1).map((c) => c.trim()), [
    'op', 'layout', 'proto', 'page', 'batch', 'threads', 'pages/s', 'pages/s 95% CI', 'tokens/s', 'GB/s', 'p50 µs', 'p95 µs', 'p99 µs', 'p999 µs', 'max µs',
    'latency per', 'hit%', 'calls', 'client CPU %', 'RSS/worker', 'note',
  ]);
  const sep = lines[lines.indexOf(head) + 1];
  assert.match(sep, /^\| -+ \| -+ \| -+ \| -+: \|/);
  assert.equal(hicacheCells(rows[0]), ['get', 'shm', '128 KiB', '32', '1', '500', '32K', '0.066', '100.0', '160.0', '200.0', '250.0', '300.0', '100', '']);
  assert.equal(hicacheCells(rows[1]), ['get', 'shm', '128 KiB', '32', '2', '1.23K', '79.01K', '0.162', '100.0', '160.0', '200.0', '250.0', '300.0', '99', 'PEAK; batch_get_v1 mla']);
  const peakLine = lines.find((l) => l.includes('PEAK'))!;
  assert.match(peakLine, /\*\*1\.23K\*\*/, 'md bolds the PEAK pages/s');
  assert.match(peakLine, /\| mla +\| shm /, 'layout is a column');
  assert.match(peakLine, /\| call of 32 pages \|/, 'latency unit per row');
  // The run's notes, then what the marks of its table mean (here PEAK).
  assert.match(md, /\n## Notes\n\n- a note\n- PEAK: the highest sustained throughput of its sweep[^\n]*\n$/);
  // Every line of the results table has the same number of cells (valid GFM).
  const table = lines.slice(lines.indexOf(head)).filter((l) => l.startsWith('|'));
  assert.ok(table.every((l) => l.split(' | ').length === 21), 'cells per line');
});

test('render: the suite Markdown opens with the seed baseline table, filled in', () => {
  const lat1 = getRow({ phase: 'latency-baseline', batchSize: 1, latUnit: 'page', calls: 1000 });
  const sweep = (op: 'get' | 'set' | 'exists', path: string) =>
    markPeak([getRow({ op, path, threads: 1, hitRate: op === 'get' ? 'get' : 'none' }), getRow({ op, path, threads: 4, pages: 3000, hitRate: op === 'get' ? 'get' : 'none' })]);
  const rows = [lat1, ...sweep('get', 'hicache-get'), ...sweep('set', 'hicache-set'), ...sweep('exists', 'hicache-exists')];
  const md = renderMarkdown(report(rows), { plotFile: 'run 1.svg' });
  const lines = md.split('\n');
  assert.is(lines[2].split('|').slice(1, -1).map((c) => c.trim()).join(','), 'op,layout,page,batch,threads,pages/s,tokens/s,GB/s,p50 µs,p99 µs,p999 µs,latency per');
  const cells = (l: string): string[] => l.split('|').slice(1, -1).map((c) => c.trim());
  assert.equal(cells(lines[4]).slice(0, 5), ['get (latency)', 'mla', '128 KiB', '1', '1']);
  assert.is(cells(lines[4])[11], 'page');
  assert.equal(cells(lines[5]).slice(0, 5), ['get (peak)', 'mla', '128 KiB', '32', '4']);
  assert.is(cells(lines[5])[11], 'call of 32 pages');
  assert.is(cells(lines[6])[0], 'set (peak)');
  assert.is(cells(lines[7])[0], 'exists (peak)');
  assert.is(cells(lines[7])[7], '–', 'exists moves no payload');
  assert.match(md, /\nLoopback: producer and consumer ran on one host, over shm /);
  assert.match(md, /\n!\[throughput and latency vs concurrency\]\(run%201\.svg\)\n/);
});

test('render: loopback vs cross-node sentence', () => {
  const meta = (m: Record<string, JsonValue>) => ({ meta: { ...report([]).meta, ...m } as Meta });
  assert.match(setupSentence(meta({ protocol: 'rdma', device: 'mlx5_0' })), /^Loopback: .*NIC loops back.*RDMA \(UCX one-sided READ\) on mlx5_0\.$/);
  assert.match(setupSentence(meta({ mode: 'dist', protocol: 'rdma', serve_host: '10.0.0.2', local_host: '10.0.0.1' })), /^Cross-node: this host \(10\.0\.0\.1\) drove the serve node at 10\.0\.0\.2, over RDMA/);
  assert.match(setupSentence(meta({ mode: 'dist', protocol: 'shm', serve_host: '127.0.0.1', local_host: '127.0.0.1' })), /^Loopback: serve and drive ran on one host/);
  assert.match(setupSentence(meta({ protocol: 'tcp' })), /smoke test/);
});

test('render: ok:false row shows n/a and -; latency-baseline tagged', () => {
  const f = failedRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 131072, batchSize: 32, threads: 8 }, 'worker crashed');
  assert.equal(hicacheCells(f), ['get', 'shm', '128 KiB', '32', '8', 'n/a', 'n/a', 'n/a', '-', '-', '-', '-', '-', '-', 'worker crashed']);
  const b = getRow({ phase: 'latency-baseline', batchSize: 1, latUnit: 'page', latency: null, path: 'hicache-set', op: 'set' });
  const cells = hicacheCells(b);
  assert.is(cells[8], '-');
  assert.is(cells[13], '-');
  assert.is(cells[14], 'latency-baseline');
  assert.is(hicacheCells(getRow({ op: '' }))[0], 'hicache-get', 'op falls back to path');
});

test('render: console header, aligned columns, PEAK marked, no colour unless asked', () => {
  const rows = markPeak([getRow({ threads: 1 }), getRow({ threads: 16, pages: 1_000_000 })]);
  const out = renderConsole(report(rows));
  const lines = out.split('\n');
  assert.is(lines[0], 'PeerCache benchmark @ 2026-11-24T23:05:26Z');
  assert.is(lines[1], 'host: linux Test CPU @ 2.0GHz | cpus=2 | node v20.20.2 | ucx 1.13.1');
  assert.match(lines[2], /^meta: mode=suite, protocol=shm, /);
  assert.is(lines[3], '');
  const table = lines.filter((l) => l.startsWith('|'));
  assert.is(table.length, 4);
  assert.ok(table.every((l) => l.length === table[0].length), 'padded to equal width');
  // The column separators line up.
  const bars = (l: string): number[] => [...l].flatMap((c, i) => (c === '|' ? [i] : []));
  assert.equal(bars(table[2]), bars(table[0]));
  assert.match(table[3], /^\| \*get /);
  assert.match(table[3], /PEAK/);
  assert.not.match(out, /\x1b\[/);
  assert.match(renderConsole(report(rows), { color: true }), /\x1b\[1m\| get .*PEAK.*\x1b\[22m/);
  assert.is(formats.console(report(rows)), out);
});

test('render: smoke banner and labels for tcp', () => {
  const r = report([makeRow({ path: 'hicache-get', op: 'get', protocol: 'tcp', blockSize: 4096, batchSize: 4, threads: 1, calls: 1, pages: 4, elapsedNs: SEC, latency: lat(10) })], 'tcp');
  const con = renderConsole(r);
  assert.is(con.split('\n')[0], SMOKE_BANNER);
  assert.ok(SMOKE_BANNER.includes(SMOKE_LABEL));
  const md = renderMarkdown(r);
  assert.match(md, /^# PeerCache HiCache benchmark\n\n> \*\*smoke — not publishable\*\*/);
  assert.ok(r.results.every((row) => row.note.includes(SMOKE_LABEL)));
  assert.ok(md.split('\n').filter((l) => l.startsWith('| get')).every((l) => l.includes(SMOKE_LABEL)));
  assert.not.ok(renderConsole(report([getRow()])).includes(SMOKE_LABEL));
  assert.not.ok(renderMarkdown(report([getRow()])).includes(SMOKE_LABEL));
});

test('render: compact table for compare', () => {
  const rows = [
    getRow({ path: 'transport-read', op: 'read', blockSize: 4096, batchSize: 64, pages: 175_872, pagesRequested: 175_872, elapsedNs: 5.001 * SEC, latUnit: 'read' }),
    makeRow({ system: 'mooncake', path: 'transfer-engine', op: '', protocol: 'shm', blockSize: 4096, batchSize: 64, threads: 4, calls: 0, pages: 0, ops: 24414, bytes: 100_000_000, elapsedNs: 5 * SEC, latency: null }),
    failedRow({ system: 'mooncake', path: 'transfer-engine', op: '', protocol: 'shm', blockSize: 1 << 20, batchSize: 64, threads: 4 }, 'mooncake not installed'),
  ];
  const r = makeReport({ command: 'peercache-bench compare', host, meta: { mode: 'compare', protocol: 'shm' }, results: rows, date: new Date(0) });
  const md = renderMarkdown(r);
  assert.match(md, /^# PeerCache vs Mooncake baseline\n/);
  const lines = md.split('\n').filter((l) => l.startsWith('|'));
  assert.equal(lines[0].split('|').slice(1, -1).map((c) => c.trim()), ['system', 'path', 'proto', 'block', 'batch', 'threads', 'GB/s', 'GB/s 95% CI', 'ops/s', 'p50 µs', 'p99 µs', 'note']);
  const cells = (l: string): string[] => l.split('|').slice(1, -1).map((c) => c.trim());
  assert.equal(cells(lines[2]).slice(0, 11), ['peercache', 'transport-read', 'shm', '4 KiB', '64', '1', '**0.144**', '-', '35,167', '100.0', '200.0']);
  assert.equal(cells(lines[3]).slice(6, 11), ['**0.020**', '-', '4,883', '-', '-']);
  assert.equal(cells(lines[4]).slice(6, 12), ['n/a', '-', 'n/a', '-', '-', 'mooncake not installed']);
  assert.match(renderMarkdown(r, { title: 'Custom' }), /^# Custom\n/);
});

test('render: command with backticks and pipes stays valid Markdown', () => {
  const r = { ...report([getRow({ note: 'a|b' })]), command: 'peercache-bench suite --tag `x`' };
  const md = renderMarkdown(r);
  assert.match(md, /- command: `` peercache-bench suite --tag `x` ``/);
  assert.match(md, /a\\\|b/);
});

// ---------------------------------------------------------------- files

test('artifactName: kinds, tag, timestamp', () => {
  const date = new Date(Date.UTC(2026, 10, 24, 23, 5, 26));
  assert.is(artifactName({ kind: 'hicache', mode: 'suite', protocol: 'shm', tag: 'mytag', date }), 'hicache-suite-shm-mytag-20261124-230526');
  assert.is(artifactName({ kind: 'hicache', mode: 'latency', protocol: 'rdma', date }), 'hicache-latency-rdma-20261124-230526');
  assert.is(artifactName({ kind: 'hicache-dist', mode: 'get', protocol: 'rdma', tag: '', date }), 'hicache-dist-get-rdma-20261124-230526');
  assert.is(artifactName({ kind: 'micro', protocol: 'shm', date }), 'micro-shm-20261124-230526');
  assert.is(artifactName({ kind: 'compare', protocol: 'tcp', tag: 'a b/../c', date }), 'compare-tcp-a-b-..-c-20261124-230526');
  assert.is(artifactName({ kind: 'mooncake', protocol: 'rdma', tag: 'x', date }), 'mooncake-rdma-x-20261124-230526');
  assert.throws(() => artifactName({ kind: 'hicache', protocol: 'shm', date }), /mode/);
  assert.throws(() => artifactName({ kind: 'micro', protocol: 's/m', date }), /protocol/);
  assert.is(sanitizeTag('../etc'), 'etc');
  assert.is(sanitizeTag('  '), '');
  assert.is(sanitizeTag('rdma_v1.2-x'), 'rdma_v1.2-x');
});

test('writeReport: valid JSON + md, never overwrites, no temp files', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pcb-report-'));
  try {
    const outDir = join(dir, 'nested', 'out');
    const r = report(markPeak([getRow(), getRow({ threads: 2, pages: 2000 })]));
    const name = artifactName({ kind: 'hicache', mode: 'suite', protocol: 'shm', tag: 'mytag', date: new Date(Date.UTC(2026, 10, 24, 23, 5, 26)) });
    const a = await writeReport(r, { outDir, name });
    const b = await writeReport(r, { outDir, name });
    assert.is(a.json, join(outDir, 'hicache-suite-shm-mytag-20261124-230526.json'));
    assert.is(a.md, join(outDir, 'hicache-suite-shm-mytag-20261124-230526.md'));
    assert.is(b.json, join(outDir, 'hicache-suite-shm-mytag-20261124-230526-1.json'));
    assert.is(b.md, join(outDir, 'hicache-suite-shm-mytag-20261124-230526-1.md'));
    for (const p of [a, b]) {
      const text = await readFile(p.json, 'utf8');
      assert.is(text, `${JSON.stringify(r, null, 2)}\n`);
      assert.ok(validate(JSON.parse(text)), errorsOf());
      assert.is(await readFile(p.md, 'utf8'), renderMarkdown(r));
    }
    // A stray .md of an earlier run also blocks its name.
    await writeFile(join(outDir, `${name}-2.md`), 'older run');
    const c = await writeReport(r, { outDir, name });
    assert.is(c.json, join(outDir, `${name}-3.json`));
    assert.is(await readFile(join(outDir, `${name}-2.md`), 'utf8'), 'older run');
    // Concurrent writers each get their own name.
    const many = await Promise.all([1, 2, 3, 4].map(() => writeReport(r, { outDir, name })));
    assert.is(new Set(many.map((p) => p.json)).size, 4);
    const files = (await readdir(outDir)).sort();
    assert.ok(files.every((f) => !f.startsWith('.') && !f.includes('tmp')), files.join(','));
    assert.is(files.length, 2 * 7 + 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('writeReport: custom markdown; invalid name rejected', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pcb-report-'));
  try {
    const r = report([getRow()]);
    const p = await writeReport(r, { outDir: dir, name: 'x', markdown: '# hi\n' });
    assert.is(await readFile(p.md, 'utf8'), '# hi\n');
    try {
      await writeReport(r, { outDir: dir, name: '../evil' });
      assert.unreachable('must reject');
    } catch (e) {
      assert.match((e as Error).message, /name/);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- host

test('host: collects the block, package version from package.json', () => {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.is(packageVersion(), pkg.version);
  const h = collectHost({ ucxVersion: null });
  assert.is(h.package_version, pkg.version);
  assert.is(h.node_version, process.version);
  assert.is(h.ucx_version, null);
  assert.ok(h.cpu_count >= 1);
  assert.ok(h.cpu_model.length > 0);
  const doc = toJsonSafe({ ...report([]), host: h });
  assert.ok(validate(doc), errorsOf());
});

test.run();
