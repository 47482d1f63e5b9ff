/**
 * --busy-poll-us: the sidecar keeps its event loop polling after each answer (busy-poll.ts). Times are
 * not asserted (a noisy machine); what is: requests are still served, the polling is counted and
 * stops, it is off at 0, and bad values of the flag are one-line usage errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { BusyPoll } from '../../src/sidecar/busy-poll.js';
import { SidecarServer } from '../../src/sidecar/server.js';
import { SIDECAR_PROTOCOL } from '../../src/sidecar/protocol.js';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import { FrameDecoder, FrameKind, encodeFrame, type Frame } from '../../src/framing.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../helpers/ports.js';

const dir = mkdtempSync(join(tmpdir(), 'pc-busy-poll-'));
const CLI = join(process.cwd(), 'src', 'cli', 'peercache.ts');

test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Resolves on the next turn after `done()` holds: waits for an event, never for a number of ms. */
async function until(done: () => boolean): Promise<void> {
  while (!done()) await new Promise((r) => setTimeout(r, 1));
}

test('BusyPoll spins the event loop for its window after extend(), counts it, and stops', async () => {
  // A window far longer than the test: "still polling" is a fact, not a race with the clock.
  const long = new BusyPoll(60_000_000);
  const t0 = performance.now();
  long.extend();
  // While it polls, timers still fire: the loop is spinning, not blocked.
  await new Promise((r) => setTimeout(r, 1));
  assert.is(long.spunSeconds, 0, 'nothing counted while the window is open');
  long.stop();
  const counted = long.spunSeconds;
  assert.ok(counted > 0 && counted <= (performance.now() - t0) / 1000 + 0.001, `stop() counted ${counted} s`);
  await new Promise((r) => setTimeout(r, 1));
  assert.is(long.spunSeconds, counted, 'stop() ended the window at once');

  // A short window ends by itself, and never before its length.
  const short = new BusyPoll(2_000);
  short.extend();
  await until(() => short.spunSeconds > 0);
  // (the window is timed from extend()'s first clock read, the count from just after it)
  assert.ok(short.spunSeconds >= 0.0019, `counted ${short.spunSeconds} s for a 2 ms window`);

  const off = new BusyPoll(0);
  off.extend();
  await new Promise((r) => setTimeout(r, 1));
  assert.is(off.spunSeconds, 0);
});

test('BusyPoll tells its hooks until when it polls, and looks once more after that time (what lanes rely on)', async () => {
  const windows: bigint[] = [];
  const spins: bigint[] = [];
  let ended = false;
  const poll = new BusyPoll(5_000, { window: (ns) => windows.push(ns), spin: () => spins.push(process.hrtime.bigint()) });
  const before = process.hrtime.bigint();
  poll.extend();
  await until(() => (ended = poll.spunSeconds > 0));
  assert.ok(ended);
  assert.is(windows.length, 1);
  assert.ok(windows[0] >= before + 5_000_000n && windows[0] <= process.hrtime.bigint(), `window end ${windows[0] - before} ns after extend()`);
  assert.ok(spins.length >= 2, `${spins.length} spins`);
  assert.ok(spins.at(-1)! >= windows[0], 'the last look is after the advertised end');
  const n = spins.length;
  await new Promise((r) => setTimeout(r, 1));
  assert.is(spins.length, n, 'no looks after the poll ended');
});

test('a sidecar with --busy-poll-us serves requests back to back and reports the polling', async () => {
  const store = await PeerCacheStore.open({ protocol: 'tcp', discoveryAddr: `127.0.0.1:${await freePort()}`, globalSegmentBytes: 2 ** 20, slotBytes: 4096 });
  const socketPath = join(dir, 'a', 'peercache.sock');
  const server = await SidecarServer.listen({ socketPath, store, logger: createLogger({ level: 'silent' }), busyPollUs: 2_000 });
  try {
    const socket = net.connect(socketPath);
    const frames: Frame[] = [];
    const decoder = new FrameDecoder((f) => frames.push(f), { maxFrameBytes: 1 << 20, role: 'client' });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    const call = async (id: number, body: unknown): Promise<Record<string, unknown>> => {
      socket.write(encodeFrame(FrameKind.Request, id, body));
      const t0 = Date.now();
      while (!frames.length) {
        if (Date.now() - t0 > 3000) throw new Error('no answer');
        await new Promise((r) => setImmediate(r));
      }
      const f = frames.shift()!;
      assert.is(f.kind, FrameKind.Response, f.payload.toString());
      return JSON.parse(f.payload.toString()) as Record<string, unknown>;
    };
    await call(1, { op: 'hello', protocol: SIDECAR_PROTOCOL, pid: process.pid });
    for (let i = 0; i < 20; i++) assert.is((await call(2 + i, { op: 'exists', keys: [`k${i}`] })).found, '0');
    // Longer than the 2 ms window: the last window ends, so it is counted (not a timing assertion).
    await new Promise((r) => setTimeout(r, 10));
    const stats = await call(100, { op: 'stats' });
    assert.is(stats.busyPollUs, 2_000);
    assert.ok(Number(stats.busyPollSeconds) > 0, `busyPollSeconds ${stats.busyPollSeconds}`);
    socket.destroy();
  } finally {
    await server.close();
    await store.close();
  }
});

test('--busy-poll-us takes 0..10000; anything else is a one-line usage error', () => {
  for (const [value, message] of [
    ['abc', /--busy-poll-us: "abc" is not a non-negative integer/],
    ['-5', /--busy-poll-us: "-5" is not a non-negative integer/],
    ['20000', /--busy-poll-us: "20000" must be at most 10000/],
  ] as const) {
    const r = spawnSync(process.execPath, ['--import', 'tsx', CLI, 'node', '--busy-poll-us', value, '--socket', join(dir, 'x.sock'), '--discovery-addr', '127.0.0.1:1', '--slot-bytes', '8k'], { encoding: 'utf8' });
    assert.is(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

test.run();
