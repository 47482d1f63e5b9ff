/**
 * The engine must never be the bottleneck: a row of the real engine (piscina worker,
 * shared start/stop flag, SharedArrayBuffer histogram) with a no-op operation, and the cost of one
 * histogram record next to hdr-histogram-js's recordValue, measured side by side in one run.
 *
 *   npx tsx benchmarks/bench-engine.ts [--seconds 3] [--out bench-results/engine.md]
 */
import { cpus } from 'node:os';
import hdr from 'hdr-histogram-js';
import { runRow } from '../src/bench/engine/row.js';
import { outcomeToRow } from '../src/bench/report/outcome.js';
import { SharedHistogram } from '../src/bench/histogram.js';
import { silentLogger } from '../src/log.js';
import { args, flag, reportLog } from './lib/cli.js';
import { median } from './lib/stats.js';

const seconds = Number(flag('--seconds', '3'));
const out = flag('--out', '');
const { log, save } = reportLog();

async function noopRow(threads: number) {
  return outcomeToRow(await runRow(
    {
      op: 'noop',
      path: 'engine-noop',
      rowOp: '',
      threads,
      batchSize: 1,
      phase: 'single',
      components: 1,
      tokensPerPage: 1,
      warmupS: 0.5,
      durationS: seconds,
      note: 'no-op operation',
      task: {
        store: { discoveryAddr: '127.0.0.1:1', protocol: 'shm', devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 1000 },
        layout: 'mla',
        pageBytes: 4,
        tokensPerPage: 1,
        keyPrefix: '',
        workingSet: 1,
        publishBytes: 0,
        verify: false,
        raw: null,
        connectTimeoutMs: 10_000,
      },
    },
    { index: 0, rows: 1, logger: silentLogger },
  ));
}

/** CPU ns per record (CPU time, not wall: this machine's other load must not count). */
function recordCost(record: (v: number) => void, n = 10_000_000): number {
  for (let i = 0; i < 1_000_000; i++) record(1000 + (i & 0xffff));
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) record(1000 + ((i * 2654435761) & 0xfffff));
  const c = process.cpuUsage(c0);
  return ((c.user + c.system) * 1000) / n;
}

const ours = SharedHistogram.create();
const js = hdr.build({ bitBucketSize: 64, numberOfSignificantValueDigits: 3, highestTrackableValue: 3.6e12, autoResize: false });
const oursNs = median([0, 1, 2].map(() => recordCost((v) => ours.record(v))));
const jsNs = median([0, 1, 2].map(() => recordCost((v) => js.recordValue(v))));
const one = await noopRow(1);
const two = await noopRow(2);
log('# Engine overhead: a no-op operation through the real engine');
log('');
log(`- date: ${new Date().toISOString()}; host: ${cpus()[0]?.model} x ${cpus().length}; node ${process.version}`);
log(`- command: \`npx tsx benchmarks/bench-engine.ts ${args.join(' ')}\``);
log('');
log('| measure | value | target |');
log('|---|---|---|');
log(`| no-op calls/s, 1 worker (timed, recorded in the shared histogram) | ${(one.ops_per_s / 1e6).toFixed(2)} M | >= 2 M ${one.ops_per_s >= 2e6 ? 'PASS' : 'FAIL'} |`);
log(`| no-op calls/s, 2 workers | ${(two.ops_per_s / 1e6).toFixed(2)} M | |`);
log(`| SharedHistogram.record (CPU time) | ${oursNs.toFixed(1)} ns | <= 25 ns ${oursNs <= 25 ? 'PASS' : 'FAIL'} |`);
log(`| hdr-histogram-js recordValue (JS, 64-bit buckets, CPU time), same run | ${jsNs.toFixed(1)} ns | ratio ${(jsNs / oursNs).toFixed(1)}x |`);
log('');
log(`One no-op call's p50 through the engine: ${one.lat_us_p50} µs (the await of an async call plus two clock reads).`);
save(out);
