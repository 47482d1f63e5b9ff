/** The manifest every report carries. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { makeReport, makeRow } from '../../src/bench/report/metrics.js';
import { relevantEnv } from '../../src/bench/report/manifest.js';
import { schemaErrors } from '../helpers/schema.js';
import { readFileSync } from 'node:fs';
import { gcFlagNote, SINGLE_THREADED_GC } from '../../src/bench/engine/gc-flags.js';

const host = { platform: 'linux', os_release: '6', arch: 'x64', cpu_model: 'Test CPU', cpu_count: 2, node_version: 'v20.20.2', package_version: '0.1.0', ucx_version: '1.13.1', hostname: 'h' };

test('manifest: command, versions, git commit of this checkout, transports, env, CPU, load before, client CPU per row', () => {
  process.env.UCX_TLS = 'sm,self';
  process.env.PEERCACHE_AUTH_TOKEN = 'secret';
  const rows = [
    makeRow({ path: 'hicache-get', op: 'get', protocol: 'shm', blockSize: 4096, batchSize: 1, threads: 1, calls: 1, pages: 1, elapsedNs: 1e9, latency: null, cpu: 87.5 }),
    makeRow({ path: 'hicache-set', op: 'set', protocol: 'shm', blockSize: 4096, batchSize: 1, threads: 1, calls: 1, pages: 1, elapsedNs: 1e9, latency: null }),
  ];
  const r = makeReport({ command: 'peercache-bench saturation --protocol shm', host, meta: { mode: 'saturation', protocol: 'shm', transports: ['sysv/memory'] }, results: rows, loadavgBefore: [0.5, 0.25, 0.1] });
  assert.is(schemaErrors(r), null);
  const m = r.manifest;
  assert.is(m.command, 'peercache-bench saturation --protocol shm');
  assert.is(m.package_version, '0.1.0');
  assert.is(m.node_version, 'v20.20.2');
  assert.is(m.ucx_version, '1.13.1');
  assert.equal(m.ucx_transports, ['sysv/memory']);
  assert.is(m.env.UCX_TLS, 'sm,self');
  assert.is(m.env.PEERCACHE_AUTH_TOKEN, '***', 'secrets masked');
  assert.is(m.cpu_model, 'Test CPU');
  assert.is(m.cpu_count, 2);
  assert.equal(m.loadavg_before, [0.5, 0.25, 0.1]);
  assert.equal(m.client_cpu_pct, [87.5, null]);
  assert.equal(m.node_flags, process.execArgv, 'the node flags this process started with');
  let head: string | null = null;
  try {
    head = execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    /* not a checkout */
  }
  assert.is(m.git_commit, head);
  assert.is(typeof m.git_dirty, head ? 'boolean' : 'object');
});

test('relevantEnv: only UCX_*, PEERCACHE_* and GLIBC_TUNABLES', () => {
  assert.equal(relevantEnv({ UCX_TLS: 'rc', GLIBC_TUNABLES: 'glibc.cpu.x=1', PATH: '/bin', HOME: '/root', PEERCACHE_LOG: 'debug', MY_UCX: 'no' }), {
    GLIBC_TUNABLES: 'glibc.cpu.x=1', PEERCACHE_LOG: 'debug', UCX_TLS: 'rc',
  });
});

test('a report without the manifest is not valid', () => {
  const r = makeReport({ command: 'x', host, meta: { mode: 'latency', protocol: 'shm' }, results: [] });
  const { manifest: _m, ...without } = r;
  assert.ok(schemaErrors(without) !== null);
});

test('V8 GC flag: oversubscribed sweeps without --single-threaded-gc get a note; the executable starts node with it', () => {
  assert.is(gcFlagNote(8, 2, []), null, '4 workers per core or fewer: no note');
  assert.is(gcFlagNote(64, 2, [SINGLE_THREADED_GC]), null, 'flag given: no note');
  const note = gcFlagNote(64, 2, ['--enable-source-maps']);
  assert.ok(note && note.includes('64 workers on 2 cores') && note.includes(SINGLE_THREADED_GC), String(note));
  // The executable's first line: `env -S` passes the flag to node (V8 refuses it once running).
  const shebang = readFileSync(new URL('../../src/cli/peercache-bench.ts', import.meta.url), 'utf8').split('\n')[0];
  assert.is(shebang, `#!/usr/bin/env -S node ${SINGLE_THREADED_GC}`);
});

test.run();
