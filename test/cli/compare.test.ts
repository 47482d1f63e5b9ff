import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addRatios, isMooncakeMissing } from '../../src/bench/compare.js';
import { failedRow, makeRow } from '../../src/bench/report/metrics.js';
import type { Report } from '../../src/bench/report/types.js';
import { compareExitCode } from '../../src/cli/commands/compare.js';
import { runCli } from '../helpers/cli.js';
import { errorsOf, validate } from '../helpers/schema.js';

const fake = fileURLToPath(new URL('../fixtures/transfer_engine_bench', import.meta.url));
const dirs: string[] = [];
const tmp = async () => {
  const d = await mkdtemp(join(tmpdir(), 'pc-compare-'));
  dirs.push(d);
  return d;
};
const fast = ['--duration', '0.4', '--warmup', '0.2', '--batch-size', '8'];

async function compare(args: string[], env: NodeJS.ProcessEnv = {}, protocol = 'shm') {
  const dir = await tmp();
  const r = await runCli(['compare', '--protocol', protocol, ...fast, ...args, '--out-dir', dir, '--tag', 'c'], { env });
  const files = (await readdir(dir)).sort();
  const json = files.find((f) => f.endsWith('.json'));
  const report = json ? (JSON.parse(await readFile(join(dir, json), 'utf8')) as Report) : null;
  if (report) assert.ok(validate(report), errorsOf());
  return { r, files, report, md: json ? await readFile(join(dir, json.replace(/\.json$/, '.md')), 'utf8') : '' };
}

test('compare --skip-mooncake on shm: transport and store per block size, side by side, compare-shm-c-<ts>', async () => {
  const { r, files, report, md } = await compare(['--block-sizes', '4k,16k', '--skip-mooncake']);
  assert.is(r.code, 0, r.stderr);
  assert.equal(files.map((f) => f.replace(/\d{8}-\d{6}/, 'TS')), ['compare-shm-c-TS.json', 'compare-shm-c-TS.md']);
  assert.equal(report!.results.map((x) => `${x.path}@${x.block_size}`), ['transport-read@4096', 'store-get@4096', 'transport-read@16384', 'store-get@16384']);
  for (const row of report!.results) assert.ok(row.ok, row.note);
  assert.equal(report!.meta.block_sizes, [4096, 16384]);
  assert.is(report!.meta.mooncake_threads, null);
  assert.match(md, /^# PeerCache vs Mooncake baseline/);
  assert.match(md, /\| system +\| path +\| proto/, 'the compact table');
  assert.ok(report!.notes.some((n) => /^4KB: transport-read .*store-get\/transport-read = /.test(n)), report!.notes.join('\n'));
});

test('compare on shm with the stand-in: matched threads, but no ratio across transports (shm vs Mooncake tcp); Mooncake row smoke', async () => {
  const { r, report } = await compare(['--block-sizes', '64k', '--skip-store', '--threads', '2', '--mooncake-bin', fake], { FAKE_TE_SCALE: '0.25', FAKE_TE_GBPS: '2' });
  assert.is(r.code, 0, r.stderr);
  const [ours, mc] = report!.results;
  assert.equal([ours.path, mc.path], ['transport-read', 'transfer-engine']);
  assert.ok(ours.ok && mc.ok, `${ours.note} / ${mc.note}`);
  assert.is(mc.threads, 2, 'Mooncake threads default to ours');
  assert.is(mc.block_size, 65536);
  assert.is(mc.batch_size, 8);
  assert.equal(mc.transports, ['mooncake/tcp']);
  assert.ok(mc.smoke, 'Mooncake over TCP is smoke');
  assert.is(ours.extra?.ratio_vs_mooncake, undefined, 'no ratio');
  assert.not.match(ours.note, /x mooncake/);
  assert.match(ours.note, /no ratio vs mooncake: peercache ran shm, Mooncake ran tcp; Mooncake has no shared-memory DRAM transport/);
  assert.ok(report!.notes.some((n) => /^64KB: .*mooncake [\d.]+ GB\/s over tcp; transport-read\/mooncake: none \(shm vs tcp\)/.test(n)), report!.notes.join('\n'));
  assert.is(report!.meta.mooncake_threads, 2);
});

test('compare on tcp with the stand-in: both over TCP, so a ratio per block size', async () => {
  const { r, report } = await compare(['--block-sizes', '64k', '--skip-store', '--mooncake-bin', fake], { FAKE_TE_SCALE: '0.25', FAKE_TE_GBPS: '2' }, 'tcp');
  assert.is(r.code, 0, r.stderr);
  const [ours, mc] = report!.results;
  assert.ok(ours.ok && mc.ok, `${ours.note} / ${mc.note}`);
  assert.ok(ours.smoke && mc.smoke);
  assert.is(ours.extra!.ratio_vs_mooncake, Math.round((ours.throughput_gbps / mc.throughput_gbps) * 1000) / 1000);
  assert.match(ours.note, /x mooncake \(both tcp\)/);
});

test('compare without Mooncake installed: said up front, its rows say so, no note describes a Mooncake run, exit 0; an explicit missing binary is exit 2', async () => {
  const { r, report } = await compare(['--block-sizes', '4k', '--skip-store'], { PATH: dirname(process.execPath) });
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /^peercache-bench compare: Mooncake will not run: transfer_engine_bench not found/m);
  assert.ok(report!.results[0].ok);
  assert.ok(isMooncakeMissing(report!.results[1]));
  assert.match(r.stdout, /transfer_engine_bench not found/);
  assert.ok(report!.notes.every((n) => !/Mooncake ran with/.test(n)), report!.notes.join('\n'));
  assert.ok(report!.notes.some((n) => /^Mooncake did not run: transfer_engine_bench not found/.test(n)));
  const dir = await tmp();
  const x = await runCli(['compare', '--protocol', 'shm', ...fast, '--mooncake-bin', '/nonexistent/transfer_engine_bench', '--out-dir', dir]);
  assert.is(x.code, 2, x.stderr);
  assert.match(x.stderr, /^peercache-bench compare: --mooncake-bin \/nonexistent\/transfer_engine_bench: transfer_engine_bench not found/);
  assert.equal(await readdir(dir), [], 'nothing measured');
});

test('exit code: only missing-Mooncake failures are forgiven, and only when something ran', () => {
  const id = { path: 'transfer-engine', op: 'read' as const, protocol: 'shm' as const, blockSize: 4096, batchSize: 8, threads: 1 };
  const missing = failedRow({ ...id, system: 'mooncake' }, 'transfer_engine_bench not found (looked at PATH): install');
  const crashed = failedRow({ ...id, system: 'mooncake' }, 'the initiator killed by SIGABRT');
  const ok = makeRow({ ...id, path: 'transport-read', calls: 1, pages: 8, elapsedNs: 1e9, latency: null });
  const rep = (results: Report['results']) => ({ results }) as Report;
  assert.is(compareExitCode(1, rep([ok, missing])), 0);
  assert.is(compareExitCode(1, rep([missing])), 1);
  assert.is(compareExitCode(1, rep([ok, crashed])), 1);
  assert.is(compareExitCode(130, rep([ok, missing])), 130);
  const lines = addRatios([ok, missing], [4096]);
  assert.match(lines[0], /mooncake: no figure/);
  assert.is(ok.extra, undefined);
  const mcTcp = makeRow({ ...id, system: 'mooncake', calls: 1, pages: 80000, elapsedNs: 1e9, latency: null, transports: ['mooncake/tcp'] });
  const oursShm = makeRow({ ...id, path: 'transport-read', calls: 1, pages: 160000, elapsedNs: 1e9, latency: null });
  assert.match(addRatios([oursShm, mcTcp], [4096])[0], /transport-read\/mooncake: none \(shm vs tcp\)/);
  assert.is(oursShm.extra, undefined);
  const oursTcp = makeRow({ ...id, protocol: 'tcp', path: 'transport-read', calls: 1, pages: 160000, elapsedNs: 1e9, latency: null });
  assert.match(addRatios([oursTcp, mcTcp], [4096])[0], /transport-read\/mooncake = 2/);
});

test('bad input: one line, exit 2, no stack trace', async () => {
  const cases = [
    ['micro', '--bogus'],
    ['micro', '--threads', '0'],
    ['micro', '--block-size', '12x'],
    ['micro', '--block-size', '1023'],
    ['micro', '--path', 'sideways'],
    ['micro', '--protocol', 'carrier-pigeon'],
    ['micro', '--duration', '-1'],
    ['micro', '--pattern', 'lukewarm'],
    ['micro', '--pattern', 'hot', '--path', 'both'],
    ['mooncake', '--threads', '0'],
    ['mooncake', '--metadata-url', 'not a url'],
    ['mooncake', '--mooncake-timeout', 'soon'],
    ['compare', '--block-sizes', '4k,,1m'],
    ['compare', '--block-sizes', '4k,4096'],
    ['compare', '--block-sizes', '1.3k'],
    ['compare', '--mooncake-threads', '0'],
    ['compare', '--skip-mooncakes'],
    ['compare', '--mooncake-bin', '/nonexistent/transfer_engine_bench'],
    ['mooncake', '--mooncake-bin', '/nonexistent/transfer_engine_bench'],
    ['mooncake', '--mooncake-bin', '/etc'],
  ];
  await Promise.all(
    cases.map(async (args) => {
      const r = await runCli(args);
      assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.not.match(r.stderr, /\n\s+at /, `${args.join(' ')}: no stack trace`);
      assert.is(r.stderr.trim().split('\n').length, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^peercache-bench ${args[0]}: `));
    }),
  );
});

test('--help explains every flag with its default', async () => {
  for (const [cmd, expect] of [
    ['micro', [/--block-size <bytes>.*\(default: 65536\)/, /--batch-size <n>.*\(default: 64\)/, /--threads <n>.*\(default: 1\)/, /--duration <s>.*\(default: 5\)/, /--warmup <s>.*\(default: 1\)/, /--path <transport\|store\|both>.*\(default: transport\)/, /--pattern <spread\|hot>.*\(default: spread\)/]],
    ['mooncake', [/--mooncake-bin <path>.*\(default: transfer_engine_bench\)/, /--threads <n>.*own default is 12\).*\(default: 1\)/, /--warmup <s>.*warms the target side only/, /--metadata-url <url>.*P2PHANDSHAKE/, /--warmup <s>.*\(default: 1\)/]],
    ['compare', [/--block-sizes <list>.*\(default: 4k,64k,1m\)/, /--mooncake-threads <n\|same>.*\(default: same\)/, /--skip-mooncake/, /--skip-store/, /--duration <s>.*\(default: 5\)/]],
  ] as const) {
    const r = await runCli([cmd, '--help']);
    assert.is(r.code, 0);
    for (const re of expect) assert.match(r.stdout, re, `${cmd}: ${re}`);
  }
});

test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test.run();
