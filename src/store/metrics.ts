/**
 * Prometheus metrics for long-running nodes (prom-client), and a small HTTP `/metrics` server.
 *
 * Cheap on the hot path by design: the store already counts everything in plain integers
 * (`store.stats`); the metrics here read those counters when Prometheus scrapes (`collect()`),
 * so a get or a set pays nothing for them. The only per-call cost is the directory latency
 * histogram: one `performance.now()` pair and one `observe()` per directory round trip (a cached
 * batchGetV1 makes none).
 *
 * Usage:
 *   const metrics = createStoreMetrics();
 *   const store = await PeerCacheStore.open({ ..., metrics });
 *   const server = await startMetricsServer({ port: 9464, host: '0.0.0.0', registry: metrics.registry });
 */
import http from 'node:http';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { pulledMetric } from './pulled-metric.js';
import type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from './types.js';
import { InvalidArgumentError } from '../errors.js';

/** The counters a store keeps (a subset of StoreStats; read at scrape time). */
export interface MetricsStats {
  readonly getPages: number;
  readonly getHits: number;
  readonly staleReads: number;
  readonly cacheHits: number;
  readonly directoryLookups: number;
  readonly replicaLookups: number;
  readonly setPages: number;
  readonly evictions: number;
  readonly readErrors: number;
  readonly directoryErrors: number;
  readonly objectsPublished: number;
  readonly bytesPublished: number;
  readonly bytesRead: number;
}

/** What a store shows to the metrics: read only when scraped. */
export interface MetricsSource {
  readonly nodeId: string;
  readonly stats: MetricsStats;
  /** Slots of the published pool (0 when it publishes nothing). */
  readonly publishedSlots: number;
  /** Slots in use. */
  readonly publishedCount: number;
}

/** The optional sink a PeerCacheStore takes (`config.metrics`). */
export interface StoreMetricsSink {
  /** Wraps the store's directory: latency histogram and failures per operation. */
  instrumentDirectory(directory: Directory, nodeId: string): Directory;
  /** Registers a store; its counters are read at scrape time. Returns the unregister function. */
  track(source: MetricsSource): () => void;
}

const DIRECTORY_OPS = ['join', 'lookup', 'publish', 'remove', 'node', 'members'] as const;
export type DirectoryOp = (typeof DIRECTORY_OPS)[number];

export interface StoreMetricsOptions {
  /** Registry to use (default: a new one, so nothing leaks into prom-client's global registry). */
  registry?: Registry;
  /** Also export Node's process metrics (CPU, memory, event loop lag, GC) (default false). */
  defaultMetrics?: boolean;
  /** Histogram buckets of the directory latency, in seconds (default 50 µs .. 2.5 s). */
  directoryBuckets?: number[];
}

const DEFAULT_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 2.5];

/** A counter whose values are read from the tracked stores at scrape time. */
type Pull = (s: MetricsSource) => number;

/** The metric set. Implements the store's sink; `registry` is what `/metrics` serves. */
export class StoreMetrics implements StoreMetricsSink {
  readonly registry: Registry;
  private readonly sources = new Set<MetricsSource>();
  private readonly latency: Histogram<'node' | 'op'>;
  private readonly failures: Counter<'node' | 'op'>;

  constructor(options: StoreMetricsOptions = {}) {
    const registry = (this.registry = options.registry ?? new Registry());
    const registers = [registry];
    const sources = this.sources;
    const perNode = (kind: 'counter' | 'gauge') => (name: string, help: string, pull: Pull): void =>
      pulledMetric(kind, registry, name, help, ['node'], (emit) => {
        for (const s of sources) emit(pull(s), { node: s.nodeId });
      });
    const pulled = perNode('counter');
    const gauge = perNode('gauge');
    pulled('peercache_set_pages_total', 'Pages passed to batchSetV1 (already-published ones included).', (s) => s.stats.setPages);
    pulled('peercache_pages_published_total', 'Objects (page components) newly published to the directory.', (s) => s.stats.objectsPublished);
    pulled('peercache_published_bytes_total', 'Bytes newly published.', (s) => s.stats.bytesPublished);
    pulled('peercache_get_pages_total', 'Pages asked for by batchGetV1.', (s) => s.stats.getPages);
    pulled('peercache_pages_read_total', 'Pages read and validated (batchGetV1 hits).', (s) => s.stats.getHits);
    pulled('peercache_read_bytes_total', 'Bytes read into the host pool (validated hits, all APIs).', (s) => s.stats.bytesRead);
    pulled('peercache_pages_evicted_total', 'Objects evicted from the published pool (LRU).', (s) => s.stats.evictions);
    pulled('peercache_stale_reads_total', 'READs whose slot had been reused or invalidated: safe misses.', (s) => s.stats.staleReads);
    pulled('peercache_location_cache_hits_total', 'Objects located from the location cache (no directory round trip).', (s) => s.stats.cacheHits);
    pulled('peercache_directory_lookups_total', 'Directory lookups made by the store (round trips).', (s) => s.stats.directoryLookups);
    pulled('peercache_replica_lookups_total', 'Lookups answered without a round trip: the directory replica, or the in-process directory of the node that hosts it.', (s) => s.stats.replicaLookups);
    new Counter({
      name: 'peercache_errors_total',
      help: 'Errors by kind: read (a data-plane READ failed), directory (a directory call failed; the pages are misses).',
      labelNames: ['node', 'kind'],
      registers,
      collect() {
        this.reset();
        for (const s of sources) {
          this.inc({ node: s.nodeId, kind: 'read' }, s.stats.readErrors);
          this.inc({ node: s.nodeId, kind: 'directory' }, s.stats.directoryErrors);
        }
      },
    });
    gauge('peercache_get_hit_ratio', 'Hits / pages asked for by batchGetV1, since start (0 before the first get).', (s) =>
      s.stats.getPages > 0 ? s.stats.getHits / s.stats.getPages : 0,
    );
    gauge('peercache_pool_slots', 'Slots of the published pool.', (s) => s.publishedSlots);
    gauge('peercache_pool_slots_used', 'Slots of the published pool in use.', (s) => s.publishedCount);
    gauge('peercache_pool_occupancy_ratio', 'Used / total slots of the published pool.', (s) => (s.publishedSlots > 0 ? s.publishedCount / s.publishedSlots : 0));
    this.latency = new Histogram({
      name: 'peercache_directory_request_duration_seconds',
      help: 'Directory round trips as the store sees them, by operation.',
      labelNames: ['node', 'op'],
      buckets: options.directoryBuckets ?? DEFAULT_BUCKETS,
      registers,
    });
    this.failures = new Counter({
      name: 'peercache_directory_failures_total',
      help: 'Directory calls that failed, by operation.',
      labelNames: ['node', 'op'],
      registers,
    });
    if (options.defaultMetrics) collectDefaultMetrics({ register: registry });
  }

  track(source: MetricsSource): () => void {
    this.sources.add(source);
    return () => {
      if (!this.sources.delete(source)) return;
      for (const s of this.sources) if (s.nodeId === source.nodeId) return;
      // A closed store's directory series go too: a long-lived process must not pile them up.
      for (const op of DIRECTORY_OPS) {
        this.latency.remove({ node: source.nodeId, op });
        this.failures.remove({ node: source.nodeId, op });
      }
    };
  }

  instrumentDirectory(directory: Directory, nodeId: string): Directory {
    return new TimedDirectory(directory, (op) => ({
      latency: this.latency.labels({ node: nodeId, op }),
      failures: this.failures.labels({ node: nodeId, op }),
    }));
  }

  /** The Prometheus text exposition of every metric. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

export function createStoreMetrics(options: StoreMetricsOptions = {}): StoreMetrics {
  return new StoreMetrics(options);
}

interface OpMetrics {
  latency: { observe(value: number): void };
  failures: { inc(): void };
}

/** A Directory that times every call (label children bound once: no allocation per call). */
class TimedDirectory implements Directory {
  private readonly ops: Record<DirectoryOp, OpMetrics>;

  constructor(
    private readonly inner: Directory,
    bind: (op: DirectoryOp) => OpMetrics,
  ) {
    this.ops = { join: bind('join'), lookup: bind('lookup'), publish: bind('publish'), remove: bind('remove'), node: bind('node'), members: bind('members') };
  }

  private async timed<T>(op: DirectoryOp, call: Promise<T>, t0: number): Promise<T> {
    const m = this.ops[op];
    try {
      const result = await call;
      m.latency.observe((performance.now() - t0) / 1000);
      return result;
    } catch (err) {
      m.failures.inc();
      throw err;
    }
  }

  join(node: NodeInfo): Promise<NodeInfo[]> {
    const t0 = performance.now();
    return this.timed('join', this.inner.join(node), t0);
  }
  lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    const t0 = performance.now();
    return this.timed('lookup', this.inner.lookup(keys), t0);
  }
  publish(entries: readonly DirectoryEntry[]): Promise<boolean[]> {
    const t0 = performance.now();
    return this.timed('publish', this.inner.publish(entries), t0);
  }
  remove(entries: readonly RemovalEntry[]): Promise<void> {
    const t0 = performance.now();
    return this.timed('remove', this.inner.remove(entries), t0);
  }
  node(nodeId: string): Promise<NodeInfo | null> {
    const t0 = performance.now();
    return this.timed('node', this.inner.node(nodeId), t0);
  }
  members(): Promise<NodeInfo[]> {
    const t0 = performance.now();
    return this.timed('members', this.inner.members(), t0);
  }
  subscribe(listener: (event: DirectoryEvent) => void): () => void {
    return this.inner.subscribe(listener);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

export interface MetricsServerOptions {
  /** 0 picks a free port (see `port` on the result). */
  port: number;
  /** Address to bind (default 127.0.0.1; 0.0.0.0 for a Prometheus on another host). */
  host?: string;
  /** What to serve: a registry, or a StoreMetrics (its registry). */
  registry: Registry | StoreMetrics;
  /** A client must have sent its request headers within this long (default METRICS_HEADERS_TIMEOUT_MS). */
  headersTimeoutMs?: number;
  /** ... and its whole request within this long (default METRICS_REQUEST_TIMEOUT_MS; >= headersTimeoutMs). */
  requestTimeoutMs?: number;
}

/** Slow-header clients are dropped after this long, not after Node's default 60 s. */
export const METRICS_HEADERS_TIMEOUT_MS = 5_000;
/** A whole request (a GET has no body) gets this long. */
export const METRICS_REQUEST_TIMEOUT_MS = 10_000;

export interface MetricsServer {
  readonly host: string;
  readonly port: number;
  /** http://host:port/metrics */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves GET /metrics (Prometheus text format) and GET / (a one-line pointer); 404 otherwise.
 * Rejects with a message naming host:port when it cannot listen.
 */
export async function startMetricsServer(options: MetricsServerOptions): Promise<MetricsServer> {
  const registry = options.registry instanceof StoreMetrics ? options.registry.registry : options.registry;
  const host = options.host ?? '127.0.0.1';
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) throw new InvalidArgumentError(`metrics port must be in 0..65535, got ${options.port}`);
  const headersTimeout = options.headersTimeoutMs ?? METRICS_HEADERS_TIMEOUT_MS;
  const requestTimeout = options.requestTimeoutMs ?? Math.max(METRICS_REQUEST_TIMEOUT_MS, headersTimeout);
  for (const [name, v] of [['headersTimeoutMs', headersTimeout], ['requestTimeoutMs', requestTimeout]] as const) {
    if (!Number.isInteger(v) || v < 1 || v > 0x7fffffff) throw new InvalidArgumentError(`metrics ${name} must be a positive integer (ms), got ${v}`);
  }
  if (headersTimeout > requestTimeout) throw new InvalidArgumentError(`metrics headersTimeoutMs (${headersTimeout}) must not exceed requestTimeoutMs (${requestTimeout})`);
  const serverOptions: http.ServerOptions = {
    headersTimeout,
    requestTimeout,
    // Node checks both timeouts only this often (default 30 s): check often enough to honour them.
    connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(headersTimeout / 4))),
  };
  const server = http.createServer(serverOptions, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (body) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : body),
        (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${(err as Error)?.message ?? String(err)}\n`),
      );
      return;
    }
    if (path === '/') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('peercache: metrics at /metrics\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => reject(Object.assign(new Error(`metrics server cannot listen on ${host}:${options.port}: ${err.message}`, { cause: err }), { code: err.code })));
    server.listen({ host, port: options.port }, () => resolve());
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const shown = host.includes(':') ? `[${host}]` : host;
  return {
    host,
    port,
    url: `http://${shown}:${port}/metrics`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
