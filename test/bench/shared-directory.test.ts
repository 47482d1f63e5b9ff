/**
 * Two benchmark runs at once against one Redis directory (a fleet's): each run's producer and pages
 * carry the run's own names, so neither is refused ("nodeId … already in use") nor reads the other's
 * pages (--verify checks every page against this run's pattern).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { runSweep } from '../../src/bench/sweep.js';
import { startRedis, type RedisServer } from '../helpers/redis.js';

let redis: RedisServer;

test.before(async () => {
  redis = await startRedis();
});

test.after(async () => {
  await redis?.stop();
});

test('two runs sharing a Redis directory both complete, each reading its own verified pages', async () => {
  const run = () =>
    runSweep({ protocol: 'shm', directory: redis.url, mode: 'latency', op: 'get', concurrencies: [1], pageBytes: 16384, workingSet: 64, durationS: 0.8, warmupS: 0.3, verify: true, verifyMode: 'full' });
  const reports = await Promise.all([run(), run()]);
  for (const report of reports) {
    for (const r of report.results) {
      assert.ok(r.ok && r.calls > 0, `${r.op}: ${r.note}`);
      if (r.op === 'get') assert.ok(r.hit_rate === 1 && (r.pages_verified ?? 0) > 0 && r.wrong_pages === 0, `get: hit rate ${r.hit_rate}, verified ${r.pages_verified}, wrong ${r.wrong_pages}`);
    }
  }
});

test.run();
