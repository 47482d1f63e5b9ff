/**
 * resolveSweepOptions(): a sweep's defaults (SWEEP_DEFAULTS) and rules, once, pure. runSweep() runs
 * on it and the CLI's flags show its defaults, so the two cannot drift.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resolveSweepOptions, SweepConfigError, SWEEP_DEFAULTS } from '../../src/bench/sweep.js';
import { hicacheArgs } from '../../src/cli/flags.js';
import { parseSize } from '../../src/cli/parse.js';
import { flagFor } from '../../src/cli/flags.js';

test('defaults: every unset option takes SWEEP_DEFAULTS', () => {
  const r = resolveSweepOptions({ mode: 'saturation', protocol: 'shm' });
  assert.is(r.pageBytes, SWEEP_DEFAULTS.pageBytes);
  assert.is(r.o.batchSize, SWEEP_DEFAULTS.batchSize);
  assert.equal(r.o.concurrencies, [...SWEEP_DEFAULTS.concurrencies]);
  assert.is(r.durationS, SWEEP_DEFAULTS.durationS);
  assert.is(r.repeat, SWEEP_DEFAULTS.repeat);
  assert.is(resolveSweepOptions({ mode: 'suite', protocol: 'shm' }).repeat, SWEEP_DEFAULTS.suiteRepeat);
  assert.equal(resolveSweepOptions({ mode: 'throughput', protocol: 'shm' }).o.concurrencies, [SWEEP_DEFAULTS.throughputConcurrency]);
  assert.is(r.steps.length, SWEEP_DEFAULTS.concurrencies.length);
});

test("the CLI's flag defaults are SWEEP_DEFAULTS", () => {
  assert.is(parseSize('--page-size', String(hicacheArgs['page-size'].default)), SWEEP_DEFAULTS.pageBytes);
  assert.is(Number(hicacheArgs['batch-size'].default), SWEEP_DEFAULTS.batchSize);
  assert.is(Number(hicacheArgs.duration.default), SWEEP_DEFAULTS.durationS);
  assert.is(Number(hicacheArgs.warmup.default), SWEEP_DEFAULTS.warmupS);
  assert.is(Number(hicacheArgs['working-set'].default), SWEEP_DEFAULTS.workingSet);
  assert.is(parseSize('--max-bytes', String(hicacheArgs['max-bytes'].default)), SWEEP_DEFAULTS.maxBytes);
});

test('rules: one place, errors that name options as {placeholders} (flags in the CLI)', () => {
  const cases: [Parameters<typeof resolveSweepOptions>[0], RegExp][] = [
    [{ mode: 'saturation', protocol: 'shm', pageBytes: 1001 }, /--page-size must be a multiple of 4 bytes, got 1001/],
    [{ mode: 'saturation', protocol: 'shm', rateSweep: [1000, 2000] }, /--rate-sweep runs at one concurrency: give exactly one \(--concurrencies N/],
    [{ mode: 'saturation', protocol: 'shm', concurrencies: [4], rateSweep: [1000], rate: 5 }, /--rate-sweep and --rate: give one of them/],
    [{ mode: 'suite', protocol: 'shm', concurrencies: [0] }, /concurrencies must be a non-empty list/],
    [{ mode: 'suite', protocol: 'shm', pageBytes: 4 * 2 ** 30, maxBytes: 2 ** 30 }, /over --max-bytes/],
  ];
  for (const [options, message] of cases) {
    let err: unknown;
    try {
      resolveSweepOptions(options);
    } catch (e) {
      err = e;
    }
    assert.instance(err, SweepConfigError, JSON.stringify(options));
    assert.match((err as SweepConfigError).render(flagFor), message);
  }
});

test.run();
