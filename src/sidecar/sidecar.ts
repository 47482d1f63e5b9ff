/**
 * The sidecar: the long-running store node of one host, which `peercache node` starts
 * (runSidecar()). It opens the store's core
 * (ObjectStore: named objects, no host pool of its own; the ranks name the objects), joining the
 * cluster through the directory, serves the host's SGLang ranks over a Unix socket
 * (server.ts) and optionally Prometheus metrics, until it is told to stop.
 */
import type { Logger } from '../log.js';
import { ObjectStore } from '../store/object-store.js';
import type { DirectoryTls } from '../tls.js';
import type { AllocateProgress, DataPlaneOptions } from '../transport/types.js';
import { SidecarServer } from './server.js';
import { prepareSocketDirectory } from './socket-directory.js';
import type { SidecarLimits } from './protocol.js';

/** What `peercache node`'s flags become. */
export interface SidecarOptions extends DataPlaneOptions {
  socketPath: string;
  discoveryAddr?: string;
  directoryUrl?: string;
  /** Keep a key replica of the embedded directory (PeerCacheStoreConfig.directoryReplica). */
  directoryReplica?: boolean;
  globalSegmentBytes: number;
  /** Largest object (an MLA page, or one of an MHA page's k/v) the published pool holds. */
  slotBytes: number;
  nodeId?: string;
  authToken?: string;
  directoryTls?: DirectoryTls;
  tcpTls?: DirectoryTls;
  insecure?: boolean;
  timeoutMs?: number;
  limits?: Partial<SidecarLimits>;
  /** µs the sidecar keeps polling its socket after each answer (SidecarServerOptions.busyPollUs). */
  busyPollUs?: number;
  metricsPort?: number;
  metricsHost?: string;
  signal: AbortSignal;
  logger: Logger;
  /** Called about once a second while the published pool is being allocated (seconds per GiB on shm). */
  onAllocateProgress?: (progress: AllocateProgress) => void;
  /** Called once the socket accepts connections (the CLI prints a line). */
  onReady?: (info: { nodeId: string; socketPath: string; metricsUrl: string | null }) => void;
}

export async function runSidecar(options: SidecarOptions): Promise<{ nodeId: string }> {
  prepareSocketDirectory(options.socketPath); // a bad --socket is refused before the sidecar joins the cluster
  const metricsModule = options.metricsPort !== undefined ? await import('../store/metrics.js') : null;
  const metrics = metricsModule?.createStoreMetrics();
  const store = await ObjectStore.open({
    protocol: options.protocol,
    discoveryAddr: options.discoveryAddr,
    directoryUrl: options.directoryUrl,
    directoryReplica: options.directoryReplica,
    globalSegmentBytes: options.globalSegmentBytes,
    slotBytes: options.slotBytes,
    maxBytes: Number.MAX_SAFE_INTEGER,
    localHost: options.localHost,
    devices: options.devices,
    ibPort: options.ibPort,
    gidIndex: options.gidIndex,
    nodeId: options.nodeId,
    authToken: options.authToken,
    directoryTls: options.directoryTls,
    tcpTls: options.tcpTls,
    insecure: options.insecure,
    timeoutMs: options.timeoutMs,
    metrics,
    logger: options.logger,
    attributes: { role: 'sidecar' },
  }, { signal: options.signal, onProgress: options.onAllocateProgress });
  let server: SidecarServer | null = null;
  let metricsServer: { url: string; close(): Promise<void> } | null = null;
  try {
    server = await SidecarServer.listen({ socketPath: options.socketPath, store, limits: options.limits, logger: options.logger, busyPollUs: options.busyPollUs });
    if (metrics) {
      const { registerSidecarMetrics } = await import('./metrics.js');
      registerSidecarMetrics(metrics.registry, () => server);
    }
    if (metricsModule && metrics) metricsServer = await metricsModule.startMetricsServer({ port: options.metricsPort!, host: options.metricsHost, registry: metrics });
    options.onReady?.({ nodeId: store.nodeId, socketPath: options.socketPath, metricsUrl: metricsServer?.url ?? null });
    if (!options.signal.aborted) await new Promise<void>((resolve) => options.signal.addEventListener('abort', () => resolve(), { once: true }));
    return { nodeId: store.nodeId };
  } finally {
    await metricsServer?.close();
    await server?.close();
    await store.close().catch((err: unknown) => options.logger.warn(`node: close: ${(err as Error).message}`));
  }
}
