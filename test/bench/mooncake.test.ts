import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findMooncakeBin, MOONCAKE_MISSING, parseTestCompleted, runMooncakeRow, type MooncakeOptions } from '../../src/bench/mooncake.js';
import type { Report } from '../../src/bench/report/types.js';
import { runCli } from '../helpers/cli.js';

const fake = fileURLToPath(new URL('../fixtures/transfer_engine_bench', import.meta.url));
const dirs: string[] = [];
const tmp = async () => {
  const d = await mkdtemp(join(tmpdir(), 'pc-mooncake-'));
  dirs.push(d);
  return d;
};

interface Spawned {
  role: 'target' | 'initiator' | 'shim';
  pid: number;
  argv: string[];
  env: { MC_TCP_BIND_ADDRESS: string | null; MC_FORCE_TCP: string | null };
}
const spawned = (log: string): Spawned[] =>
  existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Spawned) : [];

/** Alive and not a zombie (a reparented zombie still answers kill(pid, 0)). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function assertReaped(log: string): Promise<void> {
  const pids = spawned(log).map((s) => s.pid);
  assert.ok(pids.length > 0, 'the stand-in reported its processes');
  const deadline = Date.now() + 3000;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const left = pids.filter(alive);
  for (const pid of left) process.kill(pid, 'SIGKILL');
  assert.equal(left, [], `orphans: ${left.join(', ')}`);
}

async function run(mode: string, over: Partial<MooncakeOptions> = {}, extraEnv: NodeJS.ProcessEnv = {}) {
  const log = join(await tmp(), 'procs.jsonl');
  const out = await runMooncakeRow({
    protocol: 'shm',
    bin: fake,
    blockSize: 65536,
    batchSize: 32,
    threads: 2,
    durationS: 1,
    warmupS: 1,
    stopGraceMs: 300,
    env: { FAKE_TE_MODE: mode, FAKE_TE_LOG: log, FAKE_TE_SCALE: '0.25', ...extraEnv },
    ...over,
  });
  return { ...out, log };
}

test('parses the last "Test completed" line (glog prefix, any unit)', () => {
  const text = [
    'I1124 22:49:40.463000 12456 transfer_engine_bench.cpp:264] Worker 0 stopped!',
    'I1124 22:49:40.463078 12456 transfer_engine_bench.cpp:569] Test completed: duration 2.00, batch count 279, throughput 0.58 GB/s',
    'I1124 22:49:41.000000 12456 transfer_engine_bench.cpp:569] Test completed: duration 5.01, batch count 1000, throughput 13.09 GiB/s',
  ].join('\n');
  assert.equal(parseTestCompleted(text), { durationS: 5.01, batchCount: 1000, throughput: 13.09, unit: 'GiB' });
  assert.is(parseTestCompleted('throughput 9.99 GB/s'), null);
});

test('normal run: matched flags, loopback env, a warmup run, bytes recomputed, everything reaped', async () => {
  const { row, log, missing } = await run('normal');
  assert.not.ok(missing);
  assert.ok(row.ok, row.note);
  assert.is(row.system, 'mooncake');
  assert.is(row.path, 'transfer-engine');
  assert.is(row.op, 'read');
  assert.is(row.protocol, 'shm');
  assert.is(row.threads, 2);
  assert.is(row.lat_us_p50, null);
  const count = row.extra!.mooncake_batch_count!;
  assert.ok(count > 0);
  assert.is(row.calls, count);
  assert.is(row.bytes_total, count * 32 * 65536, 'bytes = batch count x batch x block');
  assert.is(row.duration_s, row.extra!.mooncake_duration_s, 'the duration Mooncake printed');
  assert.equal(row.transports, ['mooncake/tcp']);
  assert.match(row.note, /warmup run discarded/);
  const procs = spawned(log);
  assert.equal(procs.map((p) => p.role), ['target', 'initiator', 'initiator'], 'target, warmup, measured');
  for (const p of procs) {
    assert.equal(p.env, { MC_TCP_BIND_ADDRESS: '127.0.0.1', MC_FORCE_TCP: '1' });
    for (const f of ['--protocol=tcp', '--metadata_server=P2PHANDSHAKE', '--block_size=65536', '--batch_size=32', '--threads=2', '--use_vram=false', '--undefok=use_vram']) assert.ok(p.argv.includes(f), `${p.role}: ${f}`);
  }
  assert.ok(procs[0].argv.includes('--mode=target'));
  assert.ok(procs[0].argv.includes('--local_server_name=127.0.0.1'));
  const seg = procs[1].argv.find((a) => a.startsWith('--segment_id='));
  assert.match(seg ?? '', /^--segment_id=127\.0\.0\.1:\d+$/, 'segment id read from the target log');
  assert.ok(procs[2].argv.includes('--duration=1'));
  assert.ok(procs[2].argv.includes('--operation=read'));
  await assertReaped(log);
});

test('missing binary: ok:false with how to get it, nothing spawned', async () => {
  const out = await runMooncakeRow({ protocol: 'shm', bin: '/nonexistent/transfer_engine_bench' });
  assert.ok(out.missing);
  assert.not.ok(out.row.ok);
  assert.ok(out.row.note.startsWith(MOONCAKE_MISSING), out.row.note);
  assert.match(out.row.note, /pip install mooncake-transfer-engine/);
  assert.match(out.row.note, /--mooncake-bin/);
  assert.is(findMooncakeBin(undefined, { PATH: '/nonexistent' }).path, null);
  assert.is(findMooncakeBin('transfer_engine_bench', { PATH: `/nonexistent:${join(fake, '..')}` }).path, fake);
});

test('a target that ignores SIGTERM, behind a wrapper that exits on it: the whole group is killed', async () => {
  const { row, log } = await run('target-stuck', { warmupS: 0 }, { FAKE_TE_SHIM: '1' });
  assert.ok(row.ok, row.note);
  assert.ok(spawned(log).some((p) => p.role === 'shim'));
  await assertReaped(log);
});

test('an initiator that hangs: killed at its deadline, row ok:false', async () => {
  const t0 = Date.now();
  const { row, log } = await run('hang', { warmupS: 0, timeoutSlackS: 1 });
  assert.not.ok(row.ok);
  assert.match(row.note, /still running 2 s after it started/);
  assert.ok(Date.now() - t0 < 10_000);
  await assertReaped(log);
});

test('a crash: ok:false with the tail of its output', async () => {
  const { row, log } = await run('crash', { warmupS: 0 });
  assert.not.ok(row.ok);
  assert.match(row.note, /ended \(killed by SIGABRT\) before reporting/);
  assert.match(row.note, /Check failed: s\.ok\(\)/);
  await assertReaped(log);
});

test('garbage output: ok:false, a loose "throughput" is not taken for the result', async () => {
  const { row, log } = await run('garbage', { warmupS: 0 });
  assert.not.ok(row.ok);
  assert.match(row.note, /no "Test completed/);
  assert.match(row.note, /throughput 9\.99 GB\/s \(estimated\)/);
  await assertReaped(log);
});

test('a target that fails to start: ok:false with its reason; a warmup failure is reported as such', async () => {
  const a = await run('target-fail');
  assert.not.ok(a.row.ok);
  assert.match(a.row.note, /the target exited \(code 1\) early.*Failed to install TCP transport/);
  await assertReaped(a.log);
  const b = await run('crash', { warmupS: 1 });
  assert.match(b.row.note, /^the warmup run failed: the initiator ended \(killed by SIGABRT\)/);
  await assertReaped(b.log);
});

test('a chatty target (more than a pipe buffer of log) does not block: its pipes are drained', async () => {
  const { row, log } = await run('chatty', { warmupS: 0 });
  assert.ok(row.ok, row.note);
  await assertReaped(log);
});

test('without MC_TCP_BIND_ADDRESS the stand-in fails as the real tool did (the wrapper sets it)', async () => {
  // An explicit empty value overrides ours: the check that the stand-in models the failure.
  const { row, log } = await run('normal', { warmupS: 0 }, { MC_TCP_BIND_ADDRESS: '' });
  assert.not.ok(row.ok);
  assert.match(row.note, /failed to connect to 10\.255\.255\.1/);
  await assertReaped(log);
});

test('CLI: a run writes mooncake-<protocol>-<tag>-<ts>.{json,md}; a missing binary exits 1 with the row', async () => {
  const dir = await tmp();
  const log = join(dir, 'procs.jsonl');
  const env = { FAKE_TE_MODE: 'normal', FAKE_TE_LOG: log, FAKE_TE_SCALE: '0.25' };
  const r = await runCli(['mooncake', '--protocol', 'tcp', '--mooncake-bin', fake, '--duration', '1', '--warmup', '0', '--block-size', '16k', '--out-dir', dir, '--tag', 'x'], { env });
  assert.is(r.code, 0, r.stderr);
  const files = (await readdir(dir)).filter((f) => f.startsWith('mooncake-'));
  assert.equal(files.map((f) => f.replace(/\d{8}-\d{6}/, 'TS')).sort(), ['mooncake-tcp-x-TS.json', 'mooncake-tcp-x-TS.md']);
  const report = JSON.parse(await readFile(join(dir, files.find((f) => f.endsWith('.json'))!), 'utf8')) as Report;
  assert.is(report.meta.mode, 'mooncake');
  assert.is(report.results[0].block_size, 16384);
  assert.ok(report.results[0].ok);
  assert.ok(report.results[0].smoke, 'tcp rows are smoke');
  assert.match(r.stdout, /\| system +\| path/);
  await assertReaped(log);
  const m = await runCli(['mooncake', '--protocol', 'shm', '--mooncake-bin', '/nonexistent/transfer_engine_bench', '--out-dir', dir]);
  assert.is(m.code, 1, m.stderr);
  assert.match(m.stdout, /transfer_engine_bench not found/);
});

test('CLI: Ctrl-C during a hung initiator stops it, reaps everything, and still writes the report', async () => {
  const dir = await tmp();
  const log = join(dir, 'procs.jsonl');
  let cli = 0;
  const done = runCli(['mooncake', '--protocol', 'shm', '--mooncake-bin', fake, '--duration', '1', '--warmup', '0', '--out-dir', dir], {
    env: { FAKE_TE_MODE: 'hang', FAKE_TE_LOG: log, FAKE_TE_SCALE: '0.25' },
    onSpawn: (pid) => (cli = pid),
  });
  const deadline = Date.now() + 20_000;
  while (!spawned(log).some((p) => p.role === 'initiator') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  process.kill(cli, 'SIGINT');
  const r = await done;
  assert.is(r.code, 130, r.stderr);
  const json = (await readdir(dir)).find((f) => f.endsWith('.json'));
  assert.ok(json, 'report written');
  const report = JSON.parse(await readFile(join(dir, json!), 'utf8')) as Report;
  assert.not.ok(report.results[0].ok);
  assert.match(report.results[0].note, /aborted by the user/);
  await assertReaped(log);
});

test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test.run();
