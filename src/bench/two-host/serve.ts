/**
 * runServe(): the producer side of a two-host run, `peercache-bench serve`. It hosts the
 * directory at the discovery address (the first node there serves it), publishes a working set of
 * pages filled with the verification pattern, and waits until it is told to stop, reporting the
 * drivers that come and go.
 *
 * Unlike the original it publishes at once: our directory is one server, not a hash ring, so a
 * late reader does not move entries, and entries stay as long as this node lives (no re-publish
 * loop). `readers` is only what serve expects, for its messages.
 */
import { printable } from '../../store/printable.js';
import { silentLogger, type Logger } from '../../log.js';
import { HostKVPool } from '../../store/host-pool.js';
import { PeerCacheStore } from '../../store/peer-cache-store.js';
import { publishedPoolBytes } from '../../store/published-pool.js';
import type { NodeInfo } from '../../store/types.js';
import { openTransport } from '../../transport/index.js';
import { packageVersion } from '../../version.js';
import { fillPage, pageSeed } from '../engine/pattern.js';
import { parseDiscoveryAddr } from '../../store/directory/index.js';
import { checkSegmentFits } from '../../transport/segment-budget.js';
import type { AllocateProgress } from '../../transport/types.js';
import { chooseLocalHost, isWildcard } from './net.js';
import { agreementAttributes, ATTR, commonDefaults, compareAgreement, TWO_HOST_KEY_PREFIX, TwoHostConfigError, isDriveNode, type Agreement, type TwoHostCommonOptions } from './params.js';
import { PeercacheError } from '../../errors.js';

export interface ServeOptions extends TwoHostCommonOptions {
  /** Driver processes serve expects (messages only). Default 1. */
  readers?: number;
  /** Bytes of the published pool; 0 or undefined = sized to the working set. */
  globalSegmentBytes?: number;
  /** Stops serving (Ctrl-C / SIGTERM), and a start-up still allocating the published pool. */
  signal?: AbortSignal;
  /** Called about once a second while the published pool is being allocated. */
  onAllocateProgress?: (progress: AllocateProgress) => void;
  logger?: Logger;
  /** serve's user-facing lines (the banner, drivers joining and leaving). */
  print?: (line: string) => void;
  /** Expose Prometheus metrics (pages published/read/evicted, bytes, pool occupancy, directory latency, errors) on this port; 0 picks one. */
  metricsPort?: number;
  /** Address the metrics endpoint binds (default 127.0.0.1). */
  metricsHost?: string;
}

export interface ServeSummary {
  nodeId: string;
  localHost: string;
  pages: number;
  transports: string;
  /** Driver nodes seen over the whole run. */
  driversSeen: number;
}

const CHUNK = 256;

/** Published-pool bytes that hold `pages` pages of `components` objects (slot header + data, 64 B aligned). */
export function servePoolBytes(pages: number, components: number, pageBytes: number): number {
  return publishedPoolBytes(pages * components + 64, pageBytes);
}

const human = (n: number) => (n >= 2 ** 30 ? `${(n / 2 ** 30).toFixed(2)} GiB` : n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`);

export async function runServe(options: ServeOptions): Promise<ServeSummary> {
  const logger = options.logger ?? silentLogger;
  const print = options.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const d = commonDefaults(options);
  const readers = options.readers ?? 1;
  if (!Number.isSafeInteger(readers) || readers < 1) throw new TwoHostConfigError('readers must be a positive integer');
  const components = d.layout === 'mla' ? 1 : 2;
  const needed = servePoolBytes(d.workingSet, components, d.pageBytes);
  const segment = options.globalSegmentBytes || needed;
  if (segment < needed) {
    throw new TwoHostConfigError(`--global-segment ${segment} is too small for ${d.workingSet} pages of ${d.pageBytes} B (${d.layout}): it needs at least ${needed} (0 sizes it automatically)`);
  }
  // Before anything is opened: a segment this host cannot hold is refused in one line.
  checkSegmentFits(segment, options.protocol);
  const local = await chooseLocalHost(options.discoveryAddr, options.localHost, 'serve');
  const agreement: Agreement = { layout: d.layout, pageBytes: d.pageBytes, workingSet: d.workingSet, protocol: options.protocol, devices: d.devices };
  const chunk = Math.min(CHUNK, d.workingSet);
  const host = new HostKVPool({ layout: d.layout, pageBytes: d.pageBytes, pages: chunk, tokensPerPage: d.tokensPerPage, shared: false });
  const nodeId = options.nodeId || 'pcbench-serve';
  // Fails fast with the transport's own explanation (rdma without a NIC, no UCX), and gives the
  // transports this protocol runs on, published with the rest at join.
  const probe = await openTransport({ protocol: options.protocol, devices: d.devices, ibPort: options.ibPort, gidIndex: options.gidIndex, host: local.host });
  const transports = probe.transports;
  await probe.close();
  // prom-client loads only when metrics are asked for.
  const metricsModule = options.metricsPort !== undefined ? await import('../../store/metrics.js') : null;
  const metrics = metricsModule?.createStoreMetrics();
  const store = await PeerCacheStore.open({
    metrics,
    discoveryAddr: options.discoveryAddr,
    protocol: options.protocol,
    devices: d.devices,
    ibPort: options.ibPort,
    gidIndex: options.gidIndex,
    localHost: local.host,
    authToken: options.authToken,
    insecure: options.insecure,
    hostPool: host,
    globalSegmentBytes: segment,
    maxBytes: Number.MAX_SAFE_INTEGER,
    nodeId,
    attributes: {
      ...agreementAttributes('serve', agreement),
      [ATTR.tokensPerPage]: d.tokensPerPage,
      [ATTR.keyPrefix]: TWO_HOST_KEY_PREFIX,
      [ATTR.readers]: readers,
      [ATTR.transports]: transports,
      [ATTR.version]: packageVersion(),
    },
    logger,
  }, { signal: options.signal, onProgress: options.onAllocateProgress });
  let driversSeen = 0;
  const metricsServer = metricsModule && metrics ? await metricsModule.startMetricsServer({ port: options.metricsPort!, host: options.metricsHost, registry: metrics }).catch(async (err: unknown) => {
    await store.close();
    throw new TwoHostConfigError(`--metrics-port ${options.metricsPort}: ${(err as Error).message}`);
  }) : null;
  if (metricsServer) print(`metrics: ${metricsServer.url}`);
  try {
    const t0 = Date.now();
    for (let base = 0; base < d.workingSet; base += chunk) {
      if (options.signal?.aborted) break;
      const n = Math.min(chunk, d.workingSet - base);
      const keys: string[] = [];
      for (let i = 0; i < n; i++) {
        keys.push(`${TWO_HOST_KEY_PREFIX}/${base + i}`);
        // Always filled: a driver with --verify checks every byte against its key.
        for (let c = 0; c < components; c++) fillPage(host.pageView(i, c), pageSeed(base + i, c));
      }
      const ok = await store.batchSetV1(keys, host.tokenIndices(Array.from({ length: n }, (_, i) => i)));
      const bad = ok.indexOf(false);
      if (bad >= 0) throw new PeercacheError('ERR_DIRECTORY', `serve could not publish ${keys[bad]}: the directory refused it (another node publishes the same working set?)`);
    }
    if (options.signal?.aborted) return { nodeId, localHost: local.host, pages: store.publishedCount, transports: store.transport.transports, driversSeen };
    const { host: dh, port: dp } = parseDiscoveryAddr(options.discoveryAddr);
    const driveHost = isWildcard(dh) ? local.host : dh.includes(':') ? `[${dh}]` : dh;
    // drive must pass the same secret; the hint names where it comes from, never the secret itself.
    const tokenHint = !options.authToken ? '' : options.authToken === process.env.PEERCACHE_AUTH_TOKEN ? ' --auth-token "$PEERCACHE_AUTH_TOKEN"' : ' --auth-token <the same token>';
    print(
      `serving ${d.workingSet} pages of ${d.pageBytes} B (${d.layout}, ${human(d.workingSet * components * d.pageBytes)}) as node '${nodeId}' at ${local.host} ` +
        `(${local.how}), protocol ${options.protocol} (transports ${store.transport.transports}), directory ${options.discoveryAddr}; ` +
        `published in ${((Date.now() - t0) / 1000).toFixed(1)} s; waiting for ${readers} driver${readers === 1 ? '' : 's'} ` +
        `(peercache-bench drive --discovery-addr ${driveHost}:${dp} --protocol ${options.protocol} --layout ${d.layout} --page-size ${d.pageBytes} --working-set ${d.workingSet}${d.devices.length ? ` --devices ${d.devices.join(',')}` : ''}${tokenHint} ...); Ctrl-C stops`,
    );
    const self: NodeInfo = { nodeId, protocol: options.protocol, host: local.host, transportAddress: '', regionDescriptor: null, attributes: agreementAttributes('serve', agreement) };
    const drivers = new Map<string, NodeInfo>();
    let announcedAll = false;
    // Membership polling: cheap (one round trip a second) and enough for messages.
    while (!options.signal?.aborted) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, 1000);
        function done() {
          clearTimeout(t);
          options.signal?.removeEventListener('abort', done);
          resolve();
        }
        options.signal?.addEventListener('abort', done, { once: true });
      });
      if (options.signal?.aborted) break;
      let members: NodeInfo[];
      try {
        members = await store.members();
      } catch (err) {
        logger.warn(`serve: membership check failed: ${(err as Error).message}`);
        continue;
      }
      const now = new Map(members.filter(isDriveNode).map((n) => [n.nodeId, n]));
      // A --processes N parent only coordinates; its N children are the readers.
      const readersNow = [...now.values()].filter((n) => n.attributes[ATTR.coordinator] === undefined).length;
      for (const [id, n] of now) {
        if (drivers.has(id)) continue;
        driversSeen++;
        const mismatches = compareAgreement(self, agreementOf(n));
        const coordinator = n.attributes[ATTR.coordinator];
        const role =
          coordinator !== undefined
            ? `coordinating ${printable(coordinator)} driver processes`
            : readersNow <= readers
              ? `${readersNow} of ${readers} expected reading`
              : `${readersNow} reading, more than the ${readers} expected`;
        // Ids, hosts and attribute values are the peer's words: printed escaped.
        print(
          `driver '${printable(id)}' joined from ${printable(n.host)} (${role})` +
            (mismatches.length ? `, but it disagrees on ${mismatches.map((m) => `${m.flag} (serve ${printable(m.serve)}, drive ${printable(m.drive)})`).join(', ')}: it will stop` : ''),
        );
      }
      for (const id of drivers.keys()) if (!now.has(id)) print(`driver '${printable(id)}' left (${readersNow} reading)`);
      if (!announcedAll && readersNow >= readers) {
        print(readers === 1 ? 'the expected driver joined' : `all ${readers} expected drivers joined`);
        announcedAll = true;
      }
      if (readersNow === 0) announcedAll = false;
      drivers.clear();
      for (const [id, n] of now) drivers.set(id, n);
    }
    return { nodeId, localHost: local.host, pages: store.publishedCount, transports: store.transport.transports, driversSeen };
  } finally {
    await metricsServer?.close();
    await store.close().catch((err: unknown) => logger.warn(`serve: close: ${(err as Error).message}`));
  }
}

/** A driver's published agreement, read back from its attributes. */
function agreementOf(n: NodeInfo): Agreement {
  const at = n.attributes;
  const list = String(at[ATTR.railList] ?? '');
  return {
    layout: at[ATTR.layout] === 'mha' ? 'mha' : 'mla',
    pageBytes: Number(at[ATTR.pageSize]),
    workingSet: Number(at[ATTR.workingSet]),
    protocol: n.protocol,
    devices: list ? list.split(',') : [],
  };
}
