/** peercache-bench micro: the bare data-plane READ and the store get path between two processes. */
import { defineCommand, type ArgsDef } from 'citty';
import { MICRO_DEFAULTS, MicroConfigError, runMicro, type MicroOptions } from '../../bench/micro.js';
import { connectionArgs, connectionFromArgs, modelArgs, modelFromArgs } from '../flags.js';
import { parseEnum, parseNonNegativeNumber, parsePositiveInt, parseSeconds, parseSize, UsageError } from '../parse.js';
import { runMeasureCommand } from '../run-report.js';
import { globalArgs, loggerFromArgs, str, type Args, type CommandResult } from '../shared.js';

/** Most workers one row may run (each is a thread with its own endpoint). */
export const MAX_THREADS = 256;

/** Flags micro, mooncake and compare share: batch, threads, window, output. */
export const microRunArgs = {
  'batch-size': { type: 'string', description: 'READs (pages) per batch call', default: String(MICRO_DEFAULTS.batchSize), valueHint: 'n' },
  threads: { type: 'string', description: 'Concurrent workers, each with its own endpoint', default: String(MICRO_DEFAULTS.threads), valueHint: 'n' },
  duration: { type: 'string', description: 'Measured seconds per row', default: String(MICRO_DEFAULTS.durationS), valueHint: 's' },
  warmup: { type: 'string', description: 'Seconds discarded before measuring', default: String(MICRO_DEFAULTS.warmupS), valueHint: 's' },
  'out-dir': { type: 'string', description: 'Where the JSON and Markdown results go', default: './peercache-bench-results', valueHint: 'dir' },
  tag: { type: 'string', description: 'Suffix for the result file names', default: '', valueHint: 'tag' },
  json: { type: 'boolean', description: 'Print the JSON report on stdout (the table and logs go to stderr)', default: false },
} as const satisfies ArgsDef;

export const maxBytesArg = {
  'max-bytes': { type: 'string', description: "Memory budget for the producer's regions and the workers' buffers; k/m/g suffixes allowed", default: '8g', valueHint: 'bytes' },
} as const satisfies ArgsDef;

/** --batch-size, --threads, --duration, --warmup. */
export function runShapeFromArgs(args: Args): { batchSize: number; threads: number; durationS: number; warmupS: number } {
  return {
    batchSize: parsePositiveInt('--batch-size', str(args, 'batch-size'), { max: 65536 }),
    threads: parsePositiveInt('--threads', str(args, 'threads'), { max: MAX_THREADS }),
    durationS: parseSeconds('--duration', str(args, 'duration')),
    warmupS: parseNonNegativeNumber('--warmup', str(args, 'warmup')),
  };
}

export function blockSizeFromArgs(flag: string, text: string): number {
  const n = parseSize(flag, text);
  if (n % 4 !== 0) throw new UsageError(`${flag}: ${n} is not a multiple of 4 bytes`);
  return n;
}

export function microOptionsFromArgs(args: Args): MicroOptions {
  return {
    ...connectionFromArgs(args, '127.0.0.1'),
    ...runShapeFromArgs(args),
    blockSize: modelFromArgs(args, 64, [['--block-size', str(args, 'block-size'), String(MICRO_DEFAULTS.blockSize)]])?.pageBytes ?? blockSizeFromArgs('--block-size', str(args, 'block-size')),
    path: parseEnum('--path', str(args, 'path'), ['transport', 'store', 'both'] as const),
    pattern: parseEnum('--pattern', str(args, 'pattern'), ['spread', 'hot'] as const),
    maxBytes: parseSize('--max-bytes', str(args, 'max-bytes')),
  };
}

export default defineCommand({
  meta: { name: 'micro', description: 'the bare data-plane READ (transport) and the store get path (store) between two processes' },
  args: {
    ...connectionArgs,
    'block-size': { type: 'string', description: 'Bytes per READ (and per page on the store path); k/m suffixes allowed', default: String(MICRO_DEFAULTS.blockSize), valueHint: 'bytes' },
    path: { type: 'string', description: 'transport: raw one-sided READ; store: batch_get_v1 through the store; both', default: MICRO_DEFAULTS.path, valueHint: 'transport|store|both' },
    pattern: {
      type: 'string',
      description: "spread: each READ of a batch reads its own block of a span (from memory, like distinct KV pages); hot: every READ reads one block into one local buffer, ucx_perftest's cache-hot pattern (transport path only)",
      default: MICRO_DEFAULTS.pattern,
      valueHint: 'spread|hot',
    },
    ...modelArgs,
    ...microRunArgs,
    ...maxBytesArg,
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    const logger = loggerFromArgs(args);
    const options = microOptionsFromArgs(args);
    return runMeasureCommand({ name: 'micro', kind: 'micro', args, logger, configError: MicroConfigError, run: (hooks) => runMicro({ ...options, ...hooks }) });
  },
});
