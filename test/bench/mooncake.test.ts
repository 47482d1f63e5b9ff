import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { findMooncakeBin, installedTransports, judgeTransport, MOONCAKE_MISSING, parseListening, parseTestCompleted, runMooncakeRow, segmentId, type MooncakeOptions } from '../../src/bench/mooncake.js';
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
  env: { MC_TCP_BIND_ADDRESS: string | null; MC_FORCE_TCP: string | null; MC_USE_IPV6: string | null; MC_LOG_DIR: string | null };
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
  assert.is(row.protocol, 'tcp', 'the row names what Mooncake ran (it has no shm transport), not what was asked');
  assert.is(row.threads, 2);
  assert.is(row.lat_us_p50, null);
  const count = row.extra!.mooncake_batch_count!;
  assert.ok(count > 0);
  assert.is(row.calls, count);
  assert.is(row.bytes_total, count * 32 * 65536, 'bytes = batch count x batch x block');
  assert.is(row.duration_s, row.extra!.mooncake_duration_s, 'the duration Mooncake printed');
  assert.equal(row.transports, ['mooncake/tcp'], "the transport Mooncake's log says it installed");
  assert.ok(row.smoke, 'Mooncake over TCP loopback is smoke, like our tcp rows, though matched to shm');
  assert.match(row.note, /warmup run discarded \(a separate initiator: it warms the target side only\)/);
  const procs = spawned(log);
  assert.equal(procs.map((p) => p.role), ['target', 'initiator', 'initiator'], 'target, warmup, measured');
  for (const p of procs) {
    assert.equal(p.env, { MC_TCP_BIND_ADDRESS: '127.0.0.1', MC_FORCE_TCP: '1', MC_USE_IPV6: null, MC_LOG_DIR: null });
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
  assert.match(row.note, /Assert failed: s\.ok\(\)/);
  await assertReaped(log);
});

test('garbage output: ok:false, a loose "throughput" is not taken for the result', async () => {
  const { row, log } = await run('garbage', { warmupS: 0 });
  assert.not.ok(row.ok);
  assert.match(row.note, /no "Test completed/);
  assert.match(row.note, /throughput 9\.99 GB\/s \(estimated\)/);
  await assertReaped(log);
});

test('a target that dies at start: ok:false with its reason; a warmup failure is reported as such', async () => {
  const a = await run('target-crash');
  assert.not.ok(a.row.ok);
  assert.match(a.row.note, /the target exited \(killed by SIGABRT\) early.*Assert failed: !rc/);
  await assertReaped(a.log);
  const b = await run('crash', { warmupS: 1 });
  assert.match(b.row.note, /^the warmup run failed: the initiator ended \(killed by SIGABRT\)/);
  await assertReaped(b.log);
});

test('a failed transport install (as the real tool): the target keeps running, the initiator aborts on "Assert failed: xport"', async () => {
  const { row, log } = await run('install-fail', { warmupS: 0 });
  assert.not.ok(row.ok);
  assert.match(row.note, /the initiator ended \(killed by SIGABRT\) before reporting.*Assert failed: xport/);
  assert.equal(spawned(log).map((p) => p.role), ['target', 'initiator'], 'the target stayed up for the initiator');
  await assertReaped(log);
});

test('a chatty target (more than a pipe buffer of log) does not block: its pipes are drained', async () => {
  const { row, log } = await run('chatty', { warmupS: 0 });
  assert.ok(row.ok, row.note);
  await assertReaped(log);
});

test('P2P mode does not need MC_TCP_BIND_ADDRESS (as the real tool); with a metadata server the data address is wrong without it', async () => {
  const { row, log } = await run('normal', { warmupS: 0 }, { MC_TCP_BIND_ADDRESS: '' });
  assert.ok(row.ok, row.note);
  await assertReaped(log);
});

test('the stand-in models the real output: year in the glog prefix, IPv6 host printed bare, MC_LOG_DIR sends glog to files', async () => {
  const dir = await tmp();
  const env = { ...process.env, FAKE_TE_SCALE: '0.05', MC_FORCE_TCP: '1' };
  const args = ['--mode=initiator', '--metadata_server=P2PHANDSHAKE', '--protocol=tcp', '--segment_id=127.0.0.1:1', '--duration=1'];
  const plain = spawnSync(process.execPath, [fake, ...args], { env, encoding: 'utf8', timeout: 10_000 });
  assert.match(plain.stderr, new RegExp(`^I${new Date().getFullYear()}\\d{4} \\d\\d:\\d\\d:\\d\\d\\.\\d{6} \\d+ transfer_engine_impl\\.cpp:115\\]`, 'm'));
  assert.match(plain.stderr, /MC_FORCE_TCP is set, using TCP transport only/);
  assert.match(plain.stderr, /Unable to get target segment ID/);
  assert.is(plain.stdout, '');
  const logged = spawnSync(process.execPath, [fake, ...args], { env: { ...env, MC_LOG_DIR: dir }, encoding: 'utf8', timeout: 10_000 });
  assert.is(logged.stderr, '', 'nothing on stderr with MC_LOG_DIR');
  assert.match(readFileSync(join(dir, 'transfer_engine_bench.INFO'), 'utf8'), /Unable to get target segment ID/);
  assert.equal(parseListening('I20261202 16:43:29.405644 16713 transfer_engine_impl.cpp:182] Transfer Engine RPC using P2P handshake, listening on ::1:15025'), { host: '::1', port: 15025 });
  assert.equal(parseListening('… Transfer Engine RPC using P2P handshake, listening on [::1]:15025'), { host: '::1', port: 15025 });
  assert.equal(parseListening('… Transfer Engine RPC using P2P handshake, listening on 127.0.0.1:15025, barex use port:1'), { host: '127.0.0.1', port: 15025 });
  assert.is(segmentId('::1', 15025), '[::1]:15025');
  assert.is(segmentId('[::1]', 15025), '[::1]:15025');
  assert.is(segmentId('127.0.0.1', 15025), '127.0.0.1:15025');
});

test("the transport is read from Mooncake's own log lines", () => {
  const fallback = installedTransports('I… Auto-discovering topology...\nW… topology.cpp:201] No RDMA devices found, check your device installation\nI… Topology discovery complete. Found 0 HCAs.\nI… tcp_transport.cpp:343] TcpTransport: listen on port 15026');
  assert.equal(fallback, { installed: ['tcp'], hcas: 0, forcedTcp: false });
  const v = judgeTransport('rdma', fallback, fallback);
  assert.is(v.used, 'tcp');
  assert.equal(v.transports, ['mooncake/tcp']);
  assert.match(v.mismatch ?? '', /asked for --protocol=rdma but ran tcp.*0 HCAs/);
  const rdma = installedTransports('I… rdma_context.cpp:286] RDMA device: mlx5_0, LID: 0, GID: (GID_Index 3) 00\nI… installTransport, type=rdma');
  assert.equal(judgeTransport('rdma', rdma, rdma), { used: 'rdma', transports: ['mooncake/rdma'], mismatch: null, unconfirmed: false });
  assert.match(judgeTransport('tcp', installedTransports(''), installedTransports('')).mismatch ?? '', /names no installed transport/);
  assert.match(judgeTransport('rdma', fallback, rdma).mismatch ?? '', /its target did not install it \(target installed tcp, initiator rdma\)/);
});

test('item 1: a silent RDMA -> TCP fallback (auto-discovery, 0 HCAs) fails the row and records tcp; with HCAs it is rdma', async () => {
  const fb = await run('normal', { protocol: 'rdma', warmupS: 0 });
  assert.not.ok(fb.row.ok, 'never published under rdma');
  assert.equal(fb.row.transports, ['mooncake/tcp']);
  assert.match(fb.row.note, /asked for --protocol=rdma but ran tcp \(its auto-discovery found 0 HCAs/);
  assert.match(fb.row.note, /it measured [\d.]+ GB\/s over tcp/);
  assert.ok(spawned(fb.log).every((p) => p.argv.includes('--auto_discovery=true')));
  await assertReaped(fb.log);
  const ok = await run('normal', { protocol: 'rdma', warmupS: 0 }, { FAKE_TE_HCAS: '2' });
  assert.ok(ok.row.ok, ok.row.note);
  assert.equal(ok.row.transports, ['mooncake/rdma']);
  assert.not.ok(ok.row.smoke);
  await assertReaped(ok.log);
  const dir = await tmp();
  const cli = await runCli(['mooncake', '--mooncake-bin', fake, '--duration', '1', '--warmup', '0', '--out-dir', dir], { env: { FAKE_TE_SCALE: '0.25' } });
  assert.is(cli.code, 1, 'the default --protocol rdma on a host without HCAs: a failed row, non-zero exit');
  const rep = JSON.parse(await readFile(join(dir, (await readdir(dir)).find((f) => f.endsWith('.json'))!), 'utf8')) as Report;
  assert.equal(rep.meta.transports, ['mooncake/tcp']);
  assert.is(rep.meta.mooncake_transport, 'tcp');
  assert.not.ok(rep.results[0].ok);
  const forced = await run('normal', { protocol: 'rdma', warmupS: 0 }, { FAKE_TE_HCAS: '1', MC_FORCE_TCP: '1' });
  assert.not.ok(forced.row.ok);
  assert.match(forced.row.note, /ran tcp \(MC_FORCE_TCP is set in its environment/);
  await assertReaped(forced.log);
});

test('item 3: IPv6 --local-host ::1 (or [::1]): MC_USE_IPV6=1 and a bracketed --segment_id', async () => {
  for (const host of ['::1', '[::1]']) {
    const { row, log } = await run('normal', { warmupS: 0, localHost: host });
    assert.ok(row.ok, `${host}: ${row.note}`);
    const procs = spawned(log);
    for (const p of procs) assert.is(p.env.MC_USE_IPV6, '1');
    assert.ok(procs[0].argv.includes('--local_server_name=::1'));
    assert.match(procs[1].argv.find((a) => a.startsWith('--segment_id=')) ?? '', /^--segment_id=\[::1\]:\d+$/);
    await assertReaped(log);
  }
});

test('item 4: MC_LOG_DIR in the environment is removed from the children (else glog goes to files)', async () => {
  const dir = await tmp();
  const { row, log } = await run('normal', { warmupS: 0, targetReadyS: 5 }, { MC_LOG_DIR: dir });
  assert.ok(row.ok, row.note);
  assert.match(row.note, /MC_LOG_DIR removed from Mooncake's environment/);
  for (const p of spawned(log)) assert.is(p.env.MC_LOG_DIR, null);
  await assertReaped(log);
});

test('item 5: a binary that is not executable is told from a missing one', async () => {
  const dir = await tmp();
  const bin = join(dir, 'transfer_engine_bench');
  writeFileSync(bin, readFileSync(fake));
  chmodSync(bin, 0o644);
  const out = await runMooncakeRow({ protocol: 'shm', bin });
  assert.not.ok(out.row.ok);
  assert.not.ok(out.missing);
  assert.match(out.row.note, /is not executable \(mode 0644; chmod \+x it\)/);
  assert.not.match(out.row.note, /not found/);
  assert.is(findMooncakeBin(bin).problem, 'not-executable');
  assert.is(findMooncakeBin(dir).problem, 'not-a-file');
  assert.is(findMooncakeBin(join(dir, 'nope')).problem, 'missing');
  assert.is(findMooncakeBin('transfer_engine_bench', { PATH: dir }).problem, 'not-executable');
  for (const [arg, re] of [[bin, /is not executable \(mode 0644/], [join(dir, 'nope'), /transfer_engine_bench not found/], [dir, /is not a file/]] as const) {
    const r = await runCli(['mooncake', '--protocol', 'shm', '--mooncake-bin', arg, '--out-dir', dir]);
    assert.is(r.code, 2, `${arg}: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.match(r.stderr, /^peercache-bench mooncake: --mooncake-bin /);
    assert.not.match(r.stderr, /\n\s+at /);
  }
  assert.equal((await readdir(dir)).filter((f) => f.startsWith('mooncake-')), [], 'nothing measured or written');
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
  const m = await runCli(['mooncake', '--protocol', 'shm', '--out-dir', dir], { env: { PATH: dirname(process.execPath) } });
  assert.is(m.code, 1, m.stderr);
  assert.match(m.stdout, /transfer_engine_bench not found/);
  const report2 = JSON.parse(await readFile(join(dir, (await readdir(dir)).filter((f) => f.startsWith('mooncake-shm') && f.endsWith('.json'))[0]), 'utf8')) as Report;
  assert.ok(report2.notes.every((n) => !/Mooncake ran with/.test(n)), 'no note describes a run that did not happen');
  assert.is(report2.meta.publishable, false, 'a run that measured nothing is not publishable');
});

/** Runs mooncake against a hung initiator and sends the CLI `signal` once the initiator runs. */
async function signalDuringHang(signal: NodeJS.Signals) {
  const dir = await tmp();
  const log = join(dir, 'procs.jsonl');
  let cli = 0;
  const done = runCli(['mooncake', '--protocol', 'shm', '--mooncake-bin', fake, '--duration', '1', '--warmup', '0', '--out-dir', dir], {
    env: { FAKE_TE_MODE: 'hang', FAKE_TE_LOG: log, FAKE_TE_SCALE: '0.25' },
    onSpawn: (pid) => (cli = pid),
  });
  const deadline = Date.now() + 20_000;
  while (!spawned(log).some((p) => p.role === 'initiator') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  process.kill(cli, signal);
  return { r: await done, dir, log };
}

test('CLI: Ctrl-C during a hung initiator stops it, reaps everything, and still writes the report', async () => {
  const { r, dir, log } = await signalDuringHang('SIGINT');
  assert.is(r.code, 130, r.stderr);
  assert.match(r.stderr, /interrupted: stopping Mooncake now \(it reports nothing partial: its row is written as failed/);
  const json = (await readdir(dir)).find((f) => f.endsWith('.json'));
  assert.ok(json, 'report written');
  const report = JSON.parse(await readFile(join(dir, json!), 'utf8')) as Report;
  assert.not.ok(report.results[0].ok);
  assert.match(report.results[0].note, /aborted by the user/);
  assert.equal(report.results[0].transports, ['mooncake/tcp'], 'the aborted row keeps the transport the target logged');
  await assertReaped(log);
});

test('SIGTERM: the run stops like Ctrl-C, the report is written, exit 143', async () => {
  const { r, dir, log } = await signalDuringHang('SIGTERM');
  assert.is(r.code, 143, r.stderr);
  assert.ok((await readdir(dir)).some((f) => f.endsWith('.json')), 'report written');
  await assertReaped(log);
});

test('item 6: SIGKILL of the wrapper (no handler runs) still takes the target and the initiator down', async () => {
  const dir = await tmp();
  const log = join(dir, 'procs.jsonl');
  let cli = 0;
  const done = runCli(['mooncake', '--protocol', 'shm', '--mooncake-bin', fake, '--duration', '1', '--warmup', '0', '--out-dir', dir], {
    env: { FAKE_TE_MODE: 'hang', FAKE_TE_LOG: log, FAKE_TE_SCALE: '0.25', FAKE_TE_SHIM: '1' },
    onSpawn: (pid) => (cli = pid),
  });
  const deadline = Date.now() + 20_000;
  while (!spawned(log).some((p) => p.role === 'initiator') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const procs = spawned(log);
  assert.ok(procs.some((p) => p.role === 'target') && procs.some((p) => p.role === 'initiator'));
  assert.ok(procs.every((p) => alive(p.pid)), 'all running before the kill');
  process.kill(cli, 'SIGKILL');
  const r = await done;
  assert.is(r.signal, 'SIGKILL');
  await assertReaped(log);
});

test.after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

test.run();
