/** peercache-bench compare: our micro and Mooncake's transfer_engine_bench at matched block sizes. */
import { defineCommand } from 'citty';
import { COMPARE_DEFAULT_BLOCK_SIZES, isMooncakeMissing, runCompare, type CompareOptions } from '../../bench/compare.js';
import type { Report } from '../../bench/report/index.js';
import { MicroConfigError } from '../../bench/micro.js';
import { connectionArgs, connectionFromArgs, modelArgs, modelFromArgs } from '../flags.js';
import { parsePositiveInt, parseSize, parseSizeList, UsageError } from '../parse.js';
import { runMeasureCommand } from '../run-report.js';
import { globalArgs, loggerFromArgs, str, type Args, type CommandResult } from '../shared.js';
import { MAX_THREADS, maxBytesArg, microRunArgs, runShapeFromArgs } from './micro.js';
import { checkMooncakeBin, mooncakeArgs, mooncakeFromArgs } from './mooncake.js';

const KIB = 1024;

const COMPARE_INTERRUPT =
  '\ninterrupted: stopping the current row now and writing what was measured (our rows keep their partial window; a Mooncake row reports nothing partial and is written as failed; Ctrl-C again to quit at once)\n';
const sizeText = (n: number) => (n % (KIB * KIB) === 0 ? `${n / KIB / KIB}m` : n % KIB === 0 ? `${n / KIB}k` : String(n));

export function compareOptionsFromArgs(args: Args): CompareOptions {
  const model = modelFromArgs(args, 64, [['--block-sizes', str(args, 'block-sizes'), COMPARE_DEFAULT_BLOCK_SIZES.map(sizeText).join(',')]]);
  const blockSizes = model ? [model.pageBytes] : parseSizeList('--block-sizes', str(args, 'block-sizes'));
  const bad = blockSizes.find((n) => n % 4 !== 0);
  if (bad !== undefined) throw new UsageError(`--block-sizes: ${bad} is not a multiple of 4 bytes`);
  const shape = runShapeFromArgs(args);
  const mt = str(args, 'mooncake-threads').trim();
  const mooncake = args['skip-mooncake'] === true ? undefined : mooncakeFromArgs(args);
  // A binary the user named that cannot run is an error before anything is measured.
  if (mooncake) checkMooncakeBin(mooncake.bin);
  return {
    ...connectionFromArgs(args, '127.0.0.1'),
    ...shape,
    blockSizes,
    mooncakeThreads: mt === '' || mt === 'same' ? shape.threads : parsePositiveInt('--mooncake-threads', mt, { max: MAX_THREADS }),
    skipStore: args['skip-store'] === true,
    skipMooncake: args['skip-mooncake'] === true,
    mooncake,
    maxBytes: parseSize('--max-bytes', str(args, 'max-bytes')),
  };
}

/**
 * runAndReport's exit code counts every failed row; compare succeeds when what ran succeeded and
 * the only failures are Mooncake rows whose binary is not installed (the rows say how to get it).
 */
export function compareExitCode(code: number, report: Report | null): number {
  if (code !== 1 || !report) return code;
  const failed = report.results.filter((r) => !r.ok);
  const ran = report.results.filter((r) => r.ok).length;
  return ran > 0 && failed.every(isMooncakeMissing) ? 0 : code;
}

export default defineCommand({
  meta: { name: 'compare', description: "peercache micro (transport-read, store-get) vs Mooncake's transfer_engine_bench at matched block sizes, threads and batch" },
  args: {
    ...connectionArgs,
    'block-sizes': { type: 'string', description: 'Block sizes to compare, comma separated; k/m suffixes allowed', default: COMPARE_DEFAULT_BLOCK_SIZES.map(sizeText).join(','), valueHint: 'list' },
    ...microRunArgs,
    'mooncake-threads': { type: 'string', description: "Mooncake initiator threads; same: as many as --threads, so both sides run the same concurrency (transfer_engine_bench's own default is 12)", default: 'same', valueHint: 'n|same' },
    'skip-store': { type: 'boolean', description: 'Leave out the store-get rows', default: false },
    'skip-mooncake': { type: 'boolean', description: 'Leave out the Mooncake rows', default: false },
    ...mooncakeArgs,
    ...modelArgs,
    ...maxBytesArg,
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    const logger = loggerFromArgs(args);
    const options = compareOptionsFromArgs(args);
    const tty = process.stderr.isTTY === true;
    let report: Report | null = null;
    const result = await runMeasureCommand({
      name: 'compare',
      kind: 'compare',
      args,
      logger,
      configError: MicroConfigError,
      interruptMessage: COMPARE_INTERRUPT,
      run: async (hooks, progress) => {
        report = await runCompare({
          ...options,
          ...hooks,
          onStage: (s) => {
            progress.clear();
            if (tty) process.stderr.write(`[run ${s.index + 1}/${s.rows}] ${s.system} ${s.path}  block=${sizeText(s.blockSize)}\n`);
          },
          onNotice: (line) => {
            progress.clear();
            process.stderr.write(`peercache-bench compare: ${line}\n`);
          },
          onStatus: (line) => {
            if (tty) process.stderr.write(`  ${line}\n`);
          },
        });
        return report;
      },
    });
    return { exitCode: compareExitCode(result.exitCode, report) };
  },
});
