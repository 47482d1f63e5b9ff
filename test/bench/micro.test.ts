import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { microBlocks, microBytes, resolveMicro, MicroConfigError } from '../../src/bench/micro.js';
import type { Report } from '../../src/bench/report/types.js';
import { SMOKE_LABEL } from '../../src/bench/report/types.js';
import { transportMismatch } from '../../src/bench/report/transport-check.js';
import { runCli } from '../helpers/cli.js';
import { flagFor } from '../../src/cli/flags.js';
import { errorsOf, validate } from '../helpers/schema.js';

const dirs: string[] = [];

test("our own rows: transports (as UCX reports them) that are not the protocol's fail the row", () => {
  assert.is(transportMismatch('shm', ['sysv/memory', 'posix/memory', 'cma/memory', 'self/memory0']), null);
  assert.is(transportMismatch('rdma', ['rc_mlx5/mlx5_0:1', 'ud_verbs/mlx5_0:1', 'dc_mlx5/mlx5_1:1']), null);
  assert.is(transportMismatch('tcp', ['tcp']), null);
  assert.is(transportMismatch('shm', []), null, 'nothing connected: nothing to judge');
  assert.match(transportMismatch('rdma', ['tcp/lo']) ?? '', /the data went over tcp\/lo, not rdma's transports: no figure is published under rdma/);
  assert.match(transportMismatch('shm', ['sysv/memory', 'tcp/eth0']) ?? '', /over tcp\/eth0, not shm's/);
});


async function microRun(protocol: 'shm' | 'tcp') {
  const dir = await mkdtemp(join(tmpdir(), 'pc-micro-'));
  dirs.push(dir);
  const r = await runCli(['micro', '--protocol', protocol, '--path', 'both', '--threads', '2', '--block-size', '16k', '--batch-size', '8', '--duration', '0.5', '--warmup', '0.2', '--out-dir', dir, '--tag', 't']);
  assert.is(r.code, 0, r.stderr);
  const files = (await readdir(dir)).sort();
  assert.equal(files.map((f) => f.replace(/\d{8}-\d{6}/, 'TS')), [`micro-${protocol}-t-TS.json`, `micro-${protocol}-t-TS.md`]);
  const report = JSON.parse(await readFile(join(dir, files[0]), 'utf8')) as Report;
  assert.ok(validate(report), errorsOf());
  const md = await readFile(join(dir, files[1]), 'utf8');
  return { r, report, md };
}

function checkRows(report: Report, protocol: string) {
  assert.is(report.meta.mode, 'micro');
  assert.is(report.meta.protocol, protocol);
  assert.is(report.meta.threads, 2);
  assert.equal(report.results.map((row) => row.path), ['transport-read', 'store-get']);
  assert.equal(report.results.map((row) => row.op), ['read', 'get']);
  for (const row of report.results) {
    assert.ok(row.ok, `${row.path}: ${row.note}`);
    assert.is(row.threads, 2, 'really 2 workers');
    assert.is(row.block_size, 16384);
    assert.is(row.batch_size, 8);
    assert.is(row.lat_unit, 'batch_call');
    assert.ok(row.calls > 0 && row.bytes_total === row.ops * 16384);
    assert.ok(row.transports.length > 0, 'lanes reported');
    assert.ok(row.lat_us_p50! > 0);
    // The per-READ figure is the batch latency / batch size, labelled as amortised.
    assert.ok(Math.abs(row.extra!.amortised_us_per_read_p50! - row.lat_us_p50! / 8) <= 0.001, 'p50 / batch');
    assert.match(row.note, /\(amortised, not a latency\)/);
  }
  assert.is(report.results[1].hit_rate, 1);
  assert.ok(typeof report.results[1].extra!.ratio_vs_transport === 'number');
}

test('micro on shm: transport-read and store-get with 2 workers, artifacts schema-valid', async () => {
  const { r, report, md } = await microRun('shm');
  checkRows(report, 'shm');
  assert.not.ok(report.meta.smoke);
  for (const row of report.results) assert.ok(row.transports.some((t) => /^(sysv|posix|cma)\//.test(t)), row.transports.join());
  assert.match(md, /^# PeerCache data-plane microbench/);
  assert.match(md, /\| op +\| layout +\| proto +\| +page/, 'the HiCache table: op, layout, proto, page, …');
  assert.match(r.stdout, /amortised/);
});

test('micro on tcp: the same rows, marked smoke', async () => {
  const { report, md } = await microRun('tcp');
  checkRows(report, 'tcp');
  assert.ok(report.meta.smoke);
  for (const row of report.results) {
    assert.ok(row.smoke);
    assert.ok(row.note.includes(SMOKE_LABEL));
  }
  assert.match(md, /smoke/);
});

test("micro --pattern hot: ucx_perftest's one-buffer pattern, transport only, labelled", async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pc-micro-'));
  dirs.push(dir);
  const r = await runCli(['micro', '--protocol', 'shm', '--pattern', 'hot', '--block-size', '64k', '--batch-size', '16', '--duration', '0.5', '--warmup', '0.2', '--out-dir', dir, '--json']);
  assert.is(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout) as Report;
  assert.ok(validate(report), errorsOf());
  assert.is(report.meta.pattern, 'hot');
  assert.is(report.meta.working_set, 1);
  assert.equal(report.results.map((row) => row.path), ['transport-read']);
  const row = report.results[0];
  assert.ok(row.ok, row.note);
  assert.ok(row.bytes_total === row.ops * 65536 && row.ops > 0);
  assert.match(row.note, /hot, ucx_perftest's pattern/);
  assert.ok(report.notes.some((n) => /pattern hot/.test(n)));
});

// Issue 12 saw `micro --pattern hot` on shm die with SIGSEGV in 7 of 10 short runs (a crash inside
// ucp_ep_rkey_unpack's error path); short runs in a row, each a new producer and reader, catch a
// regression.
test('micro --pattern hot, 4 KiB, 6 short runs in a row: every one exits 0', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'pc-micro-'));
  dirs.push(dir);
  for (let i = 0; i < 6; i++) {
    const r = await runCli(['micro', '--protocol', 'shm', '--pattern', 'hot', '--block-size', '4096', '--batch-size', '32', '--threads', '1', '--duration', '0.3', '--warmup', '0.1', '--out-dir', dir]);
    assert.is(r.signal, null, `run ${i + 1} died of ${r.signal}: ${r.stderr.slice(-1500)}`);
    assert.is(r.code, 0, `run ${i + 1}: ${r.stderr.slice(-1500)}`);
  }
});

test('the plan: both paths over the same span of blocks; the memory guard', () => {
  assert.is(microBlocks(64), 512);
  assert.is(microBlocks(128), 1024);
  const p = resolveMicro({ protocol: 'shm', path: 'both', blockSize: 131072, threads: 2 });
  assert.equal(p.paths, ['transport', 'store']);
  assert.is(p.batchSize, 64);
  assert.is(p.durationS, 5);
  assert.is(p.warmupS, 1);
  assert.ok(microBytes(p) > 512 * 131072 * 2);
  assert.throws(() => resolveMicro({ protocol: 'shm', blockSize: 1 << 20, batchSize: 4096, maxBytes: 1 << 30 }), (e: unknown) => e instanceof MicroConfigError && /raise maxBytes$/.test((e as Error).message) && /raise --max-bytes$/.test(e.render(flagFor)));
  assert.throws(() => resolveMicro({ protocol: 'shm', threads: 0 }), (e: unknown) => e instanceof MicroConfigError);
  // hot: one remote block, one local block per worker; the store path has no hot pattern.
  const hot = resolveMicro({ protocol: 'shm', pattern: 'hot', blockSize: 131072, threads: 4 });
  assert.is(hot.blocks, 1);
  assert.is(microBytes(hot), 131072 + 4 * 131072);
  assert.is(resolveMicro({ protocol: 'shm' }).pattern, 'spread');
  assert.throws(() => resolveMicro({ protocol: 'shm', pattern: 'hot', path: 'store' }), (e: unknown) => e instanceof MicroConfigError && /use path transport/.test((e as Error).message) && /use --path transport/.test(e.render(flagFor)));
});

test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test.run();
