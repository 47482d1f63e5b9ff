/** peercache: a KV-cache page store over UCX one-sided READ, and the peercache-bench engine. */
export * from './transport/index.js';
export { PeerCacheStore } from './store/peer-cache-store.js';
export { StoreConfigError, type PeerCacheStoreConfig } from './store/config.js';
export type { StoreStats } from './store/stats.js';
export { HostKVPool, type HostKVPoolOptions, type HostIndices, type Layout } from './store/host-pool.js';
export type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from './store/types.js';
export { DirectoryServer } from './store/directory/server.js';
export { openDirectory } from './store/directory/open.js';
// Redis and Prometheus load their clients only when used: `peercache/redis`, `peercache/metrics`.
export { connectDirectoryClient, openConfiguredDirectory, parseDirectoryChoice, parseRedisUrl, type DirectoryChoice } from './store/directory/url.js';
export type { RedisDirectoryOptions, RedisDirectoryStats } from './store/directory/redis.js';
export type { StoreMetricsSink, MetricsSource, MetricsServer, MetricsServerOptions } from './store/metrics.js';
export { runSweep, SweepConfigError, DEFAULT_CONCURRENCIES, type SweepOptions, type HiCacheMode } from './bench/sweep.js';
export type { RowProgress } from './bench/engine/row.js';
export type { Report, Row, Meta, Host } from './bench/report/types.js';
export { SharedHistogram } from './bench/histogram.js';
export { createLogger, type Logger, type LogLevel } from './log.js';
