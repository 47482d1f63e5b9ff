/**
 * peercache: a KV-cache page store over UCX one-sided READ. This is the store's public API, named
 * export by export. The benchmark engine and its reports are `peercache/bench`; the data plane
 * under the store is `peercache/transport`; Redis and Prometheus load their clients only when used:
 * `peercache/redis`, `peercache/metrics`.
 */
export { PeerCacheStore } from './store/peer-cache-store.js';
export { ObjectStore, type ObjectStoreConfig } from './store/object-store.js';
export { StoreConfigError, DEFAULT_MAX_BYTES, type PeerCacheStoreConfig } from './store/config.js';
export type { StoreStats } from './store/stats.js';
export { HostKVPool, type HostKVPoolOptions, type HostIndices, type Layout } from './store/host-pool.js';
export type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from './store/types.js';
export { DirectoryServer } from './store/directory/server.js';
export { DirectoryError } from './store/directory/client.js';
export { openDirectory } from './store/directory/open.js';
export { connectDirectoryClient, openConfiguredDirectory, parseDirectoryChoice, parseRedisUrl, type DirectoryChoice, type RedisUrlParts } from './store/directory/url.js';
export type { RedisDirectoryOptions, RedisDirectoryStats } from './store/directory/redis.js';
export type { StoreMetricsSink, MetricsSource, MetricsServer, MetricsServerOptions } from './store/metrics.js';
export { PROTOCOLS, TransportError, type DataPlaneOptions, type Protocol } from './transport/types.js';
export { PeercacheError, ConfigError, InvalidArgumentError, ERROR_CODES, isErrorCode, type ErrorCode } from './errors.js';
export { WireError } from './framing.js';
export { createLogger, type Logger, type LogLevel } from './log.js';
// The sweep engine stays importable from the root, as the README has always shown it.
export { runSweep, SweepConfigError, DEFAULT_CONCURRENCIES, type SweepOptions, type HiCacheMode } from './bench/sweep.js';
export type { Report, Row, Meta, Host } from './bench/report/types.js';
