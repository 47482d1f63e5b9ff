/**
 * The open-loop scheduler holds its rate: one worker, a no-op call, 100k calls/s offered through
 * the real engine (piscina worker, shared control block and histograms), constant and poisson,
 * in one run. Schedule error = |rate_achieved - rate_offered| / rate_offered (target < 1%); also
 * the mean lag of actual behind intended starts and the response p99 (queueing the schedule saw).
 *
 *   npx tsx benchmarks/bench-scheduler.ts [--rate 100000] [--seconds 3] [--out bench-results/scheduler.md]
 */
import { cpus, loadavg } from 'node:os';
import { runRow } from '../src/bench/engine/row.js';
import { outcomeToRow } from '../src/bench/report/outcome.js';
import { silentLogger } from '../src/log.js';
import { args, flag, reportLog } from './lib/cli.js';

const rate = Number(flag('--rate', '100000'));
const seconds = Number(flag('--seconds', '3'));
const out = flag('--out', '');
const { log, save } = reportLog();
const load = loadavg()[0].toFixed(2);

async function row(kind: 'constant' | 'poisson') {
  return outcomeToRow(
    await runRow(
      {
        op: 'noop', path: 'engine-noop', rowOp: '', threads: 1, batchSize: 1, phase: 'single', components: 1, tokensPerPage: 1, warmupS: 0.5, durationS: seconds, note: kind,
        arrival: { kind, rate },
        task: {
          store: { discoveryAddr: '127.0.0.1:1', protocol: 'shm', devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 1000 },
          layout: 'mla', pageBytes: 4, tokensPerPage: 1, keyPrefix: '', workingSet: 1, publishBytes: 0, verify: false, raw: null, connectTimeoutMs: 10_000,
        },
      },
      { index: 0, rows: 1, logger: silentLogger },
    ),
  );
}

const rows = [await row('constant'), await row('poisson')];
log('# Open-loop scheduler: a no-op at 100k calls/s on one worker');
log('');
log(`- date: ${new Date().toISOString()}; host: ${cpus()[0]?.model} x ${cpus().length}; node ${process.version}; load average before: ${load}`);
log(`- command: \`npx tsx benchmarks/bench-scheduler.ts ${args.join(' ')}\``);
log('');
log('| arrival | offered calls/s | achieved calls/s | schedule error | target | mean lag behind intended start | service p50 / p99 µs | response p50 / p99 µs |');
log('|---|---:|---:|---:|---|---:|---|---|');
for (const r of rows) {
  const err = Math.abs(r.rate_achieved! - r.rate_offered!) / r.rate_offered!;
  log(`| ${r.arrival} | ${r.rate_offered} | ${r.rate_achieved} | ${(err * 100).toFixed(2)}% | < 1% ${err < 0.01 ? 'PASS' : 'FAIL'} | ${r.extra?.schedule_lag_us_mean} µs | ${r.lat_us_p50} / ${r.lat_us_p99} | ${r.response_lat_us_p50} / ${r.response_lat_us_p99} |`);
}
save(out);
