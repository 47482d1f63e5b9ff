import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runCli } from '../helpers/cli.js';

test('doctor reports the addon, UCX and every protocol; rdma fails here with the reason', async () => {
  const r = await runCli(['doctor']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stdout, /addon\s+loaded/);
  assert.match(r.stdout, /UCX\s+\d+\.\d+/);
  assert.match(r.stdout, /ok\s+shm\s+a one-sided READ ran over (sysv|posix)\//);
  assert.match(r.stdout, /(ok|FAIL)\s+rdma/);
  assert.match(r.stdout, /tcp/);
});

test('doctor --json is machine-readable', async () => {
  const r = await runCli(['doctor', '--json']);
  assert.is(r.code, 0, r.stderr);
  const probe = JSON.parse(r.stdout) as { protocols: { protocol: string; ok: boolean; detail: string }[]; ucx: { found: boolean }; rdmaDevices: unknown[] };
  assert.ok(probe.ucx.found);
  const byName = Object.fromEntries(probe.protocols.map((p) => [p.protocol, p]));
  assert.ok(byName.shm.ok, byName.shm.detail);
  if (probe.rdmaDevices.length === 0) {
    assert.not.ok(byName.rdma.ok);
    assert.match(byName.rdma.detail, /protocol 'rdma' cannot run here/);
  }
});

test('bad usage: one line, exit 2, no stack trace', async () => {
  for (const args of [['doctor', '--bogus'], ['doctor', '--log-level', 'loud'], ['nosuchcommand']]) {
    const r = await runCli(args);
    assert.is(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(r.stderr.trim().split('\n').length <= 2, r.stderr);
  }
});

test('--help explains the options with their defaults', async () => {
  const r = await runCli(['doctor', '--help']);
  assert.is(r.code, 0);
  assert.match(r.stdout, /--log-level <level>.*\(default: warning\)/);
  assert.match(r.stdout, /\n  --json +Print the findings as JSON on stdout\n/);
  // No command is a usage error: exit 2 with the usage on stderr; --help is exit 0 on stdout.
  const root = await runCli([]);
  assert.is(root.code, 2);
  assert.match(root.stderr, /COMMANDS/);
  const help = await runCli(['--help']);
  assert.is(help.code, 0);
  assert.match(help.stdout, /COMMANDS/);
  assert.match(help.stdout, /\n  report +render, diff/);
});

test.run();
