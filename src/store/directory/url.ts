/**
 * Choosing the directory from one string, as `--directory` and `PeerCacheStoreConfig.directoryUrl`
 * take it:
 *   - `embedded` (the default): the embedded server at `discoveryAddr` (see open.ts);
 *   - `redis://[user:password@]host:port[/db][?options]` or `rediss://…` (TLS): a Redis or Valkey
 *     the fleet already runs (see redis.ts). Options (query string): `prefix` (key
 *     prefix, default `peercache:`), `ttl_ms` (node liveness TTL, default 5000), `poll_ms`
 *     (heartbeat and membership poll period, default min(1000, ttl/3)), `timeout_ms` (per
 *     request, default 10000), `connect_timeout_ms` (default 5000).
 * The Redis client is loaded only when a Redis URL is given: embedded users never load it.
 */
import { openDirectory, parseDiscoveryAddr, type OpenedDirectory } from './open.js';
import { DirectoryClient } from './client.js';
import type { Directory } from '../types.js';
import type { Logger } from '../../log.js';
import type { DirectoryTls } from './tls.js';
import type { ReplicaOptions } from './replica.js';

export interface RedisUrlParts {
  tls: boolean;
  host: string;
  port: number;
  db: number;
  username?: string;
  password?: string;
  prefix?: string;
  ttlMs?: number;
  pollMs?: number;
  timeoutMs?: number;
  connectTimeoutMs?: number;
  /** The URL with its password masked: what messages and logs show. */
  redacted: string;
}

export type DirectoryChoice = { kind: 'embedded' } | { kind: 'redis'; url: string; parts: RedisUrlParts };

/** The URL's millisecond options and the fields they set. */
const MS_OPTIONS = { ttl_ms: 'ttlMs', poll_ms: 'pollMs', timeout_ms: 'timeoutMs', connect_timeout_ms: 'connectTimeoutMs' } as const;
const QUERY_KEYS = ['prefix', ...Object.keys(MS_OPTIONS)];

/** True when `value` names a Redis directory (redis:// or rediss://). */
export function isRedisUrl(value: string | undefined): value is string {
  return typeof value === 'string' && /^rediss?:\/\//i.test(value);
}

/** Masks the password of a redis URL (for messages); returns non-URLs as they are. */
export function redactUrl(value: string): string {
  return value.replace(/^(rediss?:\/\/)([^@/]*)@/i, (_m, scheme: string, cred: string) => {
    const i = cred.indexOf(':');
    return i < 0 ? `${scheme}***@` : `${scheme}${cred.slice(0, i)}:***@`;
  });
}

function positiveInt(v: string, name: string, where: string): number {
  const n = Number(v);
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new RangeError(`${where}: ${name} must be a positive integer (ms), got '${v}'`);
  return n;
}

/** Parses a redis:// or rediss:// URL; throws a RangeError that names the (redacted) URL. */
export function parseRedisUrl(value: string): RedisUrlParts {
  const redacted = redactUrl(value);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RangeError(`invalid directory URL '${redacted}': expected redis://[user:password@]host:port[/db] or rediss://…`);
  }
  const tls = url.protocol.toLowerCase() === 'rediss:';
  if (!tls && url.protocol.toLowerCase() !== 'redis:') throw new RangeError(`invalid directory URL '${redacted}': scheme must be redis:// or rediss://`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new RangeError(`invalid directory URL '${redacted}': no host`);
  const port = url.port ? Number(url.port) : 6379;
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,5}$/.test(path)) throw new RangeError(`invalid directory URL '${redacted}': the path must be a database number (/0, /1, …), got '/${path}'`);
  const parts: RedisUrlParts = { tls, host, port, db: path === '' ? 0 : Number(path), redacted };
  if (url.username) parts.username = decodeURIComponent(url.username);
  if (url.password) parts.password = decodeURIComponent(url.password);
  for (const [k, v] of url.searchParams) {
    if (k === 'prefix') {
      if (v.length === 0) throw new RangeError(`invalid directory URL '${redacted}': prefix must not be empty`);
      parts.prefix = v;
    } else if (Object.hasOwn(MS_OPTIONS, k)) {
      parts[MS_OPTIONS[k as keyof typeof MS_OPTIONS]] = positiveInt(v, k, `directory URL '${redacted}'`);
    } else {
      throw new RangeError(`invalid directory URL '${redacted}': unknown option '${k}' (known: ${QUERY_KEYS.join(', ')})`);
    }
  }
  return parts;
}

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
  if (typeof options.discoveryAddr !== 'string') throw new RangeError("the embedded directory needs discoveryAddr (host:port); or pass a redis:// directory URL");
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
