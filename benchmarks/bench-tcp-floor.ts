/**
 * Where a tcp get's speed goes, layer by layer, each against `iperf3` loopback in the same round
 * (issue 27 goal 3): what the kernel moves (iperf3), what bare Node sockets move (a stream of one
 * reused 4 MiB buffer; request/answer with one 4 MiB answer in flight, the shape of a get), what the
 * tcp transport's READ moves (32 x 128 KiB pages a batch, one batch in flight per connection), and
 * what the store's get moves over it (`saturation --op get --protocol tcp`). 1 and 2 streams each.
 *
 *   npm run build && npx tsx benchmarks/bench-tcp-floor.ts [--rounds 3] [--duration 2] [--out bench-results/tcp-floor.md]
 *
 * Node rows: a server process (one event loop) and the readers in this process (one event loop);
 * the sweep's workers are threads. CPU s/GB: the server process's and this process's CPU time per GB
 * moved (steadier than GB/s on a shared host). The last line is `RATIOS {json}`.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ChildProc } from '../src/bench/child-process.js';
import { args, flag, reportLog } from './lib/cli.js';
import { built } from './lib/built.js';
import { iperf3Loopback } from './lib/iperf.js';
import { median } from './lib/stats.js';

const { runSweep } = await built<typeof import('../src/bench/sweep.js')>('bench/sweep.js');
const { TcpTransport } = await built<typeof import('../src/transport/tcp/index.js')>('transport/tcp/index.js');

const rounds = Number(flag('--rounds', '3'));
const durationS = Number(flag('--duration', '2'));
const out = flag('--out', '');
const PAGE = 128 << 10;
const BATCH = 32;
const ANSWER = PAGE * BATCH; // one get batch: 4 MiB
/** The serving side's pool in the pool rows and the transport rows: far over the L3 cache, as a node's slots. */
const POOL_PAGES = 2048;
const { log, save } = reportLog();

interface Rate {
  gbps: number;
  /** CPU seconds per GB: the serving process, and this process (NaN where not measured). */
  serverCpu: number;
  clientCpu: number;
}

/** CPU seconds (user + system) process `pid` has used (Linux /proc). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** Measures `seconds` of `bytes()` growth after a warmup, with both processes' CPU. */
async function measure(serverPid: number, bytes: () => number, seconds: number): Promise<Rate> {
  await new Promise((r) => setTimeout(r, 300));
  const b0 = bytes();
  const s0 = cpuSeconds(serverPid);
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const gb = (bytes() - b0) / 1e9;
  const elapsed = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  return { gbps: gb / elapsed, serverCpu: (cpuSeconds(serverPid) - s0) / gb, clientCpu: (c.user + c.system) / 1e6 / gb };
}

/**
 * A bare Node server: `stream` writes one reused 4 MiB buffer for as long as the socket takes it;
 * `answer` writes it once for every 48-byte request. No copy in user space either way.
 */
const BARE_SERVER = `
const net = require('node:net');
const mode = process.argv[1];
const answer = Buffer.alloc(${ANSWER}, 7);
const pool = mode === 'pool' ? Buffer.alloc(${POOL_PAGES * PAGE}, 7) : null;
const server = net.createServer((c) => {
  c.setNoDelay(true);
  c.on('error', () => {});
  if (mode === 'stream') {
    const go = () => { while (c.write(answer)) {} };
    c.on('drain', go);
    go();
  } else {
    let pending = 0;
    let n = 0;
    c.on('data', (d) => {
      pending += d.length;
      for (; pending >= 48; pending -= 48, n++) {
        if (mode === 'answer') c.write(answer);
        else {
          // 'pool': 32 pages spread over a 256 MiB pool, as views in one writev (what the tcp server sends)
          c.cork();
          for (let i = 0; i < ${BATCH}; i++) { const p = ((n * ${BATCH} + i * 7) % ${POOL_PAGES}) * ${PAGE}; c.write(pool.subarray(p, p + ${PAGE})); }
          c.uncork();
        }
      }
    });
  }
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
`;

/** A Node child that prints one line when it is ready (it exits when its stdin closes); that line. */
async function startChild(label: string, argv: string[]): Promise<{ child: ChildProc<string>; line: string }> {
  const child = new ChildProc<string>({ label, command: process.execPath, args: argv, lifetime: 'stdin', parseMessage: (l) => l });
  const line = await child.next((): boolean => true, 60_000, `${label} ready`);
  return { child, line };
}

const stop = (child: ChildProc<string>): Promise<void> => child.stop({ via: 'stdin' });

async function bare(mode: 'stream' | 'answer' | 'pool', conns: number, seconds: number): Promise<Rate> {
  const { child, line } = await startChild(`bare node server (${mode})`, ['-e', BARE_SERVER, mode]);
  const port = Number(line);
  let bytes = 0;
  const sockets: net.Socket[] = [];
  try {
    for (let i = 0; i < conns; i++) {
      const buf = Buffer.allocUnsafe(ANSWER);
      const request = Buffer.alloc(48);
      let got = 0;
      const s = net.connect({
        host: '127.0.0.1',
        port,
        noDelay: true,
        // Reads land in one reused buffer; `answer` asks again as soon as a whole answer is in.
        onread: {
          buffer: () => (mode === 'stream' ? buf : buf.subarray(got % ANSWER)),
          callback: (n: number) => {
            bytes += n;
            got += n;
            if (mode !== 'stream' && got % ANSWER === 0) s.write(request);
            return true;
          },
        },
      });
      s.on('error', () => undefined);
      if (mode !== 'stream') s.write(request);
      sockets.push(s);
    }
    return await measure(child.pid, () => bytes, seconds);
  } finally {
    for (const s of sockets) s.destroy();
    await stop(child);
  }
}

/** The tcp transport alone: a publisher process, one READ batch of 32 x 128 KiB in flight per endpoint. */
async function transportRead(conns: number, seconds: number): Promise<Rate> {
  const fixture = fileURLToPath(new URL('../test/fixtures/tcp-publisher.ts', import.meta.url));
  const regionBytes = POOL_PAGES * PAGE;
  const { child, line } = await startChild('tcp publisher', ['--import', 'tsx', fixture, String(regionBytes), '1']);
  const published = JSON.parse(line) as { address: string; descriptor: string; pid: number };
  const node = await TcpTransport.open({ protocol: 'tcp', timeoutMs: 30_000 });
  let bytes = 0;
  let running = true;
  const lanes: Promise<void>[] = [];
  try {
    for (let c = 0; c < conns; c++) {
      const ep = await node.connect(Buffer.from(published.address, 'base64'));
      const remote = ep.attach(Buffer.from(published.descriptor, 'base64'));
      const local = node.register(new Uint8Array(ANSWER));
      const ops = new Float64Array(BATCH * 4);
      lanes.push(
        (async () => {
          for (let n = c; running; n += conns) {
            // Spread over the region (pages apart, as a store's slots), into one contiguous batch.
            for (let i = 0; i < BATCH; i++) ops.set([((n * BATCH + i * 7) % (regionBytes / PAGE)) * PAGE, 0, i * PAGE, PAGE], i * 4);
            await ep.read(remote, [local], ops, BATCH);
            bytes += ANSWER;
          }
        })(),
      );
    }
    return await measure(published.pid, () => bytes, seconds);
  } finally {
    running = false;
    await Promise.allSettled(lanes);
    await node.close();
    await stop(child);
  }
}

async function storeGet(seconds: number): Promise<[number, number]> {
  const report = await runSweep({ mode: 'saturation', op: 'get', protocol: 'tcp', concurrencies: [1, 2], durationS: seconds, warmupS: 0.5, pageBytes: PAGE, batchSize: BATCH, layout: 'mla' });
  const [a, b] = report.results.map((r) => (r.ok ? r.throughput_gbps : NaN));
  return [a, b];
}

const series: Record<string, Rate[]> = {};
const add = (k: string, v: Rate): void => {
  (series[k] ??= []).push(v);
};
const loads: string[] = [];
for (let r = 0; r < rounds; r++) {
  loads.push(loadavg()[0].toFixed(1));
  for (const n of [1, 2]) add(`iperf3 -P ${n}`, await iperf3Loopback(n, durationS));
  for (const n of [1, 2]) add(`node stream x${n}`, await bare('stream', n, durationS));
  for (const n of [1, 2]) add(`node 4 MiB request/answer x${n}`, await bare('answer', n, durationS));
  for (const n of [1, 2]) add(`node request/answer, 32 pages of a 256 MiB pool x${n}`, await bare('pool', n, durationS));
  for (const n of [1, 2]) add(`tcp transport READ x${n}`, await transportRead(n, durationS));
  const [g1, g2] = await storeGet(durationS);
  add('store get (tcp) x1', { gbps: g1, serverCpu: NaN, clientCpu: NaN });
  add('store get (tcp) x2', { gbps: g2, serverCpu: NaN, clientCpu: NaN });
  console.error(`round ${r + 1} (load ${loads[r]}): ${Object.entries(series).map(([k, v]) => `${k} ${v[v.length - 1].gbps.toFixed(2)}`).join(', ')}`);
}
const m = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, { gbps: median(v.map((x) => x.gbps)), serverCpu: median(v.map((x) => x.serverCpu)), clientCpu: median(v.map((x) => x.clientCpu)) }]));
const anchor = (k: string): number => m[k.includes('x2') || k.includes('-P 2') ? 'iperf3 -P 2' : 'iperf3 -P 1'].gbps;
log('# tcp get, layer by layer, against iperf3 loopback (issue 27, goal 3)');
log();
log(`- command: \`${['npx tsx benchmarks/bench-tcp-floor.ts', ...args].join(' ')}\` (after \`npm run build\`)`);
log(`- when: ${new Date().toISOString()}; 1-min load at each round: ${loads.join(', ')} (2 vCPUs, shared); node ${process.version}`);
log(`- ${durationS} s per row, medians over ${rounds} rounds; every row of a round runs back to back with its iperf3 anchor; answers of 4 MiB (32 x 128 KiB, one get batch), one in flight per connection`);
log();
log('| what | GB/s (median) | of iperf3 (same streams) | CPU s/GB server | CPU s/GB client | rounds (GB/s) |');
log('|---|---:|---:|---:|---:|---|');
const f3 = (x: number): string => (Number.isFinite(x) ? x.toFixed(3) : '–');
for (const [k, v] of Object.entries(series)) {
  log(`| ${k} | ${m[k].gbps.toFixed(2)} | ${(m[k].gbps / anchor(k)).toFixed(3)} | ${f3(m[k].serverCpu)} | ${f3(m[k].clientCpu)} | ${v.map((x) => x.gbps.toFixed(2)).join(', ')} |`);
}
log();
save(out);
const ratios = Object.fromEntries(Object.keys(series).filter((k) => !k.startsWith('iperf3')).map((k) => [k, m[k].gbps / anchor(k)]));
console.log(`RATIOS ${JSON.stringify(ratios)}`);
