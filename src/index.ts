/** peercache: a KV-cache page store over UCX one-sided READ, and the peercache-bench engine. */
export * from './transport/index.js';
