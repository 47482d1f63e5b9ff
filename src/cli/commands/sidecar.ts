/** `peercache node`: starts the sidecar, the store node SGLang ranks on this host talk to (python/ adapter). */
import { defineCommand } from 'citty';
import { DEFAULT_SIDECAR_LIMITS } from '../../sidecar/protocol.js';
import { runSidecar } from '../../sidecar/sidecar.js';
import { StoreConfigError } from '../../store/config.js';
import type { DirectoryTls } from '../../tls.js';
import { connectionArgs, connectionFromArgs, directoryArg } from '../flags.js';
import { parsePositiveInt, parseSize, UsageError } from '../parse.js';
import { allocationProgress } from '../progress.js';
import { signalExitCode } from '../../bench/child-process.js';
import { toProgramError, withInterrupts } from '../run-report.js';
import { globalArgs, loggerFromArgs, str, type CommandResult } from '../shared.js';

export default defineCommand({
  meta: {
    name: 'node',
    description:
      'run the sidecar, a long-lived store node that serves the SGLang ranks of this host over a Unix socket (python/ adapter, docs/sglang.md); ' +
      'it maps their memfd host pools and READs straight into them. Runs until Ctrl-C/SIGTERM.',
  },
  args: {
    socket: { type: 'string', description: 'Unix socket path (socket 0600); its directory is created 0700 when absent, never changed when present, refused when others can write to it and it is not sticky', default: '/run/peercache/peercache.sock', valueHint: 'path' },
    'discovery-addr': { type: 'string', description: 'host:port of the embedded directory (the first node there serves it); not needed with --directory redis://', default: '', valueHint: 'host:port' },
    ...directoryArg,
    ...connectionArgs,
    'global-segment': {
      type: 'string',
      description:
        "Bytes of the published pool this node serves reads from; k/m/g suffixes. Refused (exit 2) when it does not fit the host's available memory (less 1 GiB), /dev/shm where POSIX memory backs it, or ulimit -l on rdma. Also --global-segment-size",
      default: '4g',
      valueHint: 'bytes',
      alias: ['global-segment-size'],
    },
    'slot-bytes': { type: 'string', description: 'Largest object stored: an MLA page, or the k (or v) of an MHA page, in bytes; k/m suffixes', default: '', valueHint: 'bytes' },
    'node-id': { type: 'string', description: "This node's id (default: <host>-<random>)", default: '', valueHint: 'id' },
    'auth-token': { type: 'string', description: 'Shared secret of the directory (default: $PEERCACHE_AUTH_TOKEN)', default: '', valueHint: 'token' },
    insecure: { type: 'boolean', description: 'Serve the directory on a non-loopback address without --auth-token (trusted networks only)', default: false },
    'directory-tls-cert': { type: 'string', description: 'Embedded directory over TLS: the PEM certificate this node presents if it serves the directory (with --directory-tls-key; docs/security.md)', default: '', valueHint: 'path' },
    'directory-tls-key': { type: 'string', description: 'Embedded directory over TLS: the PEM key of --directory-tls-cert', default: '', valueHint: 'path' },
    'tcp-tls-cert': { type: 'string', description: 'tcp data plane over TLS (--protocol tcp): the PEM certificate this node\'s server presents (it must name the address this node advertises; with --tcp-tls-key)', default: '', valueHint: 'path' },
    'tcp-tls-key': { type: 'string', description: 'tcp data plane over TLS: the PEM key of --tcp-tls-cert', default: '', valueHint: 'path' },
    'tcp-tls-ca': { type: 'string', description: "tcp data plane over TLS: the PEM CA bundle that signed the peers' certificates", default: '', valueHint: 'path' },
    'directory-tls-ca': { type: 'string', description: "Embedded directory over TLS: the PEM CA bundle that signed the directory's certificate (any of these three turns TLS on)", default: '', valueHint: 'path' },
    'timeout-ms': { type: 'string', description: 'Deadline of one data-plane batch', default: '10000', valueHint: 'ms' },
    'max-connections': { type: 'string', description: 'Socket connections served at once (an SGLang rank opens up to 3)', default: String(DEFAULT_SIDECAR_LIMITS.maxConnections), valueHint: 'n' },
    'max-frame-bytes': { type: 'string', description: 'Largest request frame; k/m suffixes', default: String(DEFAULT_SIDECAR_LIMITS.maxFrameBytes), valueHint: 'bytes' },
    'max-keys': { type: 'string', description: 'Objects in one request', default: String(DEFAULT_SIDECAR_LIMITS.maxKeys), valueHint: 'n' },
    'hello-timeout-ms': {
      type: 'string',
      description: 'How long a client may keep this node waiting: for its hello, for its first request after hello, for reading its answers once they pile up (then it is closed)',
      default: String(DEFAULT_SIDECAR_LIMITS.helloTimeoutMs),
      valueHint: 'ms',
    },
    'idle-evict-ms': {
      type: 'string',
      description: 'When --max-connections are open, a new one closes the connection idle longest if it has been idle this long (else it is refused)',
      default: String(DEFAULT_SIDECAR_LIMITS.idleEvictMs),
      valueHint: 'ms',
    },
    'busy-poll-us': {
      type: 'string',
      description:
        'Keep polling the socket this many µs after each answer instead of sleeping, so the next call of a burst skips a wake-up (costs up to that much CPU per call; 0: off). docs/tuning.md, polling',
      default: '0',
      valueHint: 'us',
    },
    'metrics-port': { type: 'string', description: 'Serve Prometheus metrics at http://<metrics-host>:<port>/metrics; off when empty', default: '', valueHint: 'port' },
    'metrics-host': { type: 'string', description: 'Address the metrics endpoint binds', default: '127.0.0.1', valueHint: 'addr' },
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    const logger = loggerFromArgs(args);
    const conn = connectionFromArgs(args);
    const socketPath = str(args, 'socket').trim();
    if (!socketPath || !socketPath.startsWith('/')) throw new UsageError('--socket must be an absolute path');
    if (Buffer.byteLength(socketPath) > 107) throw new UsageError(`--socket: ${socketPath} is longer than a Unix socket path may be (107 bytes)`);
    const directory = str(args, 'directory').trim();
    const discoveryAddr = str(args, 'discovery-addr').trim();
    if (!discoveryAddr && !/^rediss?:\/\//.test(directory)) throw new UsageError('--discovery-addr host:port is required (or --directory redis://...)');
    const slotText = str(args, 'slot-bytes').trim();
    if (!slotText) throw new UsageError('--slot-bytes is required: the bytes of one object (MLA: the page; MHA: its k or v), e.g. --slot-bytes 128k');
    const metricsText = str(args, 'metrics-port').trim();
    const metricsPort = metricsText === '' ? undefined : metricsText === '0' ? 0 : parsePositiveInt('--metrics-port', metricsText, { max: 65535 });
    const maxFrame = parseSize('--max-frame-bytes', str(args, 'max-frame-bytes'));
    if (maxFrame > 64 * 2 ** 20) throw new UsageError('--max-frame-bytes: at most 64m');
    let interruptedBy: () => NodeJS.Signals | null = () => null;
    try {
      const { nodeId } = await withInterrupts('\nstopping: leaving the cluster\n', (signal, by) => (interruptedBy = by,
        runSidecar({
          socketPath,
          protocol: conn.protocol,
          discoveryAddr: discoveryAddr || undefined,
          directoryUrl: directory === 'embedded' ? undefined : directory,
          directoryReplica: args['directory-replica'] === true,
          globalSegmentBytes: parseSize('--global-segment', str(args, 'global-segment')),
          slotBytes: parseSize('--slot-bytes', slotText),
          localHost: conn.localHost,
          devices: conn.devices ?? (conn.deviceName ? [conn.deviceName] : undefined),
          ibPort: conn.ibPort,
          gidIndex: conn.gidIndex,
          nodeId: str(args, 'node-id').trim() || undefined,
          authToken: str(args, 'auth-token') || process.env.PEERCACHE_AUTH_TOKEN || undefined,
          insecure: args.insecure === true,
          directoryTls: tlsFromArgs(args, 'directory-tls'),
          tcpTls: tlsFromArgs(args, 'tcp-tls'),
          timeoutMs: parsePositiveInt('--timeout-ms', str(args, 'timeout-ms'), { max: 600_000 }),
          limits: {
            maxConnections: parsePositiveInt('--max-connections', str(args, 'max-connections'), { max: 65_536 }),
            maxFrameBytes: maxFrame,
            maxKeys: parsePositiveInt('--max-keys', str(args, 'max-keys'), { max: 65_536 }),
            helloTimeoutMs: parsePositiveInt('--hello-timeout-ms', str(args, 'hello-timeout-ms'), { min: 100, max: 600_000 }),
            idleEvictMs: parsePositiveInt('--idle-evict-ms', str(args, 'idle-evict-ms'), { min: 0, max: 86_400_000 }),
          },
          busyPollUs: parsePositiveInt('--busy-poll-us', str(args, 'busy-poll-us'), { min: 0, max: 10_000 }),
          metricsPort,
          metricsHost: str(args, 'metrics-host').trim() || '127.0.0.1',
          signal,
          logger,
          onAllocateProgress: (p) => process.stderr.write(`${allocationProgress(p)}\n`),
          onReady: (info) =>
            process.stdout.write(`peercache node '${info.nodeId}' ready: socket ${info.socketPath}, protocol ${conn.protocol}${info.metricsUrl ? `, metrics ${info.metricsUrl}` : ''}\n`),
        })),
      );
      process.stdout.write(`peercache node '${nodeId}' stopped\n`);
      return { exitCode: 0 };
    } catch (err) {
      const by = interruptedBy();
      if (by) {
        // Stopped while starting (a big segment being allocated): what it had made is removed.
        process.stderr.write(`peercache node: stopped during start-up (${by}): ${(err as Error).message}\n`);
        return { exitCode: signalExitCode(by) };
      }
      throw toProgramError(err, StoreConfigError);
    }
  },
});

/** --directory-tls-*: any of them turns TLS on for the embedded directory; files are read (and checked) when the store opens. */
function tlsFromArgs(args: Record<string, unknown>, flag: 'directory-tls' | 'tcp-tls'): DirectoryTls | undefined {
  const certFile = String(args[`${flag}-cert`] ?? '').trim();
  const keyFile = String(args[`${flag}-key`] ?? '').trim();
  const caFile = String(args[`${flag}-ca`] ?? '').trim();
  if (!certFile && !keyFile && !caFile) return undefined;
  if (Boolean(certFile) !== Boolean(keyFile)) throw new UsageError(`--${flag}-cert and --${flag}-key go together`);
  return { certFile: certFile || undefined, keyFile: keyFile || undefined, caFile: caFile || undefined };
}
