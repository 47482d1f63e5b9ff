/**
 * A Redis directory URL: `redis://[user:password@]host:port[/db][?options]` or `rediss://…` (TLS).
 * Options (query string): `prefix` (key prefix, default `peercache:`), `ttl_ms` (node liveness TTL,
 * default 5000), `poll_ms` (heartbeat and membership poll period, default min(1000, ttl/3)),
 * `timeout_ms` (per request, default 10000), `connect_timeout_ms` (default 5000).
 * Its own module so that url.ts (choosing a directory) and redis.ts (the client) both use it
 * without importing each other.
 */
import { InvalidArgumentError } from '../../errors.js';
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
  if (!/^\d+$/.test(v) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError(`${where}: ${name} must be a positive integer (ms), got '${v}'`);
  return n;
}

/** Parses a redis:// or rediss:// URL; throws a RangeError that names the (redacted) URL. */
export function parseRedisUrl(value: string): RedisUrlParts {
  const redacted = redactUrl(value);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError(`invalid directory URL '${redacted}': expected redis://[user:password@]host:port[/db] or rediss://…`);
  }
  const tls = url.protocol.toLowerCase() === 'rediss:';
  if (!tls && url.protocol.toLowerCase() !== 'redis:') throw new InvalidArgumentError(`invalid directory URL '${redacted}': scheme must be redis:// or rediss://`);
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (!host) throw new InvalidArgumentError(`invalid directory URL '${redacted}': no host`);
  const port = url.port ? Number(url.port) : 6379;
  const path = url.pathname.replace(/^\//, '');
  if (path !== '' && !/^\d{1,5}$/.test(path)) throw new InvalidArgumentError(`invalid directory URL '${redacted}': the path must be a database number (/0, /1, …), got '/${path}'`);
  const parts: RedisUrlParts = { tls, host, port, db: path === '' ? 0 : Number(path), redacted };
  if (url.username) parts.username = decodeURIComponent(url.username);
  if (url.password) parts.password = decodeURIComponent(url.password);
  for (const [k, v] of url.searchParams) {
    if (k === 'prefix') {
      if (v.length === 0) throw new InvalidArgumentError(`invalid directory URL '${redacted}': prefix must not be empty`);
      parts.prefix = v;
    } else if (Object.hasOwn(MS_OPTIONS, k)) {
      parts[MS_OPTIONS[k as keyof typeof MS_OPTIONS]] = positiveInt(v, k, `directory URL '${redacted}'`);
    } else {
      throw new InvalidArgumentError(`invalid directory URL '${redacted}': unknown option '${k}' (known: ${QUERY_KEYS.join(', ')})`);
    }
  }
  return parts;
}
