/** The embedded directory server's options, their defaults and checks, and the refusal to serve an open directory by accident. */
import type { DirectoryTls } from '../../tls.js';
import { ConfigError, InvalidArgumentError } from '../../errors.js';
import type { Logger } from '../../log.js';

function positive(name: string, v: number): number {
  if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidArgumentError(`${name} must be a positive integer, got ${v}`);
  return v;
}

export interface DirectoryServerOptions {
  /** Address to bind, exactly (default 127.0.0.1). */
  host?: string;
  /** Port; 0 picks a free one (see `address`). */
  port?: number;
  /**
   * When set, every connection's hello must carry this token. Required to bind a non-loopback
   * address unless `insecure` is set (as Redis' protected mode: no open directory by accident).
   */
  authToken?: string;
  /** Serve a non-loopback address without a token (trusted networks only; logged as a warning). */
  insecure?: boolean;
  /** Largest frame accepted (default 16 MiB). */
  maxFrameBytes?: number;
  /** Logger hook; without one the server prints nothing. */
  logger?: Logger;
  /**
   * A connection that sends nothing for this long is closed: no hello yet, or a client whose
   * heartbeats stopped (its host vanished without a FIN). Default 20 000 ms; 0 disables.
   */
  idleTimeoutMs?: number;
  /** listen() backlog (default 1024: dozens of nodes join at once). */
  backlog?: number;
  /** A connection must complete its hello (and token check) this soon after connecting (default 5 000 ms). */
  helloTimeoutMs?: number;
  /** Outgoing bytes (responses, events) queued for one connection before it is closed as not reading (default 64 MiB). */
  maxQueuedBytes?: number;
  /** Entries one node may own at once; publishes past it are refused (default 16 777 216). */
  maxEntriesPerNode?: number;
  /** Connections served at once; more are closed on arrival (default 4096). */
  maxConnections?: number;
  /**
   * Bytes (JSON) of all member records together (default 8 MiB): the member list a join answers
   * with must fit a client's frame (16 MiB by default), so the join that would pass this is
   * refused instead of every later join failing. Records over BIG_RECORD_BYTES may fill only
   * 3/4 of it: a few fat records cannot lock ordinary nodes out.
   */
  maxMemberBytes?: number;
  /**
   * Serve over TLS (certFile and keyFile, PEM): the token, member records and key locations are
   * encrypted and a captured hello cannot be replayed. Plaintext clients are refused. See tls.ts.
   */
  tls?: DirectoryTls;
  /**
   * Tenants: name → token. A connection whose hello carries a tenant's token joins that tenant's
   * own directory: its members, keys, events and replica are that tenant's alone, so one model's
   * nodes can neither publish under another's keys, read its locations, nor learn its region
   * access tokens. `authToken`, when also set, is the default tenant's (and the hosting node's).
   */
  tenants?: Record<string, string>;
}

export const DIRECTORY_SERVER_DEFAULTS = {
  helloTimeoutMs: 5_000,
  maxQueuedBytes: 64 * 1024 * 1024,
  maxEntriesPerNode: 16 * 1024 * 1024,
  maxConnections: 4096,
  maxMemberBytes: 8 * 1024 * 1024,
} as const;

/** A member record larger than this (JSON bytes) counts as big: big ones share 3/4 of maxMemberBytes. */
export const BIG_RECORD_BYTES = 16 * 1024;

/** Binding a non-loopback address without an auth token is refused (code ERR_AUTH_REQUIRED). */
export class AuthRequiredError extends ConfigError {
  override name = 'AuthRequiredError';
  override readonly code = 'ERR_AUTH_REQUIRED';
  constructor(host: string, port: number) {
    super(
      `refusing to serve the directory on ${host}:${port} without an auth token: other hosts could join, publish and learn region access tokens. ` +
        'Set the same secret on every node ({authToken} <secret>, or PEERCACHE_AUTH_TOKEN in the environment), or opt out on a trusted network with {insecure}',
    );
  }
}

/** The tenants' names and tokens, checked (non-empty, distinct tokens, none equal to authToken). */
export function checkTenants(options: DirectoryServerOptions): [string, string][] {
  const entries = Object.entries(options.tenants ?? {});
  const seen = new Set<string>(options.authToken !== undefined ? [options.authToken] : []);
  for (const [name, token] of entries) {
    if (name.length === 0 || typeof token !== 'string' || token.length === 0) throw new InvalidArgumentError(`tenant '${name}': a tenant needs a name and a non-empty token`);
    if (seen.has(token)) throw new InvalidArgumentError(`tenant '${name}': its token is also another tenant's (or authToken): tokens must differ`);
    seen.add(token);
  }
  return entries;
}

/** The numeric limits over their defaults; a RangeError names a bad one. */
export function checkLimits(options: DirectoryServerOptions): { -readonly [K in keyof typeof DIRECTORY_SERVER_DEFAULTS]: number } {
  const d = DIRECTORY_SERVER_DEFAULTS;
  return {
    helloTimeoutMs: positive('helloTimeoutMs', options.helloTimeoutMs ?? d.helloTimeoutMs),
    maxQueuedBytes: positive('maxQueuedBytes', options.maxQueuedBytes ?? d.maxQueuedBytes),
    maxEntriesPerNode: positive('maxEntriesPerNode', options.maxEntriesPerNode ?? d.maxEntriesPerNode),
    maxConnections: positive('maxConnections', options.maxConnections ?? d.maxConnections),
    maxMemberBytes: positive('maxMemberBytes', options.maxMemberBytes ?? d.maxMemberBytes),
  };
}
