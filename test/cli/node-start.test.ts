/**
 * A node never hurts its host (issue 26 item 2). `peercache node --protocol shm --global-segment 64g`
 * on a 24 GiB host used to write zeros into /dev/shm/ucx_shm_posix_* for over a minute (UCX fell
 * back from System V to POSIX memory, whose allocator writes the whole file first), ignore
 * SIGTERM meanwhile (the allocation held the event loop), and leave the file behind after SIGKILL.
 * Here, with real processes, real UCX and the real /dev/shm (bounded: at most 2 GiB for a few
 * seconds; every file a child made is removed in `finally`):
 *   - a segment larger than the host is refused at once, in one line, exit 2, nothing allocated;
 *   - SIGTERM during a slow start (POSIX memory, as UCX_ALLOC_PRIO can ask) stops it before the
 *     segment is written (main wrote all of it first), and leaves nothing in /dev/shm;
 *   - the file a SIGKILLed start left is removed by the next start, which proves it its own
 *     through the ledger the killed one wrote; a file whose process lives is never touched.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, statfsSync, unlinkSync, writeFileSync } from 'node:fs';
import { freemem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readHostMemory, segmentRefusal, type HostMemory } from '../../src/transport/segment-budget.js';
import { processStart, removeStaleShm } from '../../src/transport/shm-ledger.js';
import { freePort } from '../helpers/ports.js';

const GiB = 2 ** 30;
const nodeBin = fileURLToPath(new URL('../../src/cli/peercache.ts', import.meta.url));
const benchBin = fileURLToPath(new URL('../../src/cli/peercache-bench.ts', import.meta.url));
const POSIX_FIRST = 'md:posix,md:sysv,huge,thp,mmap,heap';

interface Run {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
}

function start(bin: string, args: string[], env: NodeJS.ProcessEnv): Run {
  const child = spawn(process.execPath, ['--import', 'tsx', bin, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (err += c));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** The /dev/shm files a process holds open, by path (what UCX's POSIX allocator is writing). */
function shmFilesOf(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  try {
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (/^\/dev\/shm\/ucx_shm_posix_[0-9a-f]+$/.test(target)) out.set(target, `/proc/${pid}/fd/${fd}`);
      } catch {
        // closed meanwhile
      }
    }
  } catch {
    // the process is gone
  }
  return out;
}

/** The segment being written: a /dev/shm file the process holds that is already over 64 MiB (UCX's own small FIFOs come and go too). */
function segmentOf(pid: number): [string, string] | null {
  for (const [file, fd] of shmFilesOf(pid)) {
    try {
      if (statSync(fd).blocks * 512 > 64 * 2 ** 20) return [file, fd];
    } catch {
      // gone meanwhile
    }
  }
  return null;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until `f` returns a value (or the deadline passes: null). */
async function until<T>(f: () => T | null | undefined, ms: number): Promise<T | null> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    const v = f();
    if (v !== null && v !== undefined) return v;
    await sleep(20);
  }
  return null;
}

/** A segment that fits here and takes a second or more to allocate as POSIX memory: 2 GiB, less on a small host. */
function slowSegment(): number {
  const host = readHostMemory();
  const room = Math.min(host.shmFree ?? Infinity, host.memAvailable ?? freemem());
  return Math.max(512 * 2 ** 20, Math.min(2 * GiB, Math.floor(room / 3 / 2 ** 20) * 2 ** 20));
}

function nodeArgs(port: number, dir: string, segment: string): string[] {
  return ['node', '--socket', join(dir, 'p.sock'), '--discovery-addr', `127.0.0.1:${port}`, '--protocol', 'shm', '--global-segment', segment, '--slot-bytes', '128k'];
}

/**
 * Waits for a start that must refuse: its exit, or null if it began allocating a segment instead
 * (it is then killed at once and every /dev/shm file it held goes into `seen`, for removal).
 */
async function refusedOrStopped(run: Run, seen: Set<string>): Promise<{ code: number | null; signal: NodeJS.Signals | null } | null> {
  let exited: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  void run.exited.then((e) => (exited = e));
  while (!exited) {
    const pid = run.child.pid!;
    for (const f of shmFilesOf(pid).keys()) seen.add(f);
    if (segmentOf(pid)) {
      run.child.kill('SIGKILL');
      await run.exited;
      return null;
    }
    await sleep(20);
  }
  return exited;
}

/** Removes what a child may have left (the test's own mess, found through the child's descriptors). */
function removeAll(files: Iterable<string>): void {
  for (const f of files) {
    try {
      unlinkSync(f);
    } catch {
      // gone
    }
  }
}

test('a segment larger than the host is refused at once: one line naming the numbers and the flag, exit 2, nothing in /dev/shm', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-node-start-'));
  const seen = new Set<string>();
  // 64g, the README's size, or twice this host's memory where that is more.
  const total = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))![1]) * 1024;
  const size = `${Math.max(64, Math.ceil((2 * total) / GiB))}g`;
  try {
    for (const [bin, args] of [
      [nodeBin, nodeArgs(await freePort(), dir, size)],
      [benchBin, ['serve', '--protocol', 'shm', '--discovery-addr', `127.0.0.1:${await freePort()}`, '--global-segment', size]],
    ] as const) {
      const run = start(bin, [...args], { PEERCACHE_STATE_DIR: dir });
      // Today's main starts writing zeros into /dev/shm here, for minutes: the first 64 MiB of it
      // ends the child (and the test), so a regression never fills /dev/shm.
      const result = await refusedOrStopped(run, seen);
      assert.ok(result, `${bin.split('/').pop()} started allocating ${[...seen].join(', ')} instead of refusing`);
      assert.is(result!.code, 2, run.stderr());
      const lines = run.stderr().trim().split('\n');
      assert.match(lines[0], new RegExp(`--global-segment ${size.replace('g', '')} GiB does not fit this host's memory: [\\d.]+ GiB available \\(MemAvailable [\\d.]+ GiB`));
      assert.not.match(run.stderr(), /\n\s+at /, 'no stack trace');
      assert.equal([...seen], [], 'no shared-memory file was made');
    }
  } finally {
    removeAll(seen);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGTERM while a slow start allocates its segment: stops before the segment is written, removes its file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-node-start-'));
  const bytes = slowSegment();
  const made = new Set<string>();
  const run = start(nodeBin, nodeArgs(await freePort(), dir, `${bytes / 2 ** 20}m`), { PEERCACHE_STATE_DIR: dir, UCX_ALLOC_PRIO: POSIX_FIRST });
  try {
    const first = await until(() => segmentOf(run.child.pid!), 60_000);
    assert.ok(first, `the node never started allocating: ${run.stderr()}`);
    const [file, fdPath] = first!;
    made.add(file);
    const written = () => {
      try {
        return statSync(fdPath).blocks * 512;
      } catch {
        return 0;
      }
    };
    run.child.kill('SIGTERM');
    // Today's main ignores SIGTERM until UCX has written the whole segment (then it stops). Here it
    // stops at once: the file never reaches its size. (No clock: what was written is the measure.)
    let most = 0;
    let done = false;
    const exited = run.exited.then((e) => ((done = true), e));
    while (!done) {
      most = Math.max(most, written());
      await sleep(5);
    }
    const exit = await exited;
    assert.ok(most < bytes, `the segment was written whole (${most} of ${bytes} B) before the node stopped`);
    assert.ok(exit.signal === 'SIGTERM' || exit.code === 143, `exit ${exit.code} ${exit.signal}`);
    assert.match(run.stderr(), /stopped during start-up \(SIGTERM\)/);
    assert.not.ok(existsSync(file), `${file} is still there`);
    assert.equal(readdirSync(dir).filter((f) => f.startsWith('shm-')), [], 'its ledger is gone');
  } finally {
    if (run.child.exitCode === null && run.child.signalCode === null) {
      for (const f of shmFilesOf(run.child.pid!).keys()) made.add(f);
      run.child.kill('SIGKILL');
      await run.exited;
    }
    removeAll(made);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a SIGKILLed start's shared-memory file is removed by the next start, which proves it its own", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-node-start-'));
  const made = new Set<string>();
  const killed = start(nodeBin, nodeArgs(await freePort(), dir, `${slowSegment() / 2 ** 20}m`), { PEERCACHE_STATE_DIR: dir, UCX_ALLOC_PRIO: POSIX_FIRST });
  try {
    const file = await until(() => segmentOf(killed.child.pid!)?.[0], 60_000);
    assert.ok(file, `the node never started allocating: ${killed.stderr()}`);
    made.add(file!);
    // Its ledger names the file before it is more than a few ms old.
    const ledger = join(dir, `shm-${killed.child.pid}.json`);
    await until(() => (existsSync(ledger) && readFileSync(ledger, 'utf8').includes(file!) ? true : null), 1000);
    killed.child.kill('SIGKILL');
    await killed.exited;
    assert.ok(existsSync(file!), 'SIGKILL left the file (the kernel cannot know to remove it)');
    // The next start (here one that is refused: cleaning comes before the check) removes it.
    const next = start(nodeBin, nodeArgs(await freePort(), dir, '64g'), { PEERCACHE_STATE_DIR: dir });
    const exit = await refusedOrStopped(next, made);
    assert.ok(exit, `the next start allocated instead of refusing: ${next.stderr()}`);
    assert.is(exit!.code, 2, next.stderr());
    assert.not.ok(existsSync(file!), `${file} is still there: ${next.stderr()}`);
    assert.match(next.stderr(), new RegExp(`removed ${file} \\(\\d+ B of shared memory\\) left by peercache process ${killed.child.pid}, which is gone`));
    assert.not.ok(existsSync(ledger));
  } finally {
    if (killed.child.exitCode === null && killed.child.signalCode === null) {
      killed.child.kill('SIGKILL');
      await killed.exited;
    }
    removeAll(made);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a ledger proves nothing about a file whose process still runs, or a file that is no UCX segment: those stay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'pc-node-start-'));
  const live = spawn('sleep', ['30'], { stdio: 'ignore' });
  const name = `/dev/shm/ucx_shm_posix_${Math.floor(Math.random() * 2 ** 32).toString(16)}`;
  try {
    writeFileSync(name, '');
    const liveStart = await until(() => processStart(live.pid!), 2000);
    writeFileSync(join(dir, `shm-${live.pid}.json`), JSON.stringify({ pid: live.pid, start: liveStart, files: [name] }));
    // Another file of the same user, not a UCX segment, named by a dead process's ledger.
    writeFileSync(join(dir, 'shm-999999999.json'), JSON.stringify({ pid: 999_999_999, start: '1', files: ['/etc/hostname', `${dir}/shm-1.json`] }));
    assert.equal(removeStaleShm(dir), []);
    assert.ok(existsSync(name), 'the live process keeps its file');
    assert.ok(existsSync('/etc/hostname'));
    // A reused pid (same number, another start time) is a process that is gone.
    writeFileSync(join(dir, `shm-${live.pid}.json`), JSON.stringify({ pid: live.pid, start: `${liveStart}0`, files: [name] }));
    assert.equal(removeStaleShm(dir).map((r) => r.file), [name]);
    assert.not.ok(existsSync(name));
  } finally {
    live.kill('SIGKILL');
    removeAll([name]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('segmentRefusal: memory (and the cgroup), /dev/shm where POSIX memory backs the segment, ulimit -l on rdma', () => {
  const host: HostMemory = { memAvailable: 20 * GiB, cgroupFree: null, cgroupLimit: null, shmFree: 12 * GiB, memlock: 8 * 2 ** 20, ipcLock: false, sysvMax: 2 ** 62, posixFirst: false };
  assert.is(segmentRefusal(4 * GiB, 'shm', host), null);
  assert.match(segmentRefusal(64 * GiB, 'shm', host)!, /^\{globalSegmentBytes\} 64 GiB does not fit this host's memory: 20 GiB available \(MemAvailable 20 GiB\), and a segment must leave 1 GiB/);
  assert.match(segmentRefusal(19.5 * GiB, 'tcp', host)!, /must leave 1 GiB/);
  assert.match(segmentRefusal(8 * GiB, 'shm', { ...host, cgroupLimit: 10 * GiB, cgroupFree: 6 * GiB })!, /6 GiB available \(MemAvailable 20 GiB, cgroup limit 10 GiB with 6 GiB free\)/);
  // System V backs it: /dev/shm's size does not matter (Docker's 64 MiB /dev/shm runs 4 GiB segments).
  assert.is(segmentRefusal(16 * GiB, 'shm', { ...host, shmFree: 64 * 2 ** 20 }), null);
  assert.match(segmentRefusal(16 * GiB, 'shm', { ...host, posixFirst: true })!, /does not fit \/dev\/shm: 12 GiB free there.*UCX_ALLOC_PRIO puts md:posix first/);
  assert.match(segmentRefusal(16 * GiB, 'shm', { ...host, sysvMax: 8 * GiB })!, /System V allows at most 8 GiB/);
  assert.match(segmentRefusal(4 * GiB, 'rdma', host)!, /locked-memory limit \(ulimit -l: 8 MiB\).*LimitMEMLOCK=infinity/);
  assert.is(segmentRefusal(4 * GiB, 'rdma', { ...host, ipcLock: true }), null);
  assert.is(segmentRefusal(4 * GiB, 'rdma', { ...host, memlock: null }), null);
  assert.is(segmentRefusal(4 * GiB, 'shm', host), null, 'ulimit -l is no matter on shm');
  // statfs counts what is free now: this host's own facts read without error.
  const here = readHostMemory();
  assert.ok(here.memAvailable! > 0 && here.shmFree === statfsSync('/dev/shm').bavail * statfsSync('/dev/shm').bsize);
});

test.run();
