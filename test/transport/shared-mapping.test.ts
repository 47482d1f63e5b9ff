/**
 * mapShared's SIGBUS guard (native/shared_mapping.cc): the process that owns a shared file may shrink
 * it under the sidecar's mapping. Touching a page past the new end must neither kill the process nor
 * go unnoticed. Each case runs in a child process, so a guard that fails is a failed test, not a
 * dead test runner.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

// mapShared maps shared memory only: the files live in /dev/shm (removed after).
const dir = mkdtempSync('/dev/shm/pc-shared-mapping-');
test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` in a child with `native` (the addon), `file` (64 KiB of 7s) and truncate() in scope. */
function child(body: string): { status: number | null; signal: NodeJS.Signals | null; out: string } {
  const file = join(dir, `f-${Math.random().toString(36).slice(2)}`);
  writeFileSync(file, Buffer.alloc(65536, 7));
  const script = `
    import { truncateSync } from 'node:fs';
    import { requireNative } from ${JSON.stringify(join(process.cwd(), 'src/transport/native.ts'))};
    const native = requireNative();
    const file = ${JSON.stringify(file)};
    const truncate = (n) => truncateSync(file, n);
    ${body}
  `;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  return { status: r.status, signal: r.signal, out: `${r.stdout}${r.stderr}` };
}

test('a page read past the end of a shrunk file reads zeros and marks the mapping, instead of SIGBUS', () => {
  const r = child(`
    const buf = native.mapShared(file, 65536);
    const view = new Uint8Array(buf);
    if (view[40000] !== 7 || native.sharedMappingShrunk(buf, true)) throw new Error('not mapped as written');
    truncate(4096);
    if (!native.sharedMappingShrunk(buf, true)) throw new Error('the file check missed the shrink');
    if (native.sharedMappingShrunk(buf, false)) throw new Error('marked before any page was touched');
    if (view[100] !== 7) throw new Error('the page still in the file changed');
    const past = view[40000];
    if (!native.sharedMappingShrunk(buf, false)) throw new Error('the touched page was not marked');
    console.log('alive', past);
  `);
  assert.is(r.signal, null, r.out);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /alive 0/);
});

test('a write (what a READ into the pool does) and a copy out of a shrunk file survive too', () => {
  const r = child(`
    const buf = native.mapShared(file, 65536);
    const view = new Uint8Array(buf);
    truncate(0);
    view.fill(9, 8192);                        // as UCX's memcpy into the pool
    const copy = new Uint8Array(65536);
    copy.set(view);                            // as a publish copying out of the pool
    if (!native.sharedMappingShrunk(buf, false)) throw new Error('not marked');
    console.log('alive', copy[0], copy[9000]);
  `);
  assert.is(r.signal, null, r.out);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /alive 0 9/);
});

test('a SIGBUS outside the guarded mappings still takes the default action', () => {
  const r = child(`
    native.mapShared(file, 65536);             // installs the guard
    process.kill(process.pid, 'SIGBUS');
    setTimeout(() => console.log('survived'), 2000);
  `);
  assert.is(r.signal, 'SIGBUS', r.out);
  assert.not.match(r.out, /survived/);
});

test('a file over 4 GiB comes as overlapping windows of one mapping (made when needed), which UCX registers whole', () => {
  // Node 20 cannot make one external buffer over 4 GiB: this used to end in a double free (abort).
  const r = child(`
    truncate(5 * 2 ** 30 + 4096);               // sparse: nothing is written but two bytes
    const m = native.mapShared(file, 5 * 2 ** 30 + 4096);
    if (!Array.isArray(m) || m.length !== 1) throw new Error('not [its first window]');
    const stride = native.sharedWindowStride;
    for (let i = 1; i <= 5; i++) m.push(native.sharedMappingWindow(m[0], i));   // made when needed
    let past = '';
    try { native.sharedMappingWindow(m[0], 6); } catch (e) { past = e.message; }
    new Uint8Array(m[0])[stride + 5] = 42;       // window 0 and window 1 overlap
    const ctx = new native.Context({ protocol: 'shm' });
    const region = ctx.register(new Uint8Array(m[0]), 5 * 2 ** 30 + 4096);
    let refused = '';
    try { ctx.register(new Uint8Array(16), 32); } catch (e) { refused = e.message; }
    const published = ctx.allocate(2 ** 32 + 4096);  // a published region over 4 GiB: windows too
    new Uint8Array(published.windows[2])[5] = 7;
    const seen = new Uint8Array(published.windows[1])[stride + 5];
    published.free();
    console.log('windows', m.length, m.map((b) => b.byteLength / 2 ** 30).join(','), 'alias', new Uint8Array(m[1])[5], 'registered', region.length);
    console.log('refused:', refused);
    console.log('past the end:', past);
    console.log('published:', published.windows.length, 'windows, alias', seen, 'detached after free', published.windows.every((w) => w.byteLength === 0));
  `);
  assert.is(r.signal, null, r.out);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /windows 6 2,2,2,2,1\.0000038146972656,0\.000003814697265625 alias 42 registered 5368713216/);
  assert.match(r.out, /past the end: sharedMappingWindow: no window 6 in a 5368713216-byte mapping/);
  assert.match(r.out, /refused: register\(view, length\): past its view, only a mapShared mapping can be registered/);
  assert.match(r.out, /published: 4 windows, alias 7 detached after free true/);
});

test('sharedMappingShrunk refuses a buffer that is not a mapping, with a one-line error', () => {
  const r = child(`
    try { native.sharedMappingShrunk(new ArrayBuffer(8), true); } catch (e) { console.log('refused:', e.message); }
  `);
  assert.is(r.status, 0, r.out);
  assert.match(r.out, /refused: sharedMappingShrunk: the buffer is not a mapShared mapping/);
});

test.run();
