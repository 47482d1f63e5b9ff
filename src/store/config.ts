/**
 * PeerCacheStore's configuration: its options, their checks, and the checks of call arguments.
 * The known-key list is derived from the config type (CONFIG_KEYS below), so a new option cannot
 * be forgotten there.
 */
import type { Logger } from '../log.js';
import type { DataPlaneOptions } from '../transport/types.js';
import { parseDirectoryChoice, type DirectoryServerDeadlines } from './directory/url.js';
import { HostKVPool } from './host-pool.js';
import type { StoreMetricsSink } from './metrics.js';
import type { Directory } from './types.js';
import type { ReplicaOptions } from './directory/replica.js';
import type { DirectoryTls } from '../tls.js';
import { ConfigError, InvalidArgumentError } from '../errors.js';

export interface PeerCacheStoreConfig extends DataPlaneOptions {
  /** host:port of the embedded discovery/directory service; the first node there serves it. Not needed with a Redis directoryUrl. */
  discoveryAddr?: string;
  /**
   * Which directory: 'embedded' (default, at discoveryAddr) or a Redis/Valkey URL,
   * redis://[user:password@]host:port[/db][?prefix=&ttl_ms=&poll_ms=] or rediss://… (see directory-url.ts).
   */
  directoryUrl?: string;
  /** The host KV pool: the source of sets and the destination of gets (can also be registered later). */
  hostPool?: HostKVPool;
  /** Bytes of the published pool this node serves reads from; 0 = this node publishes nothing. */
  globalSegmentBytes?: number;
  /** Bytes per published slot when no host pool gives the page size (legacy set/get only). */
  slotBytes?: number;
  /** Guard: host pool + published pool may not exceed this (default 8 GiB). */
  maxBytes?: number;
  nodeId?: string;
  authToken?: string;
  /**
   * TLS for the embedded directory, certificates by path: certFile/keyFile to serve it (any node
   * may), caFile to verify it. Without it the token crosses the network in cleartext (docs/security.md).
   */
  directoryTls?: DirectoryTls;
  /** TLS for the tcp data plane (protocol 'tcp'): certFile/keyFile for this node's server, caFile to verify peers. */
  tcpTls?: DirectoryTls;
  /** Host the embedded directory on a non-loopback address without a token (trusted networks only). */
  insecure?: boolean;
  tpRank?: number;
  ppRank?: number;
  ppSize?: number;
  /** Cache key locations for batchGetV1 (default on; safe: READs are validated). */
  locationCache?: boolean;
  locationCacheEntries?: number;
  /**
   * Keep a local replica of the embedded directory's key locations, so batchExists (and a get's
   * lookups) answer without a round trip; stale by at most maxStalenessMs (default 1000 ms), and
   * a stale "present" costs a miss, never wrong bytes. Off by default: it holds every key of the
   * directory (~200 bytes each, up to maxEntries, default 1 048 576) and the directory pushes every
   * change to it. `true` for the defaults. No effect with Redis or on the node that hosts the
   * directory (it reads the entries in-process anyway).
   */
  directoryReplica?: boolean | ReplicaOptions;
  /** Deadline of one data-plane batch (default 10 s). */
  timeoutMs?: number;
  /** Deadline of a directory connect or request (default 5 s to connect, 10 s per request). */
  directoryTimeoutMs?: number;
  /**
   * Hello and idle deadlines of the embedded directory when this node hosts it (defaults 5 s / 20 s).
   * Raise them where the members may be starved for seconds (a benchmark's 64 workers on 2 cores).
   */
  directoryServer?: DirectoryServerDeadlines;
  /** Attributes published with this node (two-host runs check layout/page size/working set at join). */
  attributes?: Record<string, string | number | boolean>;
  /** A directory to use instead of the embedded one (e.g. Redis). */
  directory?: Directory;
  /** Prometheus metrics (metrics.ts createStoreMetrics()); counters are read at scrape time. */
  metrics?: StoreMetricsSink;
  logger?: Logger;
}

/** Every key of PeerCacheStoreConfig, exactly: the compiler rejects a missing or an extra one. */
const CONFIG_KEY_TABLE = {
  discoveryAddr: true, protocol: true, localHost: true, deviceName: true, devices: true, ibPort: true, gidIndex: true, hostPool: true,
  globalSegmentBytes: true, slotBytes: true, maxBytes: true, nodeId: true, authToken: true, directoryTls: true, tcpTls: true, insecure: true, tpRank: true, ppRank: true, ppSize: true,
  locationCache: true, locationCacheEntries: true, directoryReplica: true, timeoutMs: true, directoryTimeoutMs: true, directoryServer: true, attributes: true, directory: true,
  logger: true, directoryUrl: true, metrics: true,
} as const satisfies Record<keyof PeerCacheStoreConfig, true>;

export const CONFIG_KEYS: ReadonlySet<string> = new Set(Object.keys(CONFIG_KEY_TABLE));

export const DEFAULT_MAX_BYTES = 8 * 2 ** 30;

export class StoreConfigError extends ConfigError {
  override name = 'StoreConfigError';
}

/** The largest published pool over tcp (Node 20's Buffer MAX_LENGTH: one JS buffer holds it). */
export const MAX_TCP_SEGMENT_BYTES = 2 ** 32;

function checkInt(name: string, v: unknown, min: number): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < min)) {
    throw new StoreConfigError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  }
}

/** Throws a StoreConfigError naming the first bad option. */
export function validateConfig(config: PeerCacheStoreConfig): void {
  if (config === null || typeof config !== 'object') throw new StoreConfigError('PeerCacheStore.open(config): config must be an object');
  const unknown = Object.keys(config).filter((k) => !CONFIG_KEYS.has(k));
  if (unknown.length) throw new StoreConfigError(`unknown config key(s): ${unknown.join(', ')} (known: ${[...CONFIG_KEYS].join(', ')})`);
  if (!['rdma', 'shm', 'tcp'].includes(config.protocol)) throw new StoreConfigError(`protocol must be rdma, shm or tcp, got ${String(config.protocol)}`);
  if (config.tcpTls !== undefined && config.protocol !== 'tcp') throw new StoreConfigError(`tcpTls is TLS for the tcp data plane; this node speaks ${config.protocol}`);
  let redis = false;
  try {
    redis = parseDirectoryChoice(config.directoryUrl).kind === 'redis';
  } catch (err) {
    throw new StoreConfigError((err as Error).message);
  }
  if (!config.directory && !redis && typeof config.discoveryAddr !== 'string') throw new StoreConfigError('discoveryAddr (host:port) is required (or a redis:// directoryUrl)');
  checkInt('globalSegmentBytes', config.globalSegmentBytes, 0);
  if ((config.globalSegmentBytes ?? 0) > MAX_TCP_SEGMENT_BYTES && config.protocol === 'tcp') {
    throw new StoreConfigError(`globalSegmentBytes (--global-segment) over --protocol tcp must be at most 4 GiB, got ${config.globalSegmentBytes}: the tcp transport keeps the published pool in one JavaScript buffer, and Node 20 limits those to 4 GiB (shm and rdma have no such limit)`);
  }
  checkInt('slotBytes', config.slotBytes, 1);
  checkInt('maxBytes', config.maxBytes, 1);
  checkInt('tpRank', config.tpRank, 0);
  checkInt('ppRank', config.ppRank, 0);
  checkInt('ppSize', config.ppSize, 1);
  checkInt('locationCacheEntries', config.locationCacheEntries, 0);
  const replica = config.directoryReplica;
  if (replica !== undefined && typeof replica !== 'boolean') {
    if (typeof replica !== 'object' || replica === null) throw new StoreConfigError('directoryReplica must be a boolean or { maxEntries?, maxStalenessMs? }');
    checkInt('directoryReplica.maxEntries', replica.maxEntries, 1);
    if (replica.maxStalenessMs !== undefined && !(Number.isFinite(replica.maxStalenessMs) && replica.maxStalenessMs > 0)) throw new StoreConfigError('directoryReplica.maxStalenessMs must be > 0');
  }
  checkInt('ibPort', config.ibPort, 1);
  if (config.hostPool !== undefined && !(config.hostPool instanceof HostKVPool)) throw new StoreConfigError('hostPool must be a HostKVPool');
  if (config.timeoutMs !== undefined && !(config.timeoutMs > 0)) throw new StoreConfigError('timeoutMs must be > 0');
  if (config.directoryTimeoutMs !== undefined && !(config.directoryTimeoutMs > 0)) throw new StoreConfigError('directoryTimeoutMs must be > 0');
  for (const name of ['helloTimeoutMs', 'idleTimeoutMs'] as const) {
    const v = config.directoryServer?.[name];
    if (v !== undefined && !(Number.isFinite(v) && v >= 0 && (name === 'idleTimeoutMs' || v > 0))) throw new StoreConfigError(`directoryServer.${name} must be a number of milliseconds${name === 'helloTimeoutMs' ? ' > 0' : ' >= 0 (0: no idle deadline)'}`);
  }
}

/** A call's keys: an array of non-empty strings (a TypeError naming the first bad one otherwise). */
export function assertKeys(keys: readonly string[], what: string): void {
  if (!Array.isArray(keys)) throw new InvalidArgumentError(`${what}: keys must be an array of strings`);
  for (let i = 0; i < keys.length; i++) {
    if (typeof keys[i] !== 'string' || keys[i].length === 0) throw new InvalidArgumentError(`${what}: keys[${i}] must be a non-empty string`);
  }
}
