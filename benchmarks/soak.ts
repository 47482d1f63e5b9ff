/**
 * Soak: 64 workers doing get/set/exists on shm with --verify, round after round, while a hostile
 * client keeps sending malformed frames to the directory and a victim node is killed and restarted
 * every --kill-every seconds. Beside it, the whole time, the sidecar path (benchmarks/lib/soak-sidecar.ts):
 * two `peercache node` processes, four ranks through the Python adapter doing set/exists/get with
 * every hit's bytes checked, and hostile local clients on one node's socket (a non-reader streaming
 * malformed frames, hello-only and idle connections filling --max-connections, garbage). Reports
 * errors, wrong pages, crashes, and the RSS of the directory's host (the producer process), of the
 * workers' process and of the two nodes at the end of each round.
 *
 *   npm run build && npx tsx benchmarks/soak.ts --minutes 10 [--workers 64] [--round 30] [--kill-every 60] [--out bench-results/soak-shm.md]
 */
import { ChildProc } from '../src/bench/child-process.js';
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { built } from './lib/built.js';
import { flag, reportLog } from './lib/cli.js';
import { SIDECAR_SOAK_FLAGS, startSidecarSoak } from './lib/soak-sidecar.js';
import type * as Api from '../src/index.js';

const { runSweep } = await built<typeof Api>('index.js');
const minutes = Number(flag('--minutes', '10'));
const workers = Number(flag('--workers', '64'));
const roundS = Number(flag('--round', '30'));
const killEveryS = Number(flag('--kill-every', '60'));
const out = flag('--out', '');
const report = reportLog();

function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The producer process (the directory's host) of the running sweep: a child whose command line names producer-main. */
function producerPid(): number | null {
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== process.pid) continue;
      if (readFileSync(`/proc/${name}/cmdline`, 'utf8').includes('producer-main')) return Number(name);
    } catch {
      /* gone */
    }
  }
  return null;
}

/** Malformed frames, again and again, until stopped: garbage, oversized headers, bad versions, trickles, floods before hello. */
function hostile(addr: { host: string; port: number }): { stop(): void; sent: () => number } {
  let sent = 0;
  let stopped = false;
  const payloads = [
    Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
    Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 1, 0, 0, 0, 1]),
    Buffer.from([0, 0, 0, 8, 9, 1, 0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8]),
    Buffer.concat([Buffer.from([0, 0x10, 0, 0, 1, 1, 0, 0, 0, 1]), Buffer.alloc(65536, 0x7b)]),
    Buffer.from([0, 0, 0, 2, 1, 1, 0, 0, 0, 1, 0x7b, 0x7d]),
  ];
  const tick = (): void => {
    if (stopped) return;
    const s = net.connect(addr);
    s.on('error', () => {});
    s.on('connect', () => {
      s.write(payloads[sent++ % payloads.length]);
      setTimeout(() => s.destroy(), 200);
    });
    setTimeout(tick, 20);
  };
  tick();
  return { stop: () => (stopped = true), sent: () => sent };
}

function startVictim(addr: string): ChildProc {
  return new ChildProc({ label: 'victim', command: process.execPath, args: ['--import', 'tsx', new URL('./lib/soak-victim.ts', import.meta.url).pathname, addr, '64'], lifetime: 'stdin', keepBytes: 64 * 1024 });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

const sidecar = await startSidecarSoak(await freePort());
const deadline = Date.now() + minutes * 60_000;
const totals = { rows: 0, failedRows: 0, errors: 0, wrongPages: 0, calls: 0, malformed: 0, kills: 0 };
const rss: { round: number; op: string; producerStart: number; producerEnd: number; selfStart: number; selfEnd: number; nodeA: number; nodeB: number }[] = [];
report.log(`# Soak: ${workers} workers, shm, --verify, ${minutes} min; hostile client and a victim killed every ${killEveryS} s; the sidecar path under hostile local clients`);
report.log('');
report.log(`command: npx tsx benchmarks/soak.ts ${process.argv.slice(2).join(' ')}`);
report.log('');
report.log(`Sidecar: nodes A and B (shm, \`--global-segment 64m --slot-bytes 8k --busy-poll-us 50\`; B also \`${SIDECAR_SOAK_FLAGS.join(' ')}\`), ranks a0/b0 (socket) and a1/b1 (lanes, poll_us 100) through the Python adapter; attackers on B's socket.`);
report.log('');
report.log('| round | op | ok | calls | errors | wrong pages | malformed frames | victim kills | producer RSS start→end MiB | bench RSS start→end MiB | rank calls | rank hits own/peer | rank wrong pages | rank errors | node A / B RSS MiB |');
report.log('|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|');
const mib = (b: number) => (b / 2 ** 20).toFixed(0);
let round = 0;
let lastKill = Date.now();
while (Date.now() < deadline) {
  for (const op of ['get', 'set', 'exists'] as const) {
    if (Date.now() >= deadline) break;
    round++;
    let attacker: ReturnType<typeof hostile> | null = null;
    let victim: ChildProc | null = null;
    let victimTimer: NodeJS.Timeout | null = null;
    let producerStart = 0;
    let pid: number | null = null;
    const selfStart = rssOf(process.pid);
    const logger = {
      debug() {},
      warn() {},
      error() {},
      enabled: (level: string) => level === 'info',
      info(message: string) {
        // "starting the producer process: ... at host:port": the directory's address.
        const m = / at ([\d.]+):(\d+)$/.exec(message);
        if (m && !attacker) {
          attacker = hostile({ host: m[1], port: Number(m[2]) });
          const where = `${m[1]}:${m[2]}`;
          setTimeout(() => {
            pid = producerPid();
            producerStart = pid ? rssOf(pid) : 0;
            victim = startVictim(where);
            victimTimer = setInterval(() => {
              if (Date.now() - lastKill < killEveryS * 1000) return;
              victim?.kill('SIGKILL');
              totals.kills++;
              lastKill = Date.now();
              victim = startVictim(where);
            }, 1000);
          }, 3000);
        }
      },
    };
    let ok = false;
    let calls = 0;
    let errors = 0;
    let wrong = 0;
    let producerEnd = 0;
    const sample = setInterval(() => {
      if (pid) producerEnd = rssOf(pid) || producerEnd;
    }, 500);
    try {
      const result = await runSweep({ mode: 'throughput', op, concurrencies: [workers], protocol: 'shm', verify: true, durationS: roundS, warmupS: 2, logger: logger as never });
      const row = result.results[0];
      ok = row.ok;
      calls = row.calls;
      errors = row.errors;
      wrong = Number(/(\d+) hit pages with WRONG bytes/.exec(row.note)?.[1] ?? 0);
    } catch (err) {
      report.log(`round ${round} (${op}) failed: ${(err as Error).message}`);
    } finally {
      clearInterval(sample);
      if (victimTimer) clearInterval(victimTimer);
      (victim as ChildProc | null)?.kill('SIGKILL');
      (attacker as ReturnType<typeof hostile> | null)?.stop();
    }
    const malformed = (attacker as ReturnType<typeof hostile> | null)?.sent() ?? 0;
    totals.rows++;
    totals.failedRows += ok ? 0 : 1;
    totals.errors += errors;
    totals.wrongPages += wrong;
    totals.calls += calls;
    totals.malformed += malformed;
    const selfEnd = rssOf(process.pid);
    const nodes = sidecar.rss();
    rss.push({ round, op, producerStart, producerEnd, selfStart, selfEnd, nodeA: nodes.a, nodeB: nodes.b });
    const rk = sidecar.ranks();
    const sum = (f: (r: (typeof rk)[number]) => number) => rk.reduce((a, r) => a + f(r), 0);
    report.log(
      `| ${round} | ${op} | ${ok ? 'yes' : 'NO'} | ${calls} | ${errors} | ${wrong} | ${malformed} | ${totals.kills} | ${mib(producerStart)}→${mib(producerEnd)} | ${mib(selfStart)}→${mib(selfEnd)} | ${sum((r) => r.calls)} | ${sum((r) => r.own_hits)}/${sum((r) => r.peer_hits)} | ${sum((r) => r.wrong_pages)} | ${sum((r) => r.errors + r.bad_answers)} | ${mib(nodes.a)} / ${mib(nodes.b)} |`,
    );
  }
}
// RSS growth after warm-up: the bench process from the end of the first round of each op to the end of its last.
const growth = (op: string) => {
  const r = rss.filter((x) => x.op === op);
  return r.length >= 2 ? r[r.length - 1].selfEnd / r[0].selfEnd - 1 : null;
};
report.log('');
report.log(`totals: ${totals.rows} rows (${totals.failedRows} failed), ${totals.calls} calls, ${totals.errors} errors, ${totals.wrongPages} wrong pages, ${totals.malformed} malformed connections, ${totals.kills} victim kills; crashes: none (this process is still here)`);
for (const op of ['get', 'set', 'exists']) {
  const g = growth(op);
  report.log(`bench process RSS growth across ${op} rounds after the first: ${g === null ? 'n/a (one round)' : `${(g * 100).toFixed(1)}%`}`);
}
// The leak criterion: the first rounds grow the process while pools, workers and JIT warm up, so
// what counts is the second half of the run, from the end of its middle round to the end.
const middle = rss[Math.floor((rss.length - 1) / 2)];
const last = rss[rss.length - 1];
if (middle && last && middle !== last) {
  const g = last.selfEnd / middle.selfEnd - 1;
  report.log(`bench process RSS over the second half (end of round ${middle.round} → end of round ${last.round}): ${mib(middle.selfEnd)}→${mib(last.selfEnd)} MiB, ${(g * 100).toFixed(1)}% (target < 5%)`);
}
// The sidecar half: final counters (the ranks print theirs as they stop), attacks, crashes, node RSS.
const crashesBefore = sidecar.crashes();
await sidecar.stop();
const ranks = sidecar.ranks();
report.log('');
report.log('Sidecar ranks (final counters; every hit checked byte for byte):');
report.log('');
report.log('| rank | rounds | calls | sets ok / failed | exists all found / short | own hits / misses | peer hits / misses | wrong pages | bad answers | errors | reconnects | connect failures |');
report.log('|---|---|---|---|---|---|---|---|---|---|---|---|');
for (const r of ranks) {
  report.log(`| ${r.rank} | ${r.rounds} | ${r.calls} | ${r.set_ok} / ${r.set_failed} | ${r.exists_found} / ${r.exists_short} | ${r.own_hits} / ${r.own_misses} | ${r.peer_hits} / ${r.peer_misses} | ${r.wrong_pages} | ${r.bad_answers} | ${r.errors} | ${r.reconnects} | ${r.connect_failures} |`);
}
const rankLog = sidecar.rankLog();
if (rankLog.length) {
  report.log('');
  report.log("The ranks' first log lines:");
  report.log('');
  for (const l of rankLog) report.log(`    ${l}`);
}
const a = sidecar.attacks;
report.log('');
report.log(
  `Attackers on node B: ${a.nonReaderConnections} non-reader connections (${(a.nonReaderBytes / 2 ** 20).toFixed(0)} MiB of malformed frames offered, ${a.nonReaderClosedByNode} closed by the node), ${a.helloOnlyOpened} hello-only (${a.helloOnlyClosedByNode} closed by the node), ${a.idleOpened} idle after one request (${a.idleClosedByNode} evicted or closed), ${a.refused} refused as too many, ${a.garbage} garbage connections.`,
);
const sidecarWrong = ranks.reduce((s, r) => s + r.wrong_pages + r.bad_answers, 0);
const sidecarCrashes = crashesBefore.length;
report.log(`sidecar: ${ranks.reduce((s, r) => s + r.calls, 0)} rank calls, ${sidecarWrong} wrong pages or malformed answers, crashes: ${sidecarCrashes ? crashesBefore.join('; ') : 'none (both nodes and all four ranks ran to the end)'}`);
if (middle && last && middle !== last) {
  for (const [name, key] of [['A', 'nodeA'], ['B', 'nodeB']] as const) {
    const g = last[key] / middle[key] - 1;
    report.log(`node ${name} RSS over the second half (end of round ${middle.round} → end of round ${last.round}): ${mib(middle[key])}→${mib(last[key])} MiB, ${(g * 100).toFixed(1)}% (target < 5%)`);
  }
}
report.save(out);
process.exit(totals.wrongPages === 0 && totals.failedRows === 0 && sidecarWrong === 0 && sidecarCrashes === 0 && ranks.length === 4 ? 0 : 1);
