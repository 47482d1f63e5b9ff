/** peercache-bench mooncake: Mooncake's official transfer_engine_bench as a row of our report. */
import { modelArgs, modelFromArgs } from '../flags.js';
import { defineCommand, type ArgsDef } from 'citty';
import { describeBinProblem, findMooncakeBin, MOONCAKE_BIN_NAME, MOONCAKE_DEFAULTS, MOONCAKE_HOWTO, MOONCAKE_OWN_DEFAULTS, runMooncake, type MooncakeBin, type MooncakeOptions } from '../../bench/mooncake.js';
import { PROTOCOLS } from '../../transport/types.js';
import { parseEnum, parsePositiveInt, UsageError } from '../parse.js';
import { runMeasureCommand } from '../run-report.js';
import { globalArgs, loggerFromArgs, str, type Args, type CommandResult } from '../shared.js';
import { blockSizeFromArgs, microRunArgs, runShapeFromArgs } from './micro.js';

/** Mooncake's flags, shared with compare. */
export const mooncakeArgs = {
  'mooncake-bin': { type: 'string', description: 'transfer_engine_bench to run: a path, or a name on PATH (install Mooncake yourself)', default: 'transfer_engine_bench', valueHint: 'path' },
  'metadata-url': { type: 'string', description: "Mooncake metadata service (http://h:p/metadata, etcd://h:p); empty: P2PHANDSHAKE, the target's segment id read from its log", default: '', valueHint: 'url' },
  'mooncake-protocol': { type: 'string', description: "Mooncake's --protocol; auto: rdma for rdma, tcp otherwise (it has no shared-memory DRAM transport)", default: 'auto', valueHint: 'auto|rdma|tcp|...' },
  'mooncake-timeout': { type: 'string', description: 'Seconds an initiator run may take beyond its duration before its process group is killed', default: String(MOONCAKE_DEFAULTS.timeoutSlackS), valueHint: 's' },
} as const satisfies ArgsDef;

/** Ctrl-C / SIGTERM while Mooncake runs: what happens to its row. */
export const MOONCAKE_INTERRUPT =
  '\ninterrupted: stopping Mooncake now (it reports nothing partial: its row is written as failed, "aborted by the user") and writing the report (Ctrl-C again to quit at once)\n';

/** True when the user named the binary (a path, or another name than the default looked up on PATH). */
export function explicitMooncakeBin(bin: string | undefined): boolean {
  const b = bin?.trim() ?? '';
  return b !== '' && (b.includes('/') || b !== MOONCAKE_BIN_NAME);
}

/**
 * The binary, checked before anything is measured: one the user named that cannot run is a usage
 * error (exit 2) that says what is wrong with the file; the default not on PATH is returned as is.
 */
export function checkMooncakeBin(bin: string | undefined): MooncakeBin {
  const found = findMooncakeBin(bin);
  if (!found.path && explicitMooncakeBin(bin)) {
    throw new UsageError(`--mooncake-bin ${bin!.trim()}: ${describeBinProblem(found)}${found.problem === 'missing' ? `; ${MOONCAKE_HOWTO}` : ''}`);
  }
  return found;
}

export function mooncakeFromArgs(args: Args): Pick<MooncakeOptions, 'bin' | 'metadataUrl' | 'mooncakeProtocol' | 'timeoutSlackS'> {
  const proto = str(args, 'mooncake-protocol').trim();
  if (!/^[a-z_]+$/i.test(proto)) throw new UsageError(`--mooncake-protocol: ${JSON.stringify(proto)} is not a protocol name (e.g. auto, rdma, tcp)`);
  const url = str(args, 'metadata-url').trim();
  if (url && !/^(P2PHANDSHAKE|(https?|etcd|redis):\/\/\S+|[^\s/]+:\d+)$/.test(url)) {
    throw new UsageError(`--metadata-url: ${JSON.stringify(url)} is not a Mooncake metadata address (http://h:p/metadata, etcd://h:p, redis://h:p)`);
  }
  return {
    bin: str(args, 'mooncake-bin').trim() || undefined,
    metadataUrl: url || undefined,
    mooncakeProtocol: proto === 'auto' ? undefined : proto,
    timeoutSlackS: parsePositiveInt('--mooncake-timeout', str(args, 'mooncake-timeout'), { max: 86_400 }),
  };
}

export default defineCommand({
  meta: { name: 'mooncake', description: "Mooncake's official transfer_engine_bench (target + initiator on this host), reported in our schema" },
  args: {
    protocol: { type: 'string', description: "Our protocol the row is matched to: rdma, shm or tcp (Mooncake runs tcp for shm and tcp: a smoke row; the row fails if Mooncake's log shows another transport than it was asked for)", default: 'rdma', valueHint: 'rdma|shm|tcp' },
    'device-name': { type: 'string', description: 'RDMA device(s) for Mooncake --device_name (default: --auto_discovery)', default: '', valueHint: 'dev' },
    'local-host': { type: 'string', description: 'Address both Mooncake sides bind and advertise (--local_server_name; MC_TCP_BIND_ADDRESS with a metadata server); IPv6 as ::1 or [::1] (sets MC_USE_IPV6=1)', default: '127.0.0.1', valueHint: 'addr' },
    'block-size': { type: 'string', description: 'Bytes per request; k/m suffixes allowed', default: String(MOONCAKE_DEFAULTS.blockSize), valueHint: 'bytes' },
    ...microRunArgs,
    threads: { type: 'string', description: `Mooncake initiator threads (1 here, matching peercache micro's one thread; transfer_engine_bench's own default is ${MOONCAKE_OWN_DEFAULTS.threads})`, default: String(MOONCAKE_DEFAULTS.threads), valueHint: 'n' },
    duration: { type: 'string', description: 'Measured seconds (Mooncake takes whole seconds: rounded, at least 1)', default: String(MOONCAKE_DEFAULTS.durationS), valueHint: 's' },
    warmup: { type: 'string', description: 'Seconds of a discarded initiator run first, against the same target (rounded up; a separate initiator process, so it warms the target side only); 0: none', default: String(MOONCAKE_DEFAULTS.warmupS), valueHint: 's' },
    ...mooncakeArgs,
    ...modelArgs,
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    const logger = loggerFromArgs(args);
    const shape = runShapeFromArgs(args);
    const options: MooncakeOptions = {
      protocol: parseEnum('--protocol', str(args, 'protocol'), PROTOCOLS),
      deviceName: str(args, 'device-name').trim() || undefined,
      localHost: str(args, 'local-host').trim() || '127.0.0.1',
      blockSize: modelFromArgs(args, 64, [['--block-size', str(args, 'block-size'), String(MOONCAKE_DEFAULTS.blockSize)]])?.pageBytes ?? blockSizeFromArgs('--block-size', str(args, 'block-size')),
      ...shape,
      ...mooncakeFromArgs(args),
    };
    checkMooncakeBin(options.bin);
    const tty = process.stderr.isTTY === true;
    return runMeasureCommand({
      name: 'mooncake',
      kind: 'mooncake',
      args,
      logger,
      interruptMessage: MOONCAKE_INTERRUPT,
      // No rows to draw progress for: Mooncake prints its own status lines.
      run: ({ command, signal }) =>
        runMooncake({
          ...options,
          command,
          signal,
          logger,
          onStatus: (line) => {
            if (tty) process.stderr.write(`${line}\n`);
          },
        }),
    });
  },
});
