// run-tests: timeout 900s (npm ci, a build, the quick start's suite and npm pack, as written)
/**
 * Every command block of README.md and docs/*.md, run exactly as written.
 *
 * THE CONVENTION (also in docs/development.md, "Documentation tests"). A fenced block in ```sh
 * (or bash/shell/console) is a command block. The line right above its fence must say how it runs:
 *
 *   <!-- docs-test: checkout -->   in one fresh copy of the checkout (the working tree's tracked and
 *                                  untracked, not ignored, files), shared by all blocks: they run in
 *                                  reading order (README.md, then docs/*.md by name), so a block may
 *                                  rely on an earlier one as a reader following the docs would (the
 *                                  quick start's `npm ci && npm run build` comes first).
 *   <!-- docs-test: host=A -->     on host A (10.0.0.5) or host=B (10.0.0.12): two network namespaces
 *                                  joined by a veth pair that this test creates and removes on every
 *                                  exit path, each with its own /run (a tmpfs), cwd the same copy.
 *       background ready="re"      …left running once its output matches `re`, until the end of its
 *                                  file (then SIGTERM); it must not exit before.
 *       needs=rdma[,mem=65g]       …where no RDMA device exists (/sys/class/infiniband), or less memory
 *                                  is available (MemAvailable), the block must fail as documented
 *                                  instead: exit 1 or 2, no stack trace, a message naming what is
 *                                  missing (RDMA, or the memory / --global-segment). With all it needs
 *                                  it runs like any other.
 *   <!-- docs-test: ci -->         commands CI itself runs (`npm test` cannot run inside npm test):
 *                                  test/docs/blocks.test.ts checks .ci/run runs each line.
 *   <!-- docs-test: skip="why" --> cannot run on a CI machine (another project's source tree, GPUs);
 *                                  the reason says what checks it instead. Printed by every run.
 *
 * Each block runs as `bash -e -o pipefail -c <block>`: any failing line fails it, and it must exit 0.
 * The environment is a user's, with four differences that keep the machine untouched:
 *  - `apt-get` is a checker on PATH (test/fixtures/docs-bin/apt-get): `update` does nothing; `install`
 *    checks that every package exists in the machine's apt sources (apt-cache) and is installed
 *    (dpkg-query), and installs nothing (CI installs packages before npm test). `sudo` is not
 *    provided: a block that needs it fails on a root machine without it, as it would for a user
 *    (where a real sudo exists, a pass-through shim keeps PATH, so the checker is still used).
 *  - `npm install -g` installs into a temporary prefix (npm_config_prefix), its bin on PATH.
 *  - `pip install` installs into a temporary directory (PIP_TARGET, on PYTHONPATH and PATH).
 *  - PEERCACHE_AUTH_TOKEN is unset: a block that needs a secret must say so itself.
 *  - `python3` and `pip` are the first python3 with pip, setuptools and wheel (what the docs ask
 *    for): $PEERCACHE_PYTHON, python3, /usr/bin/python3 (a pyenv python3 may lack wheel).
 * ```ts blocks are run by test/docs/typescript.test.ts; other languages (ini, json, text) are not
 * commands.
 *
 * Every exit path removes what the test made (namespaces, their processes, the copy): a finally, an
 * 'exit' hook, SIGINT/SIGTERM/SIGHUP; after a SIGKILL the next run removes those of dead pids.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { allBlocks, repoRoot, SHELL_LANGS, where, type DocBlock } from '../helpers/doc-blocks.js';

const blocks = allBlocks().filter((b) => SHELL_LANGS.has(b.lang));
const hasRdma = (() => {
  try {
    return readdirSync('/sys/class/infiniband').length > 0;
  } catch {
    return false;
  }
})();

const PREFIX = 'pcdocs';
const ADDRESSES = { A: '10.0.0.5', B: '10.0.0.12' } as const;

// ---- the hosts: two namespaces, one veth pair, a private /run each --------------------------------

const cleanups: Array<() => void> = [];
function cleanupAll(): void {
  while (cleanups.length) {
    try {
      cleanups.pop()!();
    } catch {
      /* keep cleaning */
    }
  }
}
process.on('exit', cleanupAll);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    cleanupAll();
    process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
  });
}

function sh(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr || r.error?.message}`);
}

/** Namespaces of earlier runs whose process is gone (killed by SIGKILL before cleaning up). */
function removeStale(): void {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  for (const line of list.split('\n')) {
    const m = new RegExp(`^(${PREFIX}(\\d+)[AB])\\b`).exec(line.trim());
    if (!m) continue;
    try {
      process.kill(Number(m[2]), 0);
    } catch {
      spawnSync('ip', ['netns', 'del', m[1]]);
    }
  }
}

interface Host {
  name: 'A' | 'B';
  /** A process that holds the host's namespaces (net and mount); blocks enter them with nsenter. */
  holder: ChildProcess;
}

function makeHosts(): Record<'A' | 'B', Host> {
  removeStale();
  const ns = (h: string) => `${PREFIX}${process.pid}${h}`;
  const hosts = {} as Record<'A' | 'B', Host>;
  for (const h of ['A', 'B'] as const) {
    sh('ip', ['netns', 'add', ns(h)]);
    cleanups.push(() => spawnSync('ip', ['netns', 'del', ns(h)]));
  }
  // Made inside A, so the two ends can both be eth0; deleting a namespace deletes its end (and the pair).
  sh('ip', ['-n', ns('A'), 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns('B')]);
  for (const h of ['A', 'B'] as const) {
    sh('ip', ['-n', ns(h), 'addr', 'add', `${ADDRESSES[h]}/24`, 'dev', 'eth0']);
    sh('ip', ['-n', ns(h), 'link', 'set', 'eth0', 'up']);
    sh('ip', ['-n', ns(h), 'link', 'set', 'lo', 'up']);
    // ip netns exec, unshare and sh all exec: the holder's pid is the sleep's, in both namespaces.
    const holder = spawn('ip', ['netns', 'exec', ns(h), 'unshare', '-m', '--propagation', 'private', 'sh', '-c', 'mount -t tmpfs -o mode=0755 tmpfs /run && echo up && exec sleep 100000'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    cleanups.push(() => holder.kill('SIGKILL'));
    hosts[h] = { name: h, holder };
  }
  return hosts;
}

async function hostUp(h: Host): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    let out = '';
    h.holder.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('up')) resolve();
    });
    h.holder.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    h.holder.on('exit', () => reject(new Error(`host ${h.name} did not start: ${out}`)));
  });
}

// ---- the environment --------------------------------------------------------------------------------

interface Env {
  tmp: string;
  checkout: string;
  env: NodeJS.ProcessEnv;
}

/** Copies of earlier runs whose process is gone (SIGKILL leaves them; the pid in the name proves whose). */
function removeStaleCopies(): void {
  for (const name of readdirSync(tmpdir())) {
    const m = /^peercache-docs-(\d+)-/.exec(name);
    if (!m) continue;
    try {
      process.kill(Number(m[1]), 0);
    } catch {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    }
  }
}

function makeEnv(): Env {
  removeStaleCopies();
  const tmp = mkdtempSync(join(tmpdir(), `peercache-docs-${process.pid}-`));
  cleanups.push(() => rmSync(tmp, { recursive: true, force: true }));
  // The copy is named like a clone of the repository, so `../peercache/…` reads as in the docs.
  const checkout = join(tmp, 'peercache');
  const files = spawnSync('git', ['ls-files', '-co', '--exclude-standard', '-z'], { cwd: repoRoot, encoding: 'utf8' });
  assert.is(files.status, 0, `git ls-files: ${files.stderr}`);
  for (const f of files.stdout.split('\0').filter(Boolean)) {
    const from = join(repoRoot, f);
    if (!existsSync(from)) continue; // deleted in the working tree
    mkdirSync(dirname(join(checkout, f)), { recursive: true });
    cpSync(from, join(checkout, f), { verbatimSymlinks: true });
  }
  const bin = join(tmp, 'bin');
  mkdirSync(bin);
  cpSync(join(repoRoot, 'test/fixtures/docs-bin/apt-get'), join(bin, 'apt-get'));
  chmodSync(join(bin, 'apt-get'), 0o755);
  if (spawnSync('sh', ['-c', 'command -v sudo'], { encoding: 'utf8' }).stdout.trim()) {
    // A real sudo resets PATH (secure_path) and would reach the real apt-get.
    writeFileSync(join(bin, 'sudo'), '#!/bin/sh\nexec "$@"\n', { mode: 0o755 });
  }
  // The docs' Python needs pip, setuptools and wheel (Debian: python3-pip python3-setuptools
  // python3-wheel); take the first python3 that has them, as scripts/run-tests.mjs picks one with pytest.
  const pythons = [process.env.PEERCACHE_PYTHON, 'python3', '/usr/bin/python3'].filter((p): p is string => !!p);
  const python = pythons.find((p) => spawnSync(p, ['-c', 'import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ("pip", "setuptools", "wheel")) else 1)'], { stdio: 'ignore' }).status === 0);
  assert.ok(python, `no python3 with pip, setuptools and wheel among ${pythons.join(', ')} (apt-get install python3-pip python3-setuptools python3-wheel)`);
  if (python !== 'python3') {
    writeFileSync(join(bin, 'python3'), `#!/bin/sh\nexec ${python} "$@"\n`, { mode: 0o755 });
    for (const pip of ['pip', 'pip3']) writeFileSync(join(bin, pip), `#!/bin/sh\nexec ${python} -m pip "$@"\n`, { mode: 0o755 });
  }
  const npmPrefix = join(tmp, 'npm-global');
  const site = join(tmp, 'site');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PATH: [bin, join(npmPrefix, 'bin'), join(site, 'bin'), process.env.PATH].join(':'),
    npm_config_prefix: npmPrefix,
    PIP_TARGET: site,
    PYTHONPATH: site,
    NO_COLOR: '1',
    DEBIAN_FRONTEND: 'noninteractive',
  };
  delete env.PEERCACHE_AUTH_TOKEN;
  // npm sets these for the test run itself (npm test); a user's shell has none of them.
  for (const k of Object.keys(env)) if (k.startsWith('npm_') && k !== 'npm_config_prefix') delete env[k];
  return { tmp, checkout, env };
}

// ---- running a block -----------------------------------------------------------------------------------

interface Running {
  proc: ChildProcess;
  output: () => string;
  hasExited: () => boolean;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function start(b: DocBlock, e: Env, hosts: Record<'A' | 'B', Host> | null): Running {
  const argv = ['-e', '-o', 'pipefail', '-c', b.code];
  const a = b.annotation!;
  const [cmd, args] =
    a.mode === 'host'
      ? ['nsenter', ['-t', String(hosts![a.host!].holder.pid), '-m', '-n', `--wd=${e.checkout}`, 'bash', ...argv]]
      : ['bash', argv];
  // Its own process group, so stopping it stops everything it started.
  const proc = spawn(cmd, args, { cwd: e.checkout, env: e.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const kill = (sig: NodeJS.Signals) => {
    try {
      process.kill(-proc.pid!, sig);
    } catch {
      /* gone */
    }
  };
  cleanups.push(() => kill('SIGKILL'));
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    proc.on('close', (code, signal) => {
      done = true;
      resolve({ code, signal });
    }),
  );
  return { proc, output: () => out, hasExited: () => done, exited };
}

async function stop(r: Running, graceMs = 15_000): Promise<void> {
  const group = (sig: NodeJS.Signals) => {
    try {
      process.kill(-r.proc.pid!, sig);
    } catch {
      /* gone */
    }
  };
  group('SIGTERM');
  const timer = setTimeout(() => group('SIGKILL'), graceMs);
  await r.exited;
  clearTimeout(timer);
  group('SIGKILL'); // anything of the group still left
}

async function waitExit(r: Running, ms: number, b: DocBlock): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void stop(r, 1000);
      reject(new Error(`${where(b)} still running after ${ms / 1000} s:\n${tail(r.output())}`));
    }, ms);
  });
  try {
    return await Promise.race([r.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitReady(r: Running, re: RegExp, ms: number, b: DocBlock): Promise<void> {
  const deadline = Date.now() + ms;
  while (!re.test(r.output())) {
    if (r.hasExited()) throw new Error(`${where(b)} exited before its output matched ${re}:\n${tail(r.output())}`);
    if (Date.now() > deadline) throw new Error(`${where(b)}: no ${re} within ${ms / 1000} s:\n${tail(r.output())}`);
    await new Promise((res) => setTimeout(res, 100));
  }
}

const tail = (s: string) => s.split('\n').slice(-40).join('\n');

function memAvailable(): number {
  const kb = /^MemAvailable:\s+(\d+) kB/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1];
  return kb ? Number(kb) * 1024 : 0;
}

/** The documented clear error of a command on a host without what it needs (an RDMA device, memory). */
function assertRefusal(b: DocBlock, code: number | null, out: string, missing: string[]): void {
  assert.ok(code === 1 || code === 2, `${where(b)} without ${missing.join(', ')}: exit 1 or 2 expected, got ${code}:\n${tail(out)}`);
  const names = missing.map((m) => (m === 'rdma' ? 'rdma|RDMA' : 'memory|--global-segment')).join('|');
  assert.match(out, new RegExp(names), `${where(b)}: the error names what is missing (${missing.join(', ')}):\n${tail(out)}`);
  assert.not.match(out, /^\s+at .+[:(]\d+/m, `${where(b)}: no stack trace:\n${tail(out)}`);
}

// ---- the tests -----------------------------------------------------------------------------------------

const runnable = blocks.filter((b) => b.annotation && (b.annotation.mode === 'checkout' || b.annotation.mode === 'host'));

test('the docs have command blocks to run (checkout and both hosts)', () => {
  assert.ok(runnable.some((b) => b.annotation!.mode === 'checkout' && b.file === 'README.md'), 'the README quick start');
  assert.ok(runnable.some((b) => b.annotation!.host === 'A') && runnable.some((b) => b.annotation!.host === 'B'), 'a two-host pair');
});

test('every command block runs as written (checkout, two hosts in network namespaces)', async () => {
  const skipped = blocks.filter((b) => b.annotation?.mode === 'skip');
  for (const b of skipped) console.log(`skip ${where(b)}: ${b.annotation!.reason}`);
  const e = makeEnv();
  const hosts = runnable.some((b) => b.annotation!.mode === 'host') ? makeHosts() : null;
  if (hosts) await Promise.all(Object.values(hosts).map(hostUp));
  try {
    let file = '';
    let background: Running[] = [];
    const endFile = async () => {
      for (const r of background) {
        assert.not.ok(r.hasExited(), `a background block exited before the end of ${file}:\n${tail(r.output())}`);
        await stop(r);
      }
      background = [];
    };
    for (const b of runnable) {
      if (b.file !== file) {
        await endFile();
        file = b.file;
      }
      const a = b.annotation!;
      const t0 = Date.now();
      const r = start(b, e, hosts);
      const missing = [...(a.needsRdma && !hasRdma ? ['rdma'] : []), ...(a.needsMemBytes > memAvailable() ? ['mem'] : [])];
      if (missing.length) {
        const { code } = await waitExit(r, 120_000, b);
        assertRefusal(b, code, r.output(), missing);
        console.log(`ok ${where(b)} (no ${missing.join(', no ')}: refused as documented) ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        continue;
      }
      if (a.background) {
        await waitReady(r, a.ready!, 180_000, b);
        background.push(r);
        console.log(`ok ${where(b)} (up, in the background) ${((Date.now() - t0) / 1000).toFixed(1)} s`);
        continue;
      }
      const { code, signal } = await waitExit(r, 400_000, b);
      assert.is(code, 0, `${where(b)} exited ${code ?? signal}:\n${b.code}\n---\n${tail(r.output())}`);
      console.log(`ok ${where(b)} ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }
    await endFile();
  } finally {
    cleanupAll();
  }
});

test('the namespaces, their processes and the copy are gone afterwards', () => {
  const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
  assert.not.match(list, new RegExp(`${PREFIX}${process.pid}`));
});

test.run();
