import { test } from 'uvu';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { loadNative } from '../../src/transport/native.js';
import { UcxTransport } from '../../src/transport/ucx.js';
import { TransportError } from '../../src/transport/types.js';

test('the addon loads and finds UCX', () => {
  const load = loadNative();
  assert.ok(load.ok, load.ok ? '' : load.error);
  if (!load.ok) return;
  const ucx = load.binding.ucx();
  assert.ok(ucx.available, ucx.error ?? '');
  assert.match(ucx.version ?? '', /^\d+\.\d+/);
});

test('shm READ and WRITE between two workers of one process, bytes verified', async () => {
  const a = UcxTransport.open({ protocol: 'shm' });
  const b = UcxTransport.open({ protocol: 'shm' });
  try {
    const published = a.allocate(1 << 20);
    for (let i = 0; i < published.length; i++) published.bytes[i] = (i * 7 + 3) & 0xff;
    const ep = await b.connect(a.address());
    const lanes = ep.lanes();
    assert.ok(lanes.some((l) => /^(sysv|posix)\//.test(l)), `lanes: ${lanes.join(',')}`);
    const remote = ep.attach(published.descriptor());
    assert.is(remote.length, 1 << 20);
    const dst = new Uint8Array(new SharedArrayBuffer(1 << 20));
    const local = b.register(dst);
    const ops = new Float64Array([0, 0, 0, 4096, 8192, 0, 4096, 65536]);
    await ep.read(remote, [local], ops, 2);
    for (let i = 0; i < 4096; i++) assert.is(dst[i], (i * 7 + 3) & 0xff);
    for (let i = 0; i < 65536; i++) if (dst[4096 + i] !== ((8192 + i) * 7 + 3) % 256) assert.unreachable(`byte ${i}`);
    // shm offers the inline READ (the store's fast path takes it; tcp endpoints do not have it).
    assert.type(ep.readInline, 'function');
    dst.fill(0, 0, 4096);
    ep.readInline!(remote, [local], new Float64Array([0, 0, 0, 4096]), 1);
    for (let i = 0; i < 4096; i++) if (dst[i] !== ((i * 7 + 3) & 0xff)) assert.unreachable(`inline byte ${i}`);
    dst.fill(0xab, 0, 4096);
    await ep.write(remote, [local], new Float64Array([100_000, 0, 0, 4096]), 1);
    for (let i = 0; i < 4096; i++) if (published.bytes[100_000 + i] !== 0xab) assert.unreachable(`write byte ${i}`);
    ep.close();
    local.free();
    published.free();
    assert.is(published.bytes.byteLength, 0, 'the view is detached after free');
  } finally {
    await b.close();
    await a.close();
  }
});

test('rdma on a host without an RDMA device fails with a clear error', () => {
  try {
    UcxTransport.open({ protocol: 'rdma' });
    // A host with an RDMA NIC opens it: nothing to assert there.
  } catch (err) {
    assert.instance(err, TransportError);
    const e = err as TransportError;
    assert.is(e.code, 'ERR_PROTOCOL_UNAVAILABLE');
    assert.match(e.message, /protocol 'rdma' cannot run here/);
    // The library names the option; the CLI renders the same text with its flag.
    assert.match(e.message, /use protocol shm \(same host\) or protocol tcp/);
    assert.match(e.render((o) => `--${o}`), /use --protocol shm \(same host\) or --protocol tcp/);
  }
});

test('worker threads load the addon while the main thread never does; the process exits cleanly', () => {
  const fixture = fileURLToPath(new URL('../fixtures/addon-in-workers-only.ts', import.meta.url));
  for (let i = 0; i < 3; i++) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', fixture], { encoding: 'utf8', timeout: 60_000 });
    assert.is(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
    assert.is(r.status, 0, r.stderr);
    assert.match(r.stdout, /"runs":\["ok","ok"\]/);
  }
});

test('worker threads terminated mid-read, round after round: the process exits cleanly (no abort)', () => {
  const fixture = fileURLToPath(new URL('../fixtures/addon-worker-terminate.ts', import.meta.url));
  const r = spawnSync(process.execPath, ['--import', 'tsx', fixture, '4', '3', '100'], { encoding: 'utf8', timeout: 90_000 });
  assert.is(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
  assert.is(r.status, 0, r.stderr);
  assert.not.match(r.stderr, /FATAL ERROR/);
  assert.match(r.stdout, /"rounds":3/);
});

test.run();
