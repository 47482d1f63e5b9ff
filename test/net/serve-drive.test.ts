/**
 * serve / drive on two hosts (network namespaces, --protocol tcp): a slow link (tbf) is reported
 * honestly (the row's rate is the shaped rate); a silent partition mid-window gives a failed row
 * that says what happened and publishes no figure, and drive exits non-zero: never a hang.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { netnsUnavailable, makeHosts, type Host, type NsChild } from '../helpers/netns.js';
import { cliEntry } from '../helpers/cli.js';
import type { Report } from '../../src/bench/report/types.js';

const skip = netnsUnavailable();
const SMALL = ['--working-set', '64', '--page-size', '64k', '--auth-token', 'netns-test-token'];

async function report(dir: string): Promise<Report> {
  const files = (await readdir(dir)).sort();
  const json = files.find((f) => f.endsWith('.json'));
  assert.ok(json, `a JSON artifact in ${dir}: ${files.join(', ')}`);
  return JSON.parse(await readFile(join(dir, json!), 'utf8')) as Report;
}

function exited(child: NsChild, timeoutMs: number): Promise<number | null> {
  if (child.proc.exitCode !== null) return Promise.resolve(child.proc.exitCode);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`drive did not exit within ${timeoutMs} ms (a hang)\n${child.stderr().slice(-2000)}`)), timeoutMs);
    child.proc.once('exit', (code) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

async function withServe(fn: (serve: Host, drive: Host, addr: string, dir: string) => Promise<void>): Promise<void> {
  const net = makeHosts(['serve', 'drive']);
  const dir = await mkdtemp(join(tmpdir(), 'pcnet-drive-'));
  try {
    const { serve: a, drive: b } = net.hosts;
    const addr = `${a.ip}:7600`;
    const s = a.spawn(process.execPath, ['--import', 'tsx', cliEntry, 'serve', '--discovery-addr', addr, '--local-host', a.ip, '--protocol', 'tcp', ...SMALL]);
    await s.waitForLine(/^serving 64 pages/, 30_000);
    await fn(a, b, addr, dir);
  } finally {
    await net.close();
    await rm(dir, { recursive: true, force: true });
  }
}

// --connect-timeout: how long drive's workers may take to connect; a loaded host needs more than an idle one.
const drive = (b: Host, addr: string, dir: string, extra: string[], connectTimeoutS = 20): NsChild =>
  b.spawn(process.execPath, ['--import', 'tsx', cliEntry, 'drive', '--discovery-addr', addr, '--local-host', b.ip, '--protocol', 'tcp', ...SMALL, '--concurrencies', '1', '--warmup', '0.2', '--batch-size', '8', '--connect-timeout', String(connectTimeoutS), '--out-dir', dir, '--log-level', 'info', ...extra]);

async function slowLink(): Promise<void> {
  await withServe(async (a, b, addr, dir) => {
    a.shape(100);
    const d = drive(b, addr, dir, ['--duration', '2']);
    assert.is(await exited(d, 60_000), 0, d.stderr().slice(-2000));
    const row = (await report(dir)).results[0];
    const mbit = row.throughput_gbps * 8000;
    console.log(`    drive row through a 100 Mbit/s link: ${mbit.toFixed(1)} Mbit/s (${row.throughput_gbps} GB/s), ok ${row.ok}`);
    assert.ok(row.ok, row.note);
    assert.ok(mbit <= 105 && mbit >= 50, `${mbit} Mbit/s reported through a 100 Mbit/s link`);
  });
}

async function partition(): Promise<void> {
  await withServe(async (a, b, addr, dir) => {
    const d = drive(b, addr, dir, ['--duration', '6']);
    await d.waitForLine(/agrees/, 30_000);
    // Setup takes ~2 s after the agreement, then the 6 s window: 4 s after it is mid-window.
    await new Promise((r) => setTimeout(r, 4000));
    b.cut([a]);
    const t0 = Date.now();
    const code = await exited(d, 60_000);
    console.log(`    drive exited ${code} ${Date.now() - t0} ms after the cut`);
    assert.is.not(code, 0, 'drive exits non-zero');
    const r = await report(dir);
    const row = r.results[0];
    console.log(`    row: ok ${row.ok}, ${row.throughput_gbps} GB/s, note: ${row.note.slice(0, 300)}`);
    assert.is(row.ok, false);
    assert.is(row.throughput_gbps, 0, 'no figure from a broken window');
    assert.is(row.lat_us_p50, null);
    assert.match(row.note, /serve went away|missed on a static working set/);
  });
}

// Both at once, each on its own pair of hosts: their waits are deadlines, not CPU.
test('serve/drive across hosts: tbf 100 Mbit/s on serve gives a row at the link rate; a partition mid-window fails the row with the reason, no figure, non-zero exit, no hang', async () => {
  if (skip) return console.log(`    skipped: ${skip}`);
  const results = await Promise.allSettled([slowLink(), partition()]);
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${['slow link', 'partition'][i]}: ${(r.reason as Error).message}`] : []));
  if (failed.length) throw new Error(failed.join('\n---\n'));
});

test.run();
