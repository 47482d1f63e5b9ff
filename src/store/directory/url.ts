/**
 * Choosing the directory from one string, as `--directory` and `PeerCacheStoreConfig.directoryUrl`
 * take it:
 *   - `embedded` (the default): the embedded server at `discoveryAddr` (see open.ts);
 *   - `redis://…` or `rediss://…` (TLS): a Redis or Valkey the fleet already runs (see redis.ts;
 *     the URL's form and options in redis-url.ts).
 * The Redis client is loaded only when a Redis URL is given: embedded users never load it.
 */
import { openDirectory, parseDiscoveryAddr, type OpenedDirectory } from './open.js';
import { DirectoryClient } from './client.js';
import type { Directory } from '../types.js';
import type { Logger } from '../../log.js';
import type { DirectoryTls } from '../../tls.js';
import type { ReplicaOptions } from './replica.js';
import { isRedisUrl, parseRedisUrl, redactUrl, type RedisUrlParts } from './redis-url.js';
import { InvalidArgumentError } from '../../errors.js';

export { isRedisUrl, parseRedisUrl, redactUrl, type RedisUrlParts };

export type DirectoryChoice = { kind: 'embedded' } | { kind: 'redis'; url: string; parts: RedisUrlParts };

/** `embedded` (or nothing) → the embedded directory; a redis URL → Redis. Throws a RangeError otherwise. */
export function parseDirectoryChoice(value: string | undefined): DirectoryChoice {
  if (value === undefined || value === 'embedded') return { kind: 'embedded' };
  if (isRedisUrl(value)) return { kind: 'redis', url: value, parts: parseRedisUrl(value) };
  throw new InvalidArgumentError(`invalid directory '${redactUrl(value)}': expected 'embedded', redis://host:port[/db] or rediss://host:port[/db]`);
}

export interface OpenConfiguredDirectoryOptions {
  /** 'embedded' (default) or a redis URL. */
  directory?: string;
  /** host:port of the embedded directory (required for 'embedded'). */
  discoveryAddr?: string;
  /** The embedded directory's shared token (Redis takes its password from the URL). */
  authToken?: string;
  /** TLS for the embedded directory (tls.ts); Redis takes rediss:// in its URL. */
  tls?: DirectoryTls;
  /** Serve a non-loopback embedded directory without a token (see DirectoryServerOptions.insecure). */
  insecure?: boolean;
  logger?: Logger;
  /** Deadlines of the directory's connect and requests, embedded or Redis (default 5 s / 10 s; for Redis they override the URL's connect_timeout_ms / timeout_ms). */
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Deadlines of the embedded server, when this node hosts it (see DirectoryServerOptions). */
  server?: DirectoryServerDeadlines;
  /** Keep a key replica of the embedded directory (replica.ts); the Redis directory keeps none (every lookup is a round trip). */
  replica?: ReplicaOptions;
}

/** The embedded server's hello and idle deadlines (defaults 5 s and 20 s). */
export interface DirectoryServerDeadlines {
  helloTimeoutMs?: number;
  idleTimeoutMs?: number;
}

/** Opens the chosen directory for a node that will join it (what PeerCacheStore.open does). */
export async function openConfiguredDirectory(options: OpenConfiguredDirectoryOptions): Promise<OpenedDirectory> {
  const choice = parseDirectoryChoice(options.directory);
  if (choice.kind === 'redis') {
    const { RedisDirectory } = await import('./redis.js');
    // The store's directoryTimeoutMs bounds Redis calls too (it used to stop here: the URL's 10 s default ruled).
    const redis = await RedisDirectory.connect({ url: choice.url, logger: options.logger, connectTimeoutMs: options.connectTimeoutMs, requestTimeoutMs: options.requestTimeoutMs });
    return { directory: redis, server: null };
  }
  if (typeof options.discoveryAddr !== 'string') throw new InvalidArgumentError("the embedded directory needs discoveryAddr (host:port); or pass a redis:// directory URL");
  return openDirectory({
    discoveryAddr: options.discoveryAddr,
    authToken: options.authToken,
    tls: options.tls,
    insecure: options.insecure,
    logger: options.logger,
    connectTimeoutMs: options.connectTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
    helloTimeoutMs: options.server?.helloTimeoutMs,
    idleTimeoutMs: options.server?.idleTimeoutMs,
    replica: options.replica,
  });
}

/**
 * A directory client that does not join and never serves: for tools that only look keys up or
 * watch membership (scanners, dashboards). `target` is a redis URL or the embedded `host:port`.
 */
export async function connectDirectoryClient(target: string, options: { authToken?: string; tls?: DirectoryTls; logger?: Logger } = {}): Promise<Directory> {
  if (isRedisUrl(target)) {
    const { RedisDirectory } = await import('./redis.js');
    return RedisDirectory.connect({ url: target, logger: options.logger });
  }
  const { host, port } = parseDiscoveryAddr(target);
  return DirectoryClient.connect({ host, port, authToken: options.authToken, tls: options.tls, logger: options.logger });
}
