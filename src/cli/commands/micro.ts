/** peercache-bench micro: the bare data-plane READ and the store get path between two processes. */
import { defineCommand, type ArgsDef } from 'citty';
import { MICRO_DEFAULTS, MicroConfigError, runMicro, type MicroConnection, type MicroOptions } from '../../bench/micro.js';
import { PROTOCOLS, TransportError } from '../../transport/types.js';
import { connectionArgs } from '../hicache-args.js';
import { parseEnum, parseNameList, parseNonNegativeNumber, parsePositiveInt, parseSeconds, parseSize, parseTag, UsageError } from '../parse.js';
import { createProgress } from '../progress.js';
import { runAndReport } from '../run-report.js';
import { globalArgs, loggerFromArgs, type CommandResult } from '../shared.js';

export type Args = Record<string, unknown>;
export const str = (args: Args, name: string): string => String(args[name] ?? '');

/** Most workers one row may run (each is a thread with its own endpoint). */
export const MAX_THREADS = 256;

/** Flags micro, mooncake and compare share: batch, threads, window, output. */
export const microRunArgs = {
  'batch-size': { type: 'string', description: 'READs (pages) per batch call', default: String(MICRO_DEFAULTS.batchSize), valueHint: 'n' },
  threads: { type: 'string', description: 'Concurrent workers, each with its own endpoint (really run, unlike the original)', default: String(MICRO_DEFAULTS.threads), valueHint: 'n' },
  duration: { type: 'string', description: 'Measured seconds per row', default: String(MICRO_DEFAULTS.durationS), valueHint: 's' },
  warmup: { type: 'string', description: 'Seconds discarded before measuring', default: String(MICRO_DEFAULTS.warmupS), valueHint: 's' },
  'out-dir': { type: 'string', description: 'Where the JSON and Markdown results go', default: './peercache-bench-results', valueHint: 'dir' },
  tag: { type: 'string', description: 'Suffix for the result file names', default: '', valueHint: 'tag' },
  json: { type: 'boolean', description: 'Print the JSON report on stdout (the table and logs go to stderr)', default: false },
} as const satisfies ArgsDef;

export const maxBytesArg = {
  'max-bytes': { type: 'string', description: "Memory budget for the producer's regions and the workers' buffers; k/m/g suffixes allowed", default: '8g', valueHint: 'bytes' },
} as const satisfies ArgsDef;

/** --protocol, --device-name, --devices, --ib-port, --gid-index, --local-host. */
export function connectionFromArgs(args: Args): MicroConnection {
  const devicesText = str(args, 'devices').trim();
  const gid = str(args, 'gid-index').trim();
  return {
    protocol: parseEnum('--protocol', str(args, 'protocol'), PROTOCOLS),
    deviceName: str(args, 'device-name').trim() || undefined,
    devices: devicesText ? parseNameList('--devices', devicesText) : undefined,
    ibPort: parsePositiveInt('--ib-port', str(args, 'ib-port'), { max: 255 }),
    gidIndex: gid === '' || gid === 'auto' ? undefined : parsePositiveInt('--gid-index', gid, { min: 0, max: 255 }),
    localHost: str(args, 'local-host').trim() || '127.0.0.1',
  };
}

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

export function tagFromArgs(args: Args): string | undefined {
  return str(args, 'tag').trim() ? parseTag('--tag', str(args, 'tag')) : undefined;
}

/** Turns config and transport errors into what the program reports (exit 2 / exit 1, one line). */
export function mapRunError(err: unknown): unknown {
  if (err instanceof MicroConfigError) return new UsageError(err.message);
  if (err instanceof TransportError && err.code === 'ERR_PROTOCOL_UNAVAILABLE') return Object.assign(new Error(err.message), { code: err.code });
  return err;
}

export function microOptionsFromArgs(args: Args): MicroOptions {
  return {
    ...connectionFromArgs(args),
    ...runShapeFromArgs(args),
    blockSize: blockSizeFromArgs('--block-size', str(args, 'block-size')),
    path: parseEnum('--path', str(args, 'path'), ['transport', 'store', 'both'] as const),
    maxBytes: parseSize('--max-bytes', str(args, 'max-bytes')),
  };
}

export default defineCommand({
  meta: { name: 'micro', description: 'the bare data-plane READ (transport) and the store get path (store) between two processes' },
  args: {
    ...connectionArgs,
    'block-size': { type: 'string', description: 'Bytes per READ (and per page on the store path); k/m suffixes allowed', default: String(MICRO_DEFAULTS.blockSize), valueHint: 'bytes' },
    path: { type: 'string', description: 'transport: raw one-sided READ; store: batch_get_v1 through the store; both', default: MICRO_DEFAULTS.path, valueHint: 'transport|store|both' },
    ...microRunArgs,
    ...maxBytesArg,
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    const logger = loggerFromArgs(args);
    const options = microOptionsFromArgs(args);
    const tag = tagFromArgs(args);
    const progress = createProgress();
    try {
      return await runAndReport({
        kind: 'micro',
        outDir: str(args, 'out-dir'),
        tag,
        json: args.json === true,
        logger,
        run: (signal) =>
          runMicro({
            ...options,
            command: ['peercache-bench', 'micro', ...process.argv.slice(3)].join(' '),
            signal,
            logger,
            logLevel: str(args, 'log-level') as MicroOptions['logLevel'],
            onProgress: (p) => progress.update(p),
            onRow: () => progress.clear(),
          }),
      });
    } catch (err) {
      progress.clear();
      throw mapRunError(err);
    }
  },
});
