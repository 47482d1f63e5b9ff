/**
 * Flags of the HiCache modes (latency, throughput, saturation, suite), as the original names them;
 * the connection flags (shared with micro, compare, serve and drive) with their parser.
 */
import type { ArgsDef } from 'citty';
import type { ConnectionOptions } from '../bench/engine/index.js';
import { LOG_LEVELS } from '../log.js';
import { PROTOCOLS } from '../transport/types.js';
import { parseEnum, parseNameList, parsePositiveInt, UsageError } from './parse.js';
import { globalArgs, str, type Args } from './shared.js';
import { modelNames, modelPage, type ModelPage } from '../bench/models.js';
import { SWEEP_DEFAULTS } from '../bench/sweep.js';

/** --model / --tp: a published model's page (schema/models.json) instead of --layout and --page-size. */
export const modelArgs = {
  model: {
    type: 'string',
    description: `A published model's page size and layout instead of --layout/--page-size (${modelNames().join(', ')}; dims in schema/models.json), per TP rank and --tokens-per-page tokens (64 where a command has no such flag)`,
    default: '',
    valueHint: 'name',
  },
  tp: { type: 'string', description: "With --model: tensor-parallel size (an MHA object holds this rank's share of the KV heads; MLA pages are the same on every rank)", default: '1', valueHint: 'n' },
} as const satisfies ArgsDef;

/**
 * The page of --model (null without it). `explicit` lists the flags --model replaces that were
 * given a value other than their default: giving both is a UsageError.
 */
export function modelFromArgs(args: Args, tokensPerPage: number, explicit: [flag: string, value: string, dflt: string][] = []): ModelPage | null {
  const name = str(args, 'model').trim();
  const tp = parsePositiveInt('--tp', str(args, 'tp'), { max: 1024 });
  if (!name) {
    if (tp !== 1) throw new UsageError('--tp is used with --model only (it picks the TP rank share of the model\'s KV heads)');
    return null;
  }
  for (const [flag, value, dflt] of explicit) {
    if (value.trim() !== dflt) throw new UsageError(`--model ${name} sets ${flag}: give one of them`);
  }
  try {
    return modelPage(name, { tp, tokensPerPage });
  } catch (err) {
    throw new UsageError(`--model: ${(err as Error).message}`);
  }
}

export const connectionArgs = {
  protocol: { type: 'string', description: 'Data plane: rdma (RDMA NIC), shm (one host, same one-sided path), tcp (smoke test, never publishable)', default: 'rdma', valueHint: 'rdma|shm|tcp' },
  'device-name': { type: 'string', description: 'RDMA device, e.g. mlx5_0 (default: UCX picks)', default: '', valueHint: 'dev' },
  devices: { type: 'string', description: 'RDMA devices (rails), comma separated; overrides --device-name', default: '', valueHint: 'dev,dev' },
  'ib-port': { type: 'string', description: 'RDMA port of the device', default: '1', valueHint: 'n' },
  'gid-index': { type: 'string', description: 'RoCE GID index; auto lets UCX pick a RoCE v2 GID', default: 'auto', valueHint: 'n|auto' },
  'local-host': { type: 'string', description: 'Address this host binds and advertises', default: '127.0.0.1', valueHint: 'addr' },
} as const satisfies ArgsDef;

/** --protocol, --device-name, --devices, --ib-port, --gid-index, --local-host (empty: `localHost`). */
export function connectionFromArgs(args: Args, localHost?: string): ConnectionOptions {
  const devicesText = str(args, 'devices').trim();
  const gid = str(args, 'gid-index').trim();
  return {
    protocol: parseEnum('--protocol', str(args, 'protocol'), PROTOCOLS),
    deviceName: str(args, 'device-name').trim() || undefined,
    devices: devicesText ? parseNameList('--devices', devicesText) : undefined,
    ibPort: parsePositiveInt('--ib-port', str(args, 'ib-port'), { max: 255 }),
    gidIndex: gid === '' || gid === 'auto' ? undefined : parsePositiveInt('--gid-index', gid, { min: 0, max: 255 }),
    localHost: str(args, 'local-host').trim() || localHost,
  };
}

export const pageArgs = {
  layout: { type: 'string', description: 'Page layout: mla (1 object per page) or mha (k and v objects)', default: SWEEP_DEFAULTS.layout, valueHint: 'mla|mha' },
  'page-size': { type: 'string', description: 'Bytes per component object (k or v); k/m suffixes allowed', default: String(SWEEP_DEFAULTS.pageBytes), valueHint: 'bytes' },
  'tokens-per-page': { type: 'string', description: 'Tokens per page (tokens/s = pages/s x this)', default: String(SWEEP_DEFAULTS.tokensPerPage), valueHint: 'n' },
  'batch-size': { type: 'string', description: 'Pages per batch call', default: String(SWEEP_DEFAULTS.batchSize), valueHint: 'n' },
} as const satisfies ArgsDef;

export const runArgs = {
  duration: { type: 'string', description: 'Measured seconds per row', default: String(SWEEP_DEFAULTS.durationS), valueHint: 's' },
  warmup: { type: 'string', description: 'Seconds discarded before measuring', default: String(SWEEP_DEFAULTS.warmupS), valueHint: 's' },
  'out-dir': { type: 'string', description: 'Where the JSON and Markdown results go', default: './peercache-bench-results', valueHint: 'dir' },
  tag: { type: 'string', description: 'Suffix for the result file names', default: '', valueHint: 'tag' },
  json: { type: 'boolean', description: 'Print the JSON report on stdout (the table and logs go to stderr)', default: false },
} as const satisfies ArgsDef;

export const directoryArg = {
  directory: { type: 'string', description: "Directory: 'embedded' (the producer serves it) or redis://host:port[/db] (rediss:// for TLS; password in the URL)", default: 'embedded', valueHint: 'embedded|url' },
  'directory-replica': {
    type: 'boolean',
    description:
      'Keep a local replica of the embedded directory\'s key locations: exists and lookups without a round trip, stale by at most 1 s (a stale hit costs a miss, never wrong bytes); ~220 bytes per key of the whole directory, up to 1 Mi keys (docs/tuning.md "Directory replica")',
    default: false,
  },
} as const satisfies ArgsDef;

export const hicacheArgs = {
  ...connectionArgs,
  ...directoryArg,
  ...pageArgs,
  ...modelArgs,
  'working-set': { type: 'string', description: 'Distinct pages for get and exists', default: String(SWEEP_DEFAULTS.workingSet), valueHint: 'pages' },
  'max-bytes': { type: 'string', description: 'Memory budget for all pools of the run; k/m/g suffixes allowed', default: `${SWEEP_DEFAULTS.maxBytes / 2 ** 30}g`, valueHint: 'bytes' },
  verify: { type: 'boolean', description: 'Check every byte of every page read (costs reader CPU; off for speed runs)', default: false },
  'verify-mode': { type: 'string', description: 'With --verify: sample (first/last word and one per 4 KiB of every page) or full (every byte)', default: 'sample', valueHint: 'sample|full' },
  'host-pool': { type: 'string', description: "The host pool every row's workers share (a fixed footprint): auto (2 x the widest row's in-flight pages), a size (k/m/g), or per-worker", default: SWEEP_DEFAULTS.hostPool, valueHint: 'auto|bytes|per-worker' },
  rate: { type: 'string', description: 'Open loop: total batch calls per second over each row\'s workers (k/m = 1e3/1e6); default closed loop', default: '', valueHint: 'calls/s' },
  arrival: { type: 'string', description: 'Open loop arrivals: constant or poisson', default: SWEEP_DEFAULTS.arrival, valueHint: 'constant|poisson' },
  repeat: { type: 'string', description: 'Windows per row: the row reports their median, 95% CI and CV (default 1; suite 3)', default: '', valueHint: 'n' },
  'slo-p99': { type: 'string', description: 'saturation/suite: p99 SLO in µs; the best row meeting it is marked SLO-PEAK', default: '', valueHint: 'us' },
  interval: { type: 'string', description: "Interval series: every row's throughput and p50/p99 per interval (1s, 500ms; at least 100ms), warmup included, in the JSON (intervals) and an HdrHistogram interval log <name>.hlog (values in µs) that HdrHistogram's HistogramLogAnalyzer reads (HistogramLogProcessor turns it into the .hgrm percentiles hdr-plot plots); default off", default: '', valueHint: 'duration' },
  'noisy-cv': { type: 'string', description: 'CV (percent) above which a repeated row is marked noisy', default: String(SWEEP_DEFAULTS.noisyCv * 100), valueHint: 'pct' },
  ...runArgs,
  ...globalArgs,
} as const satisfies ArgsDef;

export const opArg = {
  op: { type: 'string', description: "Operation: get, set, exists, or prefetch (SGLang's per-request prefetch: batch_exists in 128-key chunks, then batch_get_v1 of the hit prefix)", default: SWEEP_DEFAULTS.op, valueHint: 'get|set|exists|prefetch' },
  'prefix-pages': { type: 'string', description: 'prefetch: pages per request', default: String(SWEEP_DEFAULTS.prefixPages), valueHint: 'pages' },
  'hit-ratio': { type: 'string', description: "prefetch: fraction of a request's pages in the store (a hit prefix), 0..1", default: String(SWEEP_DEFAULTS.hitRatio), valueHint: '0..1' },
  'readers-per-key': { type: 'string', description: "prefetch: workers reading the same keys (MLA's fan-in: K ranks)", default: String(SWEEP_DEFAULTS.readersPerKey), valueHint: 'k' },
} as const satisfies ArgsDef;

export { LOG_LEVELS };

/** Option names whose flag is not their kebab-case spelling. */
const FLAG_OF_OPTION: Record<string, string> = {
  pageBytes: '--page-size',
  concurrencies: '--concurrencies',
  socketPath: '--socket',
  globalSegmentBytes: '--global-segment',
};

/** The flag that sets an option of the library (`maxBytes` → `--max-bytes`). */
export function flagFor(option: string): string {
  return FLAG_OF_OPTION[option] ?? `--${option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}
