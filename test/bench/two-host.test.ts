/**
 * serve / drive: the two-host run, here as separate processes on one host (shm and tcp), with
 * --processes 2, mismatched parameters, the loopback refusal, and serve killed mid-drive.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execSync, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { ChildProc } from '../../src/bench/child-process.js';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliEntry, type CliResult } from '../helpers/cli.js';
import { freePort } from '../helpers/ports.js';
import { SharedHistogram } from '../../src/bench/histogram.js';
import { makeRow } from '../../src/bench/report/metrics.js';
import type { Report } from '../../src/bench/report/types.js';
import { mergeProcessRows, type MergeIdentity } from '../../src/bench/two-host/merge.js';
import { compareAgreement, agreementAttributes, TWO_HOST_KEY_PREFIX, TwoHostMismatchError } from '../../src/bench/two-host/params.js';
import { hostAddresses } from '../../src/bench/two-host/net.js';

interface Running {
  proc: ChildProcess;
  out: () => string;
  err: () => string;
  /** Resolves when `re` matches the output so far (stdout + stderr); rejects on exit or timeout. */
  waitFor(re: RegExp, timeoutMs?: number): Promise<void>;
  done: Promise<CliResult>;
  kill(signal?: NodeJS.Signals): Promise<CliResult>;
}

const spawned = new Set<Running>();

function start(args: string[]): Running {
  const child = new ChildProc({ label: 'peercache-bench', command: process.execPath, args: ['--import', 'tsx', cliEntry, ...args], env: { ...process.env, NO_COLOR: '1' }, lifetime: 'stdin', keepBytes: 256 << 20 });
  child.proc.stdin!.end(); // the CLI reads no input
  const proc = child.proc;
  const done: Promise<CliResult> = child.exited.then(async (exit) => {
    await child.closed;
    return { code: exit.code, signal: exit.signal, stdout: child.stdout(), stderr: child.stderr() };
  });
  const r: Running = {
    proc,
    out: () => child.stdout(),
    err: () => child.stderr(),
    waitFor(re, timeoutMs = 30_000) {
      // Matched against the whole output so far (it may span lines).
      const text = () => child.stdout() + child.stderr();
      return new Promise((resolve, reject) => {
        let settled = false;
        const finish = (fn: () => void) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          fn();
        };
        const timer = setTimeout(() => finish(() => reject(new Error(`timed out waiting for ${re}: stdout=${child.stdout()} stderr=${child.stderr()}`))), timeoutMs);
        // After ChildProc's own 'data' handlers (registered first), on every chunk, as partial lines count.
        const check = () => {
          if (re.test(text())) finish(resolve);
        };
        proc.stdout!.on('data', check);
        proc.stderr!.on('data', check);
        void done.then(() => {
          proc.stdout!.off('data', check);
          proc.stderr!.off('data', check);
        });
        void done.then(() => finish(() => (re.test(text()) ? resolve() : reject(new Error(`exited before ${re}: stdout=${child.stdout()} stderr=${child.stderr()}`)))));
        if (re.test(text())) finish(resolve);
      });
    },
    done,
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.alive) await child.stop({ via: signal, graceMs: 5000 });
      return done;
    },
  };
  spawned.add(r);
  void done.then(() => spawned.delete(r));
  return r;
}

async function reapAll(): Promise<void> {
  await Promise.all([...spawned].map((r) => r.kill('SIGKILL')));
}

const SMALL = ['--working-set', '64', '--page-size', '16k'];

async function serve(protocol: string, extra: string[] = []): Promise<{ s: Running; addr: string }> {
  const addr = `127.0.0.1:${await freePort()}`;
  const s = start(['serve', '--discovery-addr', addr, '--protocol', protocol, ...SMALL, ...extra]);
  await s.waitFor(/^serving 64 pages/m);
  return { s, addr };
}

async function artifacts(dir: string): Promise<string[]> {
  return (await readdir(dir).catch(() => [] as string[])).sort();
}

async function readReport(dir: string): Promise<{ name: string; report: Report; md: string }> {
  const files = await artifacts(dir);
  const json = files.find((f) => f.endsWith('.json'));
  assert.ok(json, `a JSON artifact in ${dir}: ${files.join(', ')}`);
  return {
    name: json!,
    report: JSON.parse(await readFile(join(dir, json!), 'utf8')) as Report,
    md: await readFile(join(dir, json!.replace(/\.json$/, '.md')), 'utf8'),
  };
}

const tmp = () => mkdtemp(join(tmpdir(), 'pcbench-dist-'));
const quick = ['--duration', '0.3', '--warmup', '0.1', '--batch-size', '8', '--connect-timeout', '20'];

for (const protocol of ['shm', 'tcp'] as const) {
  test(`${protocol}: serve and drive as separate processes; the artifact carries the dist meta and what ran`, async () => {
    const dir = await tmp();
    try {
      const { s, addr } = await serve(protocol);
      assert.match(s.out(), new RegExp(`protocol ${protocol} \\(transports `));
      const d = start(['drive', '--discovery-addr', addr, '--protocol', protocol, ...SMALL, '--concurrencies', '1,2', ...quick, '--verify', '--out-dir', dir, '--tag', 't1']);
      const res = await d.done;
      assert.is(res.code, 0, res.stderr);
      const { name, report, md } = await readReport(dir);
      assert.match(name, new RegExp(`^hicache-dist-get-${protocol}-t1-\\d{8}-\\d{6}\\.json$`));
      assert.is(report.meta.mode, 'dist');
      assert.is(report.meta.role, 'drive');
      assert.is(report.meta.op, 'get');
      assert.is(report.meta.protocol, protocol);
      assert.is(report.meta.remote, addr);
      assert.is(report.meta.processes, 1);
      assert.is(report.meta.working_set, 64);
      assert.is(report.meta.serve_node, 'pcbench-serve');
      assert.ok(report.meta.transports.length > 0, 'meta.transports says what ran');
      assert.is(report.meta.publishable, protocol !== 'tcp');
      assert.equal(report.results.map((r) => r.threads), [1, 2]);
      for (const row of report.results) {
        assert.ok(row.ok, row.note);
        assert.is(row.protocol, protocol);
        assert.is(row.hit_rate, 1);
        assert.ok(row.calls > 0);
        assert.ok(row.transports.length > 0);
        assert.match(row.note, `dist batch_get mla ws=64 remote=${addr}`);
      }
      assert.match(md, '`peercache-bench drive --discovery-addr');
      if (protocol === 'shm') {
        // exists: the directory path, against the same serve node.
        const ex = await start(['drive', '--discovery-addr', addr, '--protocol', protocol, ...SMALL, '--op', 'exists', '--concurrencies', '1', ...quick, '--out-dir', dir]).done;
        assert.is(ex.code, 0, ex.stderr);
        const files = await artifacts(dir);
        const name = files.find((f) => /^hicache-dist-exists-shm-\d{8}-\d{6}\.json$/.test(f));
        assert.ok(name, files.join(', '));
        const r = JSON.parse(await readFile(join(dir, name!), 'utf8')) as Report;
        assert.is(r.results[0].op, 'exists');
        assert.ok(r.results[0].ok && r.results[0].pages > 0, r.results[0].note);
      }
      await s.waitFor(/driver 'pcbench-drive-[^']+' joined/);
      const stopped = await s.kill('SIGTERM');
      assert.is(stopped.code, 0, stopped.stderr);
      assert.match(stopped.stdout, /serve stopped: node 'pcbench-serve'/);
    } finally {
      await reapAll();
      await rm(dir, { recursive: true, force: true });
    }
  });
}

test("serve's drive hint carries the auth token by name, never the secret, and runs as printed", async () => {
  const dir = await tmp();
  const saved = process.env.PEERCACHE_AUTH_TOKEN;
  try {
    // A token given as a flag: the hint says one is needed without printing it.
    const flagged = await serve('shm', ['--auth-token', 'flag-s3cret']);
    assert.match(flagged.s.out(), / --auth-token <the same token> \.\.\.\)/);
    assert.not.match(flagged.s.out(), /flag-s3cret/);
    await flagged.s.kill('SIGTERM');
    // A token from the environment: the hint names the variable, so it runs where that is set.
    process.env.PEERCACHE_AUTH_TOKEN = 'env-s3cret';
    const { s } = await serve('tcp');
    delete process.env.PEERCACHE_AUTH_TOKEN;
    assert.not.match(s.out(), /env-s3cret/);
    const hint = /\((peercache-bench drive [^)]*?) \.\.\.\)/.exec(s.out())?.[1];
    assert.ok(hint && hint.includes('--auth-token "$PEERCACHE_AUTH_TOKEN"'), s.out());
    await writeFile(join(dir, 'peercache-bench'), `#!/bin/sh\nexec "${process.execPath}" --import tsx "${cliEntry}" "$@"\n`, { mode: 0o755 });
    const r = spawnSync('bash', ['-c', `${hint} --concurrencies 1 ${quick.join(' ')} --out-dir ${dir}/out`], {
      env: { ...process.env, PEERCACHE_AUTH_TOKEN: 'env-s3cret', PATH: `${dir}:${process.env.PATH}`, NO_COLOR: '1' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.is(r.status, 0, `${hint}\n${r.stderr}`);
    // The same hint without the token is refused: the hint's flag is what made it work.
    const without = spawnSync('bash', ['-c', `${hint} --concurrencies 1 ${quick.join(' ')} --out-dir ${dir}/out`], {
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, NO_COLOR: '1' },
      encoding: 'utf8',
      timeout: 120_000,
    });
    assert.is.not(without.status, 0, without.stdout);
  } finally {
    if (saved === undefined) delete process.env.PEERCACHE_AUTH_TOKEN;
    else process.env.PEERCACHE_AUTH_TOKEN = saved;
    await reapAll();
    await rm(dir, { recursive: true, force: true });
  }
});

test('drive --protocol rdma on a host without an RDMA device fails at once, naming RDMA (not after --connect-timeout)', async () => {
  if (existsSync('/sys/class/infiniband') && readdirSync('/sys/class/infiniband').length > 0) return; // a NIC: nothing to refuse
  const r = await start(['drive', '--discovery-addr', `127.0.0.1:${await freePort()}`, '--protocol', 'rdma', '--connect-timeout', '30']).done;
  assert.is(r.code, 1, r.stderr);
  assert.match(r.stderr, /protocol 'rdma' cannot run here/);
  assert.not.match(r.stderr, /no directory at/);
});

test('serve --metrics-port exposes Prometheus metrics that move when a driver reads', async () => {
  const dir = await tmp();
  try {
    const port = await freePort();
    const { s, addr } = await serve('shm', ['--metrics-port', String(port)]);
    await s.waitFor(/^metrics: http:\/\/127\.0\.0\.1:\d+\/metrics/m);
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const before = await scrape();
    assert.match(before, /# TYPE peercache_pages_published_total counter/);
    assert.match(before, /peercache_pages_published_total\{node="pcbench-serve"\} 64/);
    assert.match(before, /peercache_pool_slots\{node="pcbench-serve"\} \d+/);
    const d = await start(['drive', '--discovery-addr', addr, '--protocol', 'shm', ...SMALL, '--concurrencies', '1', ...quick, '--out-dir', dir]).done;
    assert.is(d.code, 0, d.stderr);
    // serve only publishes: its directory-latency histogram and publish counters are what moved.
    assert.match(await scrape(), /peercache_directory_request_duration_seconds_count\{[^}]*op="publish"[^}]*\} [1-9]/);
    await s.kill('SIGTERM');
  } finally {
    await reapAll();
    await rm(dir, { recursive: true, force: true });
  }
});

test('--processes 2: one merged row per concurrency, threads summed, one window, histograms merged', async () => {
  const dir = await tmp();
  try {
    const { s, addr } = await serve('shm', ['--readers', '2']);
    const d = start(['drive', '--discovery-addr', addr, '--protocol', 'shm', ...SMALL, '--op', 'get', '--concurrencies', '1,2', ...quick, '--processes', '2', '--out-dir', dir]);
    const res = await d.done;
    assert.is(res.code, 0, res.stderr);
    const { report } = await readReport(dir);
    assert.is(report.meta.processes, 2);
    assert.equal(report.results.map((r) => r.threads), [2, 4]);
    for (const row of report.results) {
      assert.ok(row.ok, row.note);
      assert.match(row.note, 'x2proc');
      assert.match(row.note, /one window: starts within [\d.]+ ms/);
      assert.is(row.extra?.processes, 2);
      assert.ok((row.extra?.window_skew_ms ?? 1e9) < 100, `start skew ${row.extra?.window_skew_ms} ms`);
      // One window, not a sum of windows: about the configured duration.
      assert.ok(row.duration_s >= 0.29 && row.duration_s < 0.5, `window ${row.duration_s} s`);
      // Counters add up: every call recorded once in the merged histogram, every page a hit.
      assert.is(SharedHistogram.decode(row.histogram!).count, row.calls);
      assert.is(row.pages, row.calls * 8);
      assert.is(row.pages_requested, row.pages);
    }
    await s.waitFor(/all 2 expected drivers joined/);
    assert.match(s.out(), /coordinating 2 driver processes/);
  } finally {
    await reapAll();
    await rm(dir, { recursive: true, force: true });
  }
});

test('--processes 2: a driver process killed mid-row fails that row with the reason; the next row runs on a new one', async () => {
  const dir = await tmp();
  try {
    const { addr } = await serve('shm', ['--readers', '2']);
    const d = start(['drive', '--discovery-addr', addr, '--protocol', 'shm', ...SMALL, '--concurrencies', '1,2', '--duration', '3', '--warmup', '0.1', '--batch-size', '8', '--connect-timeout', '20', '--processes', '2', '--out-dir', dir, '--log-level', 'debug']);
    const readyLine = /row 1: all 2 driver processes ready; common start in (\d+) ms/;
    await d.waitFor(readyLine);
    const readyAt = Date.now();
    const startInMs = Number(readyLine.exec(d.out() + d.err())![1]);
    // The children are there (they said ready): find one now, then kill it inside the window,
    // a second past its start and warmup, whatever the time the lookup took on a loaded machine.
    let list = '';
    let victim = 0;
    for (const until = Date.now() + 10_000; !(victim > 0) && Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
      list = execSync(`ps -o pid=,args= --ppid ${d.proc.pid} || true`, { shell: '/bin/sh' }).toString();
      victim = Number(/^\s*(\d+) .*drive-child/m.exec(list)?.[1]);
    }
    assert.ok(victim > 0, `a drive child among: ${list}`);
    const killAt = readyAt + startInMs + 100 + 1000;
    await new Promise((r) => setTimeout(r, Math.max(0, killAt - Date.now())));
    process.kill(victim, 'SIGKILL');
    const res = await d.done;
    assert.is(res.code, 1, res.stderr);
    const { report } = await readReport(dir);
    const [first, second] = report.results;
    assert.not.ok(first.ok);
    assert.match(first.note, /process \d: drive process \d \(pid \d+\) exited \(killed by SIGKILL\)/);
    assert.ok(second.ok, second.note);
    assert.is(second.threads, 4);
  } finally {
    await reapAll();
    await rm(dir, { recursive: true, force: true });
  }
});

test('mismatched layout, page size and working set: a clear error naming both values, exit non-zero, no artifact', async () => {
  const dir = await tmp();
  try {
    const { addr } = await serve('shm', ['--layout', 'mha']);
    const res = await start(['drive', '--discovery-addr', addr, '--protocol', 'shm', '--working-set', '128', '--page-size', '32k', '--concurrencies', '1', ...quick, '--out-dir', dir]).done;
    assert.is.not(res.code, 0);
    assert.match(res.stderr, '--layout: serve mha, drive mla');
    assert.match(res.stderr, '--page-size: serve 16384, drive 32768');
    assert.match(res.stderr, '--working-set: serve 64, drive 128');
    assert.equal(await artifacts(dir), []);
  } finally {
    await reapAll();
    await rm(dir, { recursive: true, force: true });
  }
});

test('serve refuses to advertise loopback to other hosts, with the fix in the message', async () => {
  const port = await freePort();
  const wild = await start(['serve', '--discovery-addr', `0.0.0.0:${port}`, '--protocol', 'shm', ...SMALL]).done;
  assert.is(wild.code, 2, wild.stderr);
  assert.match(wild.stderr, 'refusing to serve');
  assert.match(wild.stderr, 'Pass --local-host');
  const external = hostAddresses().find((a) => !a.includes(':'));
  if (external) {
    const lo = await start(['serve', '--discovery-addr', `${external}:${port}`, '--local-host', '127.0.0.1', '--protocol', 'shm', ...SMALL]).done;
    assert.is(lo.code, 2, lo.stderr);
    assert.match(lo.stderr, '--local-host 127.0.0.1 is a loopback address');
  }
});

test('serve killed mid-drive: drive reports it, exits non-zero, and writes the partial artifact', async () => {
  const dir = await tmp();
  try {
    const { s, addr } = await serve('shm');
    const d = start(['drive', '--discovery-addr', addr, '--protocol', 'shm', ...SMALL, '--concurrencies', '1,2,3', '--duration', '1', '--warmup', '0.1', '--batch-size', '8', '--connect-timeout', '10', '--out-dir', dir, '--log-level', 'info']);
    await d.waitFor(/row 1\/3 get x1/);
    await s.kill('SIGKILL');
    const t0 = Date.now();
    const res = await d.done;
    assert.ok(Date.now() - t0 < 30_000, 'drive did not hang');
    assert.is(res.code, 1, res.stderr);
    const { report } = await readReport(dir);
    assert.is(report.results.length, 3);
    assert.ok(report.results[0].ok, report.results[0].note);
    for (const row of report.results.slice(1)) {
      assert.not.ok(row.ok);
      assert.match(row.note, /serve/);
    }
    assert.ok(report.notes.some((n) => /serve went away/.test(n)), report.notes.join(' | '));
  } finally {
    await reapAll();
    await rm(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------- units

const identity: MergeIdentity = { path: 'hicache-get', rowOp: 'get', protocol: 'shm', blockSize: 4096, batchSize: 4, threads: 2, components: 1, tokensPerPage: 16, phase: 'sweep', note: 'dist batch_get mla ws=64 remote=h:1' };

function childRow(calls: number, latNs: number, seconds: number) {
  const h = SharedHistogram.create();
  for (let i = 0; i < calls; i++) h.record(latNs);
  return makeRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 4096, batchSize: 4, threads: 2, tokensPerPage: 16, calls, pages: calls * 4, pagesRequested: calls * 4, elapsedNs: seconds * 1e9, latency: h.summary(), histogram: h.encode(), transports: ['sysv/memory'], cpu: 50, rss: 1000, note: identity.note });
}

test('merge: counters add, histograms merge, the window is the union of aligned windows, threads sum', () => {
  const row = mergeProcessRows(
    [
      { process: 0, row: childRow(100, 1000, 1), startedAtMs: 10_000 },
      { process: 1, row: childRow(300, 3000, 1), startedAtMs: 10_002 },
    ],
    identity,
  );
  assert.ok(row.ok);
  assert.is(row.threads, 4);
  assert.is(row.calls, 400);
  assert.is(row.pages, 1600);
  assert.is(row.duration_s, 1.002);
  assert.is(row.pages_per_s, Math.round((1600 / 1.002) * 10) / 10);
  assert.is(SharedHistogram.decode(row.histogram!).count, 400);
  assert.ok(row.lat_us_p50! > 2.9 && row.lat_us_p50! < 3.1, `p50 ${row.lat_us_p50} is of the union of samples`);
  assert.is(row.cpu_client_pct, 100);
  assert.match(row.note, 'x2proc');
  assert.is(row.extra?.window_skew_ms, 2);
});

test('merge: a failed process fails the row with its reason', () => {
  const row = mergeProcessRows(
    [
      { process: 0, row: childRow(100, 1000, 1), startedAtMs: 10_000 },
      { process: 1, row: null, startedAtMs: null, error: 'drive process 2 (pid 7) exited (SIGKILL)' },
    ],
    identity,
  );
  assert.not.ok(row.ok);
  assert.is(row.threads, 4);
  assert.match(row.note, 'process 2: drive process 2 (pid 7) exited (SIGKILL)');
});

test('agreement: rails must match in count; the message names both sides', () => {
  const serveNode = { nodeId: 's', protocol: 'rdma' as const, host: 'h', transportAddress: '', regionDescriptor: null, attributes: agreementAttributes('serve', { layout: 'mla', pageBytes: 4096, workingSet: 8, protocol: 'rdma', devices: ['mlx5_0', 'mlx5_1'] }) };
  const m = compareAgreement(serveNode, { layout: 'mla', pageBytes: 4096, workingSet: 8, protocol: 'rdma', devices: ['mlx5_0'] });
  assert.is(m.length, 1);
  const err = new TwoHostMismatchError('s', m);
  assert.match(err.message, '--devices: serve 2 rails (--devices mlx5_0,mlx5_1), drive 1 rail (--devices mlx5_0)');
  assert.equal(compareAgreement(serveNode, { layout: 'mla', pageBytes: 4096, workingSet: 8, protocol: 'rdma', devices: ['mlx5_2', 'mlx5_3'] }), []);
});

test('the working set is named as the original names it (dist.py: pcbench/dist/get/<i>), whatever this mode is called in the code', () => {
  assert.is(TWO_HOST_KEY_PREFIX, 'pcbench/dist/get');
});

test.after(reapAll);
test.run();
