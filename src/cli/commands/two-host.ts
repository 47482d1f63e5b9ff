/**
 * peercache-bench serve | drive: the two-host run. serve publishes a working set and waits;
 * drive sweeps get/exists against it from another host and writes
 * hicache-dist-<op>-<protocol>[-<tag>]-<ts>.{json,md}.
 */
import { defineCommand, type ArgsDef } from 'citty';
import { runDrive, DEFAULT_DRIVE_CONCURRENCIES, type DriveOptions, TwoHostConfigError, type TwoHostCommonOptions, runServe } from '../../bench/two-host/index.js';
import { signalExitCode } from '../../bench/child-process.js';
import { allocationProgress } from '../progress.js';
import { connectionArgs, connectionFromArgs, runArgs, modelArgs, modelFromArgs } from '../flags.js';
import { parseConcurrencies, parseEnum, parsePositiveInt, parseSeconds, parseSize, parseNonNegativeNumber, UsageError } from '../parse.js';
import { runMeasureCommand, toProgramError, withInterrupts } from '../run-report.js';
import { globalArgs, loggerFromArgs, str, type Args, type CommandResult } from '../shared.js';

const commonArgs = {
  'discovery-addr': { type: 'string', description: 'host:port of the directory; serve hosts it (required; the same value on both hosts)', default: '', valueHint: 'host:port' },
  ...connectionArgs,
  'local-host': {
    type: 'string',
    description: 'Address this node advertises (default: 127.0.0.1 for a loopback --discovery-addr, else the address that routes to it; serve refuses loopback for other hosts)',
    default: '',
    valueHint: 'addr',
  },
  layout: { type: 'string', description: 'Page layout: mla (1 object per page) or mha (k and v objects); the same on both hosts', default: 'mla', valueHint: 'mla|mha' },
  'page-size': { type: 'string', description: 'Bytes per component object (k or v); k/m suffixes; the same on both hosts', default: '131072', valueHint: 'bytes' },
  'tokens-per-page': { type: 'string', description: 'Tokens per page (tokens/s = pages/s x this)', default: '64', valueHint: 'n' },
  'working-set': { type: 'string', description: 'Distinct pages serve publishes and drive reads; the same on both hosts', default: '4096', valueHint: 'pages' },
  'node-id': { type: 'string', description: 'This node\'s id (serve: pcbench-serve; drive: pcbench-drive-<host>-<pid>, child i: <id>-<i>)', default: '', valueHint: 'id' },
  'connect-timeout': { type: 'string', description: 'Deadline of every wait: the directory, the other side, the working set, workers, driver processes', default: '60', valueHint: 's' },
  'auth-token': {
    type: 'string',
    description: 'Shared secret of the directory (serve sets it; drive must pass the same; default: $PEERCACHE_AUTH_TOKEN). Required when the directory is not on loopback, unless --insecure',
    default: '',
    valueHint: 'token',
  },
  insecure: { type: 'boolean', description: 'Serve the directory on a non-loopback address without --auth-token (trusted networks only; logged as a warning)', default: false },
  ...modelArgs,
} as const satisfies ArgsDef;

function commonFromArgs(args: Args): TwoHostCommonOptions {
  const addr = str(args, 'discovery-addr').trim();
  if (!addr) throw new UsageError('--discovery-addr is required: host:port of the directory serve hosts (e.g. --discovery-addr 10.0.0.5:7600)');
  const tokensPerPage = parsePositiveInt('--tokens-per-page', str(args, 'tokens-per-page'));
  const model = modelFromArgs(args, tokensPerPage, [
    ['--page-size', str(args, 'page-size'), commonArgs['page-size'].default],
    ['--layout', str(args, 'layout'), commonArgs.layout.default],
  ]);
  const pageBytes = model?.pageBytes ?? parseSize('--page-size', str(args, 'page-size'));
  if (pageBytes % 4 !== 0) throw new UsageError(`--page-size: ${pageBytes} is not a multiple of 4 bytes`);
  return {
    discoveryAddr: addr,
    // Empty --local-host: detected (see bench/two-host/net.ts).
    ...connectionFromArgs(args),
    layout: model?.layout ?? parseEnum('--layout', str(args, 'layout'), ['mla', 'mha'] as const),
    pageBytes,
    tokensPerPage,
    workingSet: parsePositiveInt('--working-set', str(args, 'working-set')),
    nodeId: str(args, 'node-id').trim() || undefined,
    connectTimeoutMs: parseSeconds('--connect-timeout', str(args, 'connect-timeout')) * 1000,
    authToken: str(args, 'auth-token') || process.env.PEERCACHE_AUTH_TOKEN || undefined,
    insecure: args.insecure === true,
  };
}

const DROPPED =
  'Not offered: --max-channels (each worker has its own endpoint; UCX picks the lanes), --dir-cache-ttl (the location cache is always on and safe: ' +
  'every READ is validated against the slot generation, so a stale location is a miss, never wrong bytes), --gpu.';

export const serve = defineCommand({
  meta: {
    name: 'serve',
    description:
      'two hosts, producer side: host the directory at --discovery-addr, publish --working-set pages and wait for drivers until Ctrl-C/SIGTERM. ' +
      'Entries live as long as this process (no re-publish needed). Refuses to advertise a loopback address to other hosts. ' +
      DROPPED,
  },
  args: {
    ...commonArgs,
    readers: { type: 'string', description: 'Driver processes expected (drive --processes N); serve reports when they have joined', default: '1', valueHint: 'n' },
    'global-segment': {
      type: 'string',
      description: 'Bytes of the published pool (as peercache node --global-segment; --global-segment-size is the same flag); 0 = sized to the working set; k/m/g suffixes',
      default: '0',
      valueHint: 'bytes',
      alias: ['global-segment-size'],
    },
    'metrics-port': { type: 'string', description: 'Serve Prometheus metrics at http://<metrics-host>:<port>/metrics (pages published/read/evicted, bytes, hit ratio, pool occupancy, directory latency, errors); off when empty', default: '', valueHint: 'port' },
    'metrics-host': { type: 'string', description: 'Address the metrics endpoint binds (0.0.0.0 for a Prometheus on another host)', default: '127.0.0.1', valueHint: 'addr' },
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    const logger = loggerFromArgs(args);
    const common = commonFromArgs(args);
    const segText = str(args, 'global-segment').trim();
    const globalSegmentBytes = segText === '0' ? 0 : parseSize('--global-segment', segText);
    const readers = parsePositiveInt('--readers', str(args, 'readers'), { max: 4096 });
    const metricsText = str(args, 'metrics-port').trim();
    const metricsPort = metricsText === '' ? undefined : metricsText === '0' ? 0 : parsePositiveInt('--metrics-port', metricsText, { max: 65535 });
    const metricsHost = str(args, 'metrics-host').trim() || '127.0.0.1';
    let interruptedBy: () => NodeJS.Signals | null = () => null;
    try {
      const summary = await withInterrupts('\nstopping: leaving the cluster (drivers still running will report that serve went away)\n', (signal, by) => {
        interruptedBy = by;
        return runServe({ ...common, readers, globalSegmentBytes, metricsPort, metricsHost, signal, logger, onAllocateProgress: (p) => process.stderr.write(`${allocationProgress(p)}\n`) });
      });
      process.stdout.write(`serve stopped: node '${summary.nodeId}', ${summary.pages} objects published, ${summary.driversSeen} driver node(s) seen\n`);
      return { exitCode: 0 };
    } catch (err) {
      const by = interruptedBy();
      if (by) {
        process.stderr.write(`peercache-bench serve: stopped during start-up (${by}): ${(err as Error).message}\n`);
        return { exitCode: signalExitCode(by) };
      }
      throw toProgramError(err, TwoHostConfigError);
    }
  },
});

export const drive = defineCommand({
  meta: {
    name: 'drive',
    description:
      'two hosts, consumer side: join the serve node at --discovery-addr, check that both sides agree (layout, page size, working set, protocol, rails), ' +
      'and sweep get or exists over --concurrencies (per process). --processes N runs N driver processes on one common measurement window ' +
      'and merges their histograms (threads = N x concurrency). Writes hicache-dist-<op>-<protocol>[-<tag>]-<ts>.{json,md}. ' +
      DROPPED,
  },
  args: {
    ...commonArgs,
    op: { type: 'string', description: 'Operation: get or exists', default: 'get', valueHint: 'get|exists' },
    'batch-size': { type: 'string', description: 'Pages per batch call', default: '32', valueHint: 'n' },
    concurrencies: { type: 'string', description: 'Concurrency sweep per process: a list (1,2,4,8) or a progression (1,2,4,...,64)', default: DEFAULT_DRIVE_CONCURRENCIES.join(','), valueHint: 'list' },
    processes: { type: 'string', description: 'Driver processes per row, sharing one measurement window (serve --readers N to match)', default: '1', valueHint: 'n' },
    verify: { type: 'boolean', description: 'Check every byte of every page read (costs reader CPU; off for speed runs)', default: false },
    ...runArgs,
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    const logger = loggerFromArgs(args);
    const options: DriveOptions = {
      ...commonFromArgs(args),
      op: parseEnum('--op', str(args, 'op'), ['get', 'exists'] as const),
      batchSize: parsePositiveInt('--batch-size', str(args, 'batch-size'), { max: 65536 }),
      concurrencies: parseConcurrencies('--concurrencies', str(args, 'concurrencies')),
      processes: parsePositiveInt('--processes', str(args, 'processes'), { max: 256 }),
      durationS: parseSeconds('--duration', str(args, 'duration')),
      warmupS: parseNonNegativeNumber('--warmup', str(args, 'warmup')),
      verify: args.verify === true,
    };
    // TwoHostMismatchError and ServeUnavailableError keep their message (exit 1).
    return runMeasureCommand({ name: 'drive', kind: 'hicache-dist', mode: options.op, args, logger, configError: TwoHostConfigError, run: (hooks) => runDrive({ ...options, ...hooks }) });
  },
});
