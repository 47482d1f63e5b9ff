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
import { isRedisUrl, parseRedisUrl, redactUrl, type RedisUrlParts } from './redis-url.js';

export { isRedisUrl, parseRedisUrl, redactUrl, type RedisUrlParts };

export type DirectoryChoice = { kind: 'embedded' } | { kind: 'redis'; url: string; parts: RedisUrlParts };

/** `embedded` (or nothing) → the embedded directory; a redis URL → Redis. Throws a RangeError otherwise. */
export function parseDirectoryChoice(value: string | undefined): DirectoryChoice {
  if (value === undefined || value === 'embedded') return { kind: 'embedded' };
  if (isRedisUrl(value)) return { kind: 'redis', url: value, parts: parseRedisUrl(value) };
  throw new RangeError(`invalid directory '${redactUrl(value)}': expected 'embedded', redis://host:port[/db] or rediss://host:port[/db]`);
}

export interface OpenConfiguredDirectoryOptions {
  /** 'embedded' (default) or a redis URL. */
  directory?: string;
  /** host:port of the embedded directory (required for 'embedded'). */
  discoveryAddr?: string;
  /** The embedded directory's shared token (Redis takes its password from the URL). */
  authToken?: string;
  /** Serve a non-loopback embedded directory without a token (see DirectoryServerOptions.insecure). */
  insecure?: boolean;
  logger?: Logger;
  /** Deadlines of the embedded directory's connect and requests (default 5 s / 10 s). */
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  /** Deadlines of the embedded server, when this node hosts it (see DirectoryServerOptions). */
  server?: DirectoryServerDeadlines;
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
    return { directory: await RedisDirectory.connect({ url: choice.url, logger: options.logger }), server: null };
  }
  if (typeof options.discoveryAddr !== 'string') throw new RangeError("the embedded directory needs discoveryAddr (host:port); or pass a redis:// directory URL");
  return openDirectory({
    discoveryAddr: options.discoveryAddr,
    authToken: options.authToken,
    insecure: options.insecure,
    logger: options.logger,
    connectTimeoutMs: options.connectTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
    helloTimeoutMs: options.server?.helloTimeoutMs,
    idleTimeoutMs: options.server?.idleTimeoutMs,
  });
}

/**
 * A directory client that does not join and never serves: for tools that only look keys up or
 * watch membership (scanners, dashboards). `target` is a redis URL or the embedded `host:port`.
 */
export async function connectDirectoryClient(target: string, options: { authToken?: string; logger?: Logger } = {}): Promise<Directory> {
  if (isRedisUrl(target)) {
    const { RedisDirectory } = await import('./redis.js');
    return RedisDirectory.connect({ url: target, logger: options.logger });
  }
  const { host, port } = parseDiscoveryAddr(target);
  return DirectoryClient.connect({ host, port, authToken: options.authToken, logger: options.logger });
}
