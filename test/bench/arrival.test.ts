/** Open-loop arrivals: the schedule's rate over a long simulated run, and an open-loop row end to end. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ArrivalSchedule, prng } from '../../src/bench/engine/arrival.js';
import { runRow } from '../../src/bench/engine/row.js';
import { outcomeToRow } from '../../src/bench/report/outcome.js';
import { silentLogger } from '../../src/log.js';
import { mean, stdev } from '../../src/bench/report/stats.js';

test('poisson: 1M simulated arrivals at 1000/s land within 0.5% of the rate, exponential gaps (cv ~ 1)', () => {
  const s = new ArrivalSchedule(1000, 'poisson', 42);
  const n = 1_000_000;
  let prev = 0;
  const gaps: number[] = [];
  let t = 0;
  for (let i = 0; i < n; i++) {
    t = s.next();
    if (i < 200_000) gaps.push(t - prev);
    prev = t;
  }
  const rate = n / (t / 1e9);
  assert.ok(Math.abs(rate - 1000) / 1000 < 0.005, `rate ${rate}`);
  const cv = stdev(gaps)! / mean(gaps)!;
  assert.ok(Math.abs(cv - 1) < 0.02, `cv ${cv}`);
  // Memoryless: P(gap > mean) = 1/e.
  const over = gaps.filter((g) => g > 1e6).length / gaps.length;
  assert.ok(Math.abs(over - Math.exp(-1)) < 0.005, `P(gap > mean) ${over}`);
});

test('constant: evenly spaced, exactly the rate; seeded poisson repeats; bad rates throw', () => {
  const c = new ArrivalSchedule(100_000, 'constant');
  assert.is(c.next(), 10_000);
  assert.is(c.next(), 20_000);
  const a = new ArrivalSchedule(500, 'poisson', 7);
  const b = new ArrivalSchedule(500, 'poisson', 7);
  for (let i = 0; i < 100; i++) assert.is(a.next(), b.next());
  assert.throws(() => new ArrivalSchedule(0, 'constant'), /rate must be a number > 0/);
  const r = prng(1);
  for (let i = 0; i < 1000; i++) {
    const u = r();
    assert.ok(u >= 0 && u < 1);
  }
});

test('an open-loop no-op row: rate_achieved tracks rate_offered, response latency >= service latency', async () => {
  const rowOf = async (kind: 'constant' | 'poisson') =>
    outcomeToRow(
      await runRow(
        {
          op: 'noop', path: 'engine-noop', rowOp: '', threads: 1, batchSize: 1, phase: 'single', components: 1, tokensPerPage: 1, warmupS: 0.2, durationS: 1, note: 'open loop',
          arrival: { kind, rate: 2000 },
          task: {
            store: { discoveryAddr: '127.0.0.1:1', protocol: 'shm', devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 1000 },
            layout: 'mla', pageBytes: 4, tokensPerPage: 1, keyPrefix: '', workingSet: 1, publishBytes: 0, verify: false, raw: null, connectTimeoutMs: 10_000,
          },
        },
        { index: 0, rows: 1, logger: silentLogger },
      ),
    );
  for (const kind of ['constant', 'poisson'] as const) {
    const row = await rowOf(kind);
    assert.ok(row.ok, row.note);
    assert.is(row.arrival, kind);
    assert.is(row.rate_offered, 2000);
    // A no-op keeps up: within 10% (poisson: a 1 s window holds ~2000 +- 45 arrivals).
    assert.ok(Math.abs(row.rate_achieved! - 2000) / 2000 < 0.1, `rate_achieved ${row.rate_achieved}`);
    assert.ok(row.response_lat_us_p50! >= row.lat_us_p50!, `response ${row.response_lat_us_p50} vs service ${row.lat_us_p50}`);
    assert.ok(row.response_histogram !== null && row.extra?.schedule_lag_us_mean !== undefined);
  }
});

test.run();
