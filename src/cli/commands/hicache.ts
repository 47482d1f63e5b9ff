/** peercache-bench latency | throughput | saturation | suite: the SGLang HiCache benchmark modes. */
import { defineCommand } from 'citty';
import { runSweep, SweepConfigError, DEFAULT_CONCURRENCIES, SWEEP_DEFAULTS, type HiCacheMode, type SweepOptions } from '../../bench/sweep.js';
import { parseDirectoryChoice } from '../../store/directory/index.js';
import { connectionFromArgs, hicacheArgs, modelFromArgs, opArg } from '../flags.js';
import { parseConcurrencies, parseEnum, parsePositiveInt, parseSeconds, parseSize, UsageError, parseNonNegativeNumber } from '../parse.js';

/** A rate in calls/s: a number > 0, optionally with k (1e3) or m (1e6). */
function parseRate(flag: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)([km]?)$/i.exec(text.trim());
  const n = m ? Number(m[1]) * (m[2].toLowerCase() === 'k' ? 1e3 : m[2].toLowerCase() === 'm' ? 1e6 : 1) : NaN;
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`${flag}: ${JSON.stringify(text)} is not a rate in calls per second (e.g. 5000, 2.5k)`);
  return n;
}

function parseHostPool(text: string): 'auto' | 'per-worker' | number {
  const t = text.trim().toLowerCase();
  if (t === 'auto' || t === 'per-worker') return t;
  return parseSize('--host-pool', text);
}

function parsePositiveNumber(flag: string, text: string): number {
  const n = parseNonNegativeNumber(flag, text);
  if (n <= 0) throw new UsageError(`${flag}: ${JSON.stringify(text)} must be more than 0`);
  return n;
}
import { runMeasureCommand } from '../run-report.js';
import { VERIFY_MODES, ARRIVAL_KINDS, MIN_INTERVAL_S } from '../../bench/engine/index.js';
import { loggerFromArgs, str, type Args, type CommandResult } from '../shared.js';

function parseDirectoryArg(text: string): string | undefined {
  const t = text.trim();
  if (!t || t === 'embedded') return undefined;
  try {
    parseDirectoryChoice(t);
  } catch (err) {
    throw new UsageError(`--directory: ${(err as Error).message}`);
  }
  return t;
}

/**
 * Turns parsed flags into SweepOptions; a value that does not parse is a UsageError naming its flag.
 * The rules between options (and the defaults) are runSweep's own (resolveSweepOptions): its
 * SweepConfigError names the flags too.
 */
export function sweepOptionsFromArgs(mode: HiCacheMode, args: Args): SweepOptions {
  const options: SweepOptions = {
    mode,
    ...connectionFromArgs(args, '127.0.0.1'),
    layout: parseEnum('--layout', str(args, 'layout'), ['mla', 'mha'] as const),
    pageBytes: parseSize('--page-size', str(args, 'page-size')),
    tokensPerPage: parsePositiveInt('--tokens-per-page', str(args, 'tokens-per-page')),
    // latency is batch 1 by definition: it has no --batch-size.
    batchSize: mode === 'latency' ? 1 : parsePositiveInt('--batch-size', str(args, 'batch-size'), { max: 65536 }),
    durationS: parseSeconds('--duration', str(args, 'duration')),
    warmupS: parseNonNegativeNumber('--warmup', str(args, 'warmup')),
    workingSet: parsePositiveInt('--working-set', str(args, 'working-set')),
    maxBytes: parseSize('--max-bytes', str(args, 'max-bytes')),
    verify: args.verify === true,
    hostPool: parseHostPool(str(args, 'host-pool')),
    rate: str(args, 'rate').trim() === '' ? undefined : parseRate('--rate', str(args, 'rate')),
    arrival: parseEnum('--arrival', str(args, 'arrival'), ARRIVAL_KINDS),
    verifyMode: parseEnum('--verify-mode', str(args, 'verify-mode'), VERIFY_MODES),
    directory: parseDirectoryArg(str(args, 'directory')),
    directoryReplica: args['directory-replica'] === true,
    repeat: str(args, 'repeat').trim() === '' ? undefined : parsePositiveInt('--repeat', str(args, 'repeat'), { max: 1000 }),
    sloP99Us: str(args, 'slo-p99').trim() === '' ? undefined : parsePositiveNumber('--slo-p99', str(args, 'slo-p99')),
    intervalS: str(args, 'interval').trim() === '' ? undefined : parseSeconds('--interval', str(args, 'interval'), { min: MIN_INTERVAL_S, max: 3600 }),
    noisyCv: parseNonNegativeNumber('--noisy-cv', str(args, 'noisy-cv'), { max: 1000 }) / 100,
  };
  const model = modelFromArgs(args, options.tokensPerPage!, [
    ['--page-size', str(args, 'page-size'), String(hicacheArgs['page-size'].default)],
    ['--layout', str(args, 'layout'), hicacheArgs.layout.default],
  ]);
  if (model) {
    options.layout = model.layout;
    options.pageBytes = model.pageBytes;
    options.model = { name: model.model, tp: model.tp };
  }
  if (mode === 'throughput') {
    options.op = parseEnum('--op', str(args, 'op'), ['get', 'set', 'exists', 'prefetch'] as const);
    options.prefixPages = parsePositiveInt('--prefix-pages', str(args, 'prefix-pages'), { max: 1 << 20 });
    options.hitRatio = parseNonNegativeNumber('--hit-ratio', str(args, 'hit-ratio'), { max: 1 });
    options.readersPerKey = parsePositiveInt('--readers-per-key', str(args, 'readers-per-key'), { max: 4096 });
    options.concurrencies = [parsePositiveInt('--concurrency', str(args, 'concurrency'), { max: 4096 })];
  } else if (mode === 'saturation') {
    options.op = parseEnum('--op', str(args, 'op'), ['get', 'set', 'exists', 'prefetch'] as const);
    options.prefixPages = parsePositiveInt('--prefix-pages', str(args, 'prefix-pages'), { max: 1 << 20 });
    options.hitRatio = parseNonNegativeNumber('--hit-ratio', str(args, 'hit-ratio'), { max: 1 });
    options.readersPerKey = parsePositiveInt('--readers-per-key', str(args, 'readers-per-key'), { max: 4096 });
    options.concurrencies = parseConcurrencies('--concurrencies', str(args, 'concurrencies'));
    const sweep = str(args, 'rate-sweep').trim();
    if (sweep) options.rateSweep = sweep.split(',').map((x) => parseRate('--rate-sweep', x));
  } else if (mode === 'suite') {
    options.concurrencies = parseConcurrencies('--concurrencies', str(args, 'concurrencies'));
  }
  return options;
}

const { 'batch-size': _batchSize, ...withoutBatchSize } = hicacheArgs;

function command(mode: HiCacheMode, description: string, extra: Record<string, { type: 'string'; description: string; default: string; valueHint: string }>) {
  return defineCommand({
    meta: { name: mode, description },
    args: { ...extra, ...(mode === 'latency' ? withoutBatchSize : hicacheArgs) },
    async run({ args }): Promise<CommandResult> {
      const logger = loggerFromArgs(args);
      const options = sweepOptionsFromArgs(mode, args);
      return runMeasureCommand({
        name: mode,
        kind: 'hicache',
        mode,
        args,
        logger,
        configError: SweepConfigError,
        run: (hooks) => runSweep({ ...options, ...hooks }),
      });
    },
  });
}

const concurrenciesArg = (dflt: string) => ({
  concurrencies: { type: 'string' as const, description: 'Concurrency sweep: a list (1,2,4,8) or a progression (1,2,4,...,64)', default: dflt, valueHint: 'list' },
});

export const latency = command('latency', 'single in-flight op tail: concurrency 1, batch 1, per-page latency of get, set and exists', {});
export const throughput = command('throughput', 'sustained throughput and tail at one concurrency', {
  ...opArg,
  concurrency: { type: 'string', description: 'Concurrent workers (each with its own endpoint)', default: String(SWEEP_DEFAULTS.throughputConcurrency), valueHint: 'n' },
});
/** What the marks of a sweep's table mean (saturation and suite --help; the Markdown's notes say the same). */
const MARKS =
  '. Marks: PEAK = the highest sustained throughput of the sweep (medians with --repeat), "PEAK (x4 ≈ x2 within noise)" when its 95% CI overlaps ' +
  'other rows\' (the run cannot tell them apart); KNEE = the last concurrency before latency grows faster than throughput; SLO-PEAK = the highest ' +
  'throughput whose p99 meets --slo-p99; NOISY = trials disagree by more than --noisy-cv. The Markdown shows each row\'s 95% CI, the plot draws them as error bars';

export const saturation = command('saturation', 'throughput/latency curve over a concurrency sweep (or, with --rate-sweep, over offered load), and the PEAK' + MARKS, {
  ...opArg,
  'rate-sweep': { type: 'string', description: 'Open loop: one row per offered rate (calls/s, e.g. 1k,2k,4k) at the one concurrency of --concurrencies', default: '', valueHint: 'list' },
  ...concurrenciesArg(DEFAULT_CONCURRENCIES.join(',')),
});
export const suite = command('suite', 'the full baseline: latency + get/set/exists saturation' + MARKS, concurrenciesArg(DEFAULT_CONCURRENCIES.join(',')));
