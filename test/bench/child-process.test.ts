import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ChildProc, CHILD_LIMITS, childOutput, describeExit, runChild, signalExitCode } from '../../src/bench/child-process.js';
import { parseProducerMessage } from '../../src/bench/engine/producer.js';

const node = process.execPath;

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (err) {
    assert.match((err as Error).message, re);
    return;
  }
  assert.unreachable(`expected a rejection matching ${re}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

async function gone(pid: number, ms = 3000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return !alive(pid);
}

test('lines, JSON messages, a wait for a line and for a message, the exit', async () => {
  const script = `console.log('hello'); console.error('warn 1'); console.log(JSON.stringify({ t: 'ready', n: 7 })); setTimeout(() => process.exit(3), 100);`;
  const p = new ChildProc<{ t: string; n: number }>({ label: 'x', command: node, args: ['-e', script], lifetime: 'stdin', parseMessage: (l) => (l.startsWith('{') ? JSON.parse(l) : null) });
  const line = await p.waitForLine(/^hel(lo)$/, 5000);
  assert.is(line[1], 'lo');
  const m = await p.next((x) => x.t === 'ready', 5000, 'ready');
  assert.is(m.n, 7);
  assert.equal(await p.exited, { code: 3, signal: null });
  await p.drained();
  assert.match(p.tail(), /hello/);
  assert.match(p.tail(), /warn 1/);
  assert.not.match(p.tail(), /ready/, 'messages are not lines');
  assert.match(p.exitDescription(), /^x \(pid \d+\) exited \(code 3\)/);
  await rejects(p.waitForLine(/never/, 5000), /exited \(code 3\) early/);
  await p.stop();
});

test('a wait that times out, an abort; the tail is bounded', async () => {
  const script = `for (let i = 0; i < 1000; i++) console.error('line ' + i); setInterval(() => {}, 1000);`;
  const p = new ChildProc({ label: 'y', command: node, args: ['-e', script], lifetime: 'stdin' });
  await p.waitForLine(/line 999/, 5000);
  await rejects(p.waitForLine(/never/, 200), /no "never" line within 0\.2 s/);
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 50);
  await rejects(p.waitForLine(/never/, 5000, ac.signal), /aborted by the user/);
  assert.ok(p.tail(1000).split(' | ').length <= CHILD_LIMITS.tailLines);
  await p.stop({ via: 'stdin', graceMs: 200 });
  assert.equal(p.exitedState, { code: null, signal: 'SIGKILL' }, 'ignores stdin: killed after the grace');
});

test('supervised: the exit is mirrored (code and signal), signals reach the whole group', async () => {
  const a = new ChildProc({ label: 'a', command: node, args: ['-e', 'process.exit(5)'], lifetime: 'supervised' });
  assert.equal(await a.exited, { code: 5, signal: null });
  await a.stop();
  const b = new ChildProc({ label: 'b', command: node, args: ['-e', "setTimeout(() => process.kill(process.pid, 'SIGABRT'), 50)"], lifetime: 'supervised' });
  assert.is(describeExit(await b.exited), 'killed by SIGABRT');
  await b.stop();
  // A program with a child of its own: both in the supervisor's group.
  const c = new ChildProc({ label: 'c', command: node, args: ['-e', "const k = require('child_process').spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'inherit' }); console.log('grandchild ' + k.pid); setInterval(() => {}, 1000)"], lifetime: 'supervised' });
  const pid = Number((await c.waitForLine(/grandchild (\d+)/, 5000))[1]);
  await c.stop({ graceMs: 1000 });
  assert.ok(await gone(pid), 'the grandchild went with the group');
  assert.is(signalExitCode('SIGTERM'), 143);
  assert.is(signalExitCode('SIGINT'), 130);
});

test('supervised: when the pipe from us closes (we died, however), the supervisor kills the whole group', async () => {
  const p = new ChildProc({ label: 'd', command: node, args: ['-e', "process.on('SIGTERM', () => {}); console.log('pid ' + process.pid); setInterval(() => {}, 1000)"], lifetime: 'supervised' });
  const pid = Number((await p.waitForLine(/pid (\d+)/, 5000))[1]);
  p.proc.stdin!.destroy(); // what the kernel does to our end when we are SIGKILLed
  assert.ok(await gone(pid), 'the program is gone');
  assert.ok(await gone(p.pid), 'the supervisor is gone');
  await p.stop();
});

test("the producer's ready line is a typed message", () => {
  assert.equal(parseProducerMessage('{"t":"ready","nodeId":"n","pid":1,"published":2,"transports":"tcp","raw":null}'), { t: 'ready', nodeId: 'n', pid: 1, published: 2, transports: 'tcp', raw: null });
  assert.equal(parseProducerMessage('{"t":"error","message":"boom"}'), { t: 'error', message: 'boom' });
  assert.is(parseProducerMessage('{"ready":true}'), null);
  assert.is(parseProducerMessage('not json'), null);
});

test('runChild: a program run to its end (what the benchmarks use instead of execFileSync/spawnSync): whole output, exit, a deadline', async () => {
  const big = 3 * CHILD_LIMITS.keepBytes; // past the default kept bytes: keepBytes raised, nothing is lost
  const r = await runChild({ label: 'big', command: node, args: ['-e', `process.stdout.write('x'.repeat(${big}) + '\\nlast\\n'); console.error('to stderr'); process.exitCode = 4`], keepBytes: 4 * CHILD_LIMITS.keepBytes });
  assert.is(r.code, 4);
  assert.is(r.timedOut, false);
  assert.is(r.stdout.length, big + 6);
  assert.ok(r.stdout.endsWith('last\n'));
  assert.is(r.stderr, 'to stderr\n');
  const seen: string[] = [];
  assert.is(await childOutput({ label: 'echo', command: 'sh', args: ['-c', 'echo out; echo err >&2'], lifetime: 'supervised', onLine: (l, s) => seen.push(`${s}:${l}`) }), 'out\n');
  assert.equal(seen.sort(), ['stderr:err', 'stdout:out']);
  await rejects(childOutput({ label: 'failing', command: node, args: ['-e', 'console.error("why it failed"); process.exit(2)'] }), /^failing exited \(code 2\): why it failed$/);
  await rejects(childOutput({ label: 'missing', command: '/nonexistent/program', args: [] }), /^missing exited \(did not start\): spawn failed: .*ENOENT/);
  const slow = await runChild({ label: 'slow', command: 'sleep', args: ['30'], lifetime: 'supervised', timeoutMs: 300 });
  assert.ok(slow.timedOut);
  assert.is(slow.signal ?? `code ${slow.code}`, 'SIGTERM');
  await rejects(childOutput({ label: 'slow', command: 'sleep', args: ['30'], timeoutMs: 300 }), /^slow did not finish within 0\.3 s/);
});

test.run();
