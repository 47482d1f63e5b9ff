/**
 * The embedded discovery + directory server: membership and the key → Location map, in one
 * process, on one event loop (every operation is applied atomically between I/O callbacks).
 *
 * Departures from the original PeerCache's discovery server (which kept members by TTL, merged
 * stale masters and spoke unversioned frames), on purpose:
 * - a node is its connection: when the connection that joined a node closes (leave, crash,
 *   SIGKILL) the node and all its entries go at once, and every other member gets `node-left`;
 *   no TTL guessing, no union of stale masters;
 * - puts and deletes are conditional (first live publisher wins, a node replaces its own entry
 *   only with a generation at least as new; removal only where owner and generation match);
 * - frames are versioned and size-limited, connections authenticate with an optional token, and a
 *   bad connection is closed with a logged reason without affecting anyone else;
 * - all connections share one event loop (no thread per connection); requests are pipelined.
 */
import net from 'node:net';
import tls from 'node:tls';
import { serverContext, type DirectoryTls } from '../../tls.js';
import { createHash, timingSafeEqual } from 'node:crypto';
import type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from '../types.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, FrameKind, PROTOCOL_VERSION, WireError, checkFrameLimit, decodeJson, encodeFrame, frameKindName } from '../../framing.js';
import { LIMITS, checkRequest, encodeKeyChanges, encodeLookupResult, parseNodeInfo, parseRequest } from './messages.js';
import type { Frame } from '../../framing.js';
import { ConfigError, InvalidArgumentError, PeercacheError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import type { Request, RequestOf, ResultMap } from './messages.js';
import { isLoopback } from '../loopback.js';
import { printable } from '../printable.js';

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
function checkTenants(options: DirectoryServerOptions): [string, string][] {
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
function checkLimits(options: DirectoryServerOptions): { -readonly [K in keyof typeof DIRECTORY_SERVER_DEFAULTS]: number } {
  const d = DIRECTORY_SERVER_DEFAULTS;
  return {
    helloTimeoutMs: positive('helloTimeoutMs', options.helloTimeoutMs ?? d.helloTimeoutMs),
    maxQueuedBytes: positive('maxQueuedBytes', options.maxQueuedBytes ?? d.maxQueuedBytes),
    maxEntriesPerNode: positive('maxEntriesPerNode', options.maxEntriesPerNode ?? d.maxEntriesPerNode),
    maxConnections: positive('maxConnections', options.maxConnections ?? d.maxConnections),
    maxMemberBytes: positive('maxMemberBytes', options.maxMemberBytes ?? d.maxMemberBytes),
  };
}

export interface DirectoryServerStats {
  members: number;
  entries: number;
  connections: number;
  requests: number;
  /** Sessions keeping a key replica (every change is pushed to each). */
  replicas: number;
  /** Connections closed for a protocol violation, by reason code. */
  framesRejected: Record<string, number>;
}

/** An application-level refusal of one request: answered with an error frame, the connection stays. */
/** A request the directory refuses (membership or ownership rules); the session stays open. */
class DirectoryRequestError extends PeercacheError {
  override name = 'DirectoryRequestError';
  constructor(message: string) {
    super('ERR_REFUSED', message);
  }
}

/** One party of the directory: a socket connection or an in-process (local) directory. */
interface Session {
  readonly label: string;
  /** The node this session joined, if any. */
  nodeId: string | null;
  /** Pushes an event; `frame` encodes it once for all sockets. */
  deliver(event: DirectoryEvent, frame: () => Buffer): void;
  /** Pushes key changes (encoded once for all watchers) to a session that watches; absent where a session cannot watch. */
  deliverKeys?(frame: () => Buffer): void;
}

interface Member {
  info: NodeInfo;
  session: Session;
  /** JSON bytes of `info`, counted against maxMemberBytes. */
  bytes: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 20_000;
/** Entries per snapshot frame of a watch (4096 keys of the longest allowed stay ~4.5 MB, under the default frame limit). */
const SNAPSHOT_CHUNK = 4096;
/** Bytes queued on a watcher's socket before its snapshot waits for a drain. */
const SNAPSHOT_HIGH_WATER = 4 * 1024 * 1024;

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class DirectoryServer {
  private readonly members = new Map<string, Member>();
  private readonly entries = new Map<string, Location>();
  /** nodeId → its keys, so a departure removes exactly its entries. */
  private readonly byNode = new Map<string, Set<string>>();
  /** Sessions past hello: they receive events. */
  private readonly sessions = new Set<Session>();
  private readonly connections = new Set<Connection>();
  private readonly locals = new Set<LocalDirectory>();
  /** Sessions that keep a replica of the entries: every change is pushed to them (replica.ts). */
  private readonly watchers = new Set<Session>();
  private readonly rejected: Record<string, number> = {};
  private requests = 0;
  /** Sum of the members' record bytes, and of the big ones' (see maxMemberBytes). */
  private memberBytes = 0;
  private bigMemberBytes = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private sweeper: NodeJS.Timeout | null = null;
  readonly maxFrameBytes: number;
  readonly idleTimeoutMs: number;
  readonly helloTimeoutMs: number;
  readonly maxQueuedBytes: number;
  readonly maxEntriesPerNode: number;
  readonly maxConnections: number;
  readonly maxMemberBytes: number;
  private readonly tokenDigest: Buffer | null;
  /** The tenants' directories and their tokens' digests (empty without tenants). */
  private readonly tenantCores: { name: string; digest: Buffer; core: DirectoryServer }[] = [];
  /** Set when serving TLS: every accepted socket is wrapped before it is read. */
  private secureContext: tls.SecureContext | null = null;
  private readonly log: Logger;

  private constructor(
    private readonly server: net.Server,
    readonly address: { host: string; port: number },
    options: DirectoryServerOptions,
  ) {
    this.maxFrameBytes = checkFrameLimit(options.maxFrameBytes);
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
    const limits = checkLimits(options);
    this.helloTimeoutMs = limits.helloTimeoutMs;
    this.maxQueuedBytes = limits.maxQueuedBytes;
    this.maxEntriesPerNode = limits.maxEntriesPerNode;
    this.maxConnections = limits.maxConnections;
    this.maxMemberBytes = limits.maxMemberBytes;
    this.tokenDigest = options.authToken !== undefined ? digest(options.authToken) : null;
    this.log = options.logger ?? silentLogger;
    server.on('connection', (socket) => this.accept(socket));
    server.on('error', (err) => this.log.error(`directory server: ${err.message}`));
    const period = Math.min(this.helloTimeoutMs, this.idleTimeoutMs > 0 ? this.idleTimeoutMs : Infinity);
    this.sweeper = setInterval(() => this.sweep(), Math.max(50, Math.min(1000, period / 4)));
    this.sweeper.unref();
  }

  /** Binds exactly `host:port` and starts serving. Rejects with the listen error (its `code` kept). */
  static async listen(options: DirectoryServerOptions = {}): Promise<DirectoryServer> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port ?? 0;
    checkFrameLimit(options.maxFrameBytes);
    checkLimits(options); // before binding: a bad option must not leave a listening socket behind
    const tenants = checkTenants(options);
    const secureContext = options.tls ? serverContext(options.tls) : null;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError(`port must be in 0..65535, got ${port}`);
    if (options.authToken !== undefined && options.authToken.length === 0) throw new InvalidArgumentError('authToken must not be empty');
    if (options.authToken === undefined && tenants.length === 0 && !isLoopback(host)) {
      if (!options.insecure) throw new AuthRequiredError(host, port);
      options.logger?.warn(`directory server on ${host}:${port} runs WITHOUT authentication (insecure): any host that reaches this port can join, publish and learn region access tokens`);
    }
    const server = net.createServer({ noDelay: true, keepAlive: true, keepAliveInitialDelay: 5000 });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        const e = new Error(`directory server cannot listen on ${host}:${port}: ${err.message}`, { cause: err });
        reject(Object.assign(e, { code: err.code }));
      };
      server.once('error', onError);
      server.listen({ host, port, backlog: options.backlog ?? 1024, exclusive: true }, () => {
        server.off('error', onError);
        resolve();
      });
    });
    const bound = server.address() as net.AddressInfo;
    const ds = new DirectoryServer(server, { host: bound.address, port: bound.port }, options);
    ds.secureContext = secureContext;
    for (const [name, token] of tenants) {
      // A tenant's directory: the same code and limits, fed connections by this one after their hello.
      const { tenants: _t, authToken: _a, ...rest } = options;
      const core = new DirectoryServer(net.createServer(), ds.address, { ...rest, authToken: token });
      ds.tenantCores.push({ name, digest: digest(token), core });
    }
    ds.log.info(`directory server listening on ${bound.address}:${bound.port}${secureContext ? ' (TLS)' : ''}`);
    return ds;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** A tenant's directory (its stats, or a local directory in it), undefined for an unknown name. */
  tenant(name: string): DirectoryServer | undefined {
    return this.tenantCores.find((t) => t.name === name)?.core;
  }

  stats(): DirectoryServerStats {
    return {
      members: this.members.size,
      entries: this.entries.size,
      connections: this.connections.size,
      requests: this.requests,
      replicas: this.watchers.size,
      framesRejected: { ...this.rejected },
    };
  }

  /**
   * A Directory served by this process without a socket (the short circuit for the node that
   * hosts the server). Its liveness is its own: close() removes its node; closing the server
   * makes its calls fail.
   */
  localDirectory(): Directory {
    if (this.closed) throw new PeercacheError('ERR_CLOSED', 'directory server is closed');
    const local = new LocalDirectory(this);
    this.locals.add(local);
    this.sessions.add(local.session);
    return local;
  }

  /** Stops listening, closes every connection (their nodes are gone) and resolves when all are closed. */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closed = true;
    if (this.sweeper) clearInterval(this.sweeper);
    this.closing = new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      // Everyone is disconnected at once: no node-left events, just an empty directory.
      for (const local of this.locals) local.detach('directory server closed');
      this.locals.clear();
      this.sessions.clear();
      this.watchers.clear();
      this.members.clear();
      this.memberBytes = 0;
      this.bigMemberBytes = 0;
      this.entries.clear();
      this.byNode.clear();
      for (const conn of this.connections) conn.shutdown('directory server shutting down');
    });
    const cores = this.tenantCores.map((t) => t.core.close());
    if (cores.length > 0) this.closing = Promise.all([this.closing, ...cores]).then(() => undefined);
    this.log.info(`directory server on ${this.address.host}:${this.address.port} closing`);
    return this.closing;
  }

  // --- internals shared with Connection and LocalDirectory ------------------------------------

  /** @internal The directory a hello's token opens: this one, a tenant's, or a refusal. */
  directoryFor(token: string | undefined): DirectoryServer | 'missing' | 'wrong' {
    if (token !== undefined && this.tenantCores.length > 0) {
      const d = digest(token);
      let found: DirectoryServer | null = null;
      // Every digest compared (constant time, no early exit): which tenant matched is not timed.
      for (const t of this.tenantCores) if (timingSafeEqual(d, t.digest)) found = t.core;
      if (found !== null) return found;
    }
    if (this.tokenDigest === null && this.tenantCores.length > 0) return token === undefined ? 'missing' : 'wrong';
    const own = this.tokenMatches(token);
    return own === 'ok' ? this : own;
  }

  /** @internal A connection moves to the tenant directory its hello opened. */
  adopt(conn: Connection, from: DirectoryServer): void {
    from.connections.delete(conn);
    this.connections.add(conn);
  }

  /** @internal */
  forgetConnection(conn: Connection): void {
    this.connections.delete(conn);
  }

  /** Connections of this directory and of its tenants' (maxConnections bounds them together). */
  private connectionCount(): number {
    let n = this.connections.size;
    for (const t of this.tenantCores) n += t.core.connections.size;
    return n;
  }

  /** @internal */
  tokenMatches(token: string | undefined): 'ok' | 'missing' | 'wrong' {
    if (this.tokenDigest === null) return 'ok';
    if (token === undefined) return 'missing';
    // Compare fixed-length digests: constant time whatever the token's length.
    return timingSafeEqual(digest(token), this.tokenDigest) ? 'ok' : 'wrong';
  }

  /** @internal */
  countRejected(code: string): void {
    this.rejected[code] = (this.rejected[code] ?? 0) + 1;
  }

  /** @internal */
  logLine(level: 'debug' | 'info' | 'warn' | 'error', message: string): void {
    this.log[level](message);
  }

  /** @internal Registers a session that passed hello. */
  admit(session: Session): void {
    this.sessions.add(session);
  }

  /** @internal A session went away: its node (if any) leaves with all its entries. */
  drop(session: Session, reason: string): void {
    this.sessions.delete(session);
    this.watchers.delete(session);
    this.leave(session, reason);
  }

  /** @internal The session's node leaves; the session itself stays (it still gets events). */
  leave(session: Session, reason: string): void {
    if (session.nodeId === null) return;
    const id = session.nodeId;
    session.nodeId = null;
    this.removeNode(id, reason);
  }

  /** @internal */
  forgetLocal(local: LocalDirectory): void {
    this.locals.delete(local);
    this.drop(local.session, 'left');
  }

  /** @internal Applies one request (hello excluded) for a session; throws DirectoryRequestError on refusal. */
  execute<O extends Exclude<Request['op'], 'hello'>>(session: Session, req: RequestOf<O>): ResultMap[O];
  execute(session: Session, req: Exclude<Request, { op: 'hello' }>): ResultMap[keyof ResultMap] {
    this.requests++;
    switch (req.op) {
      case 'join':
        return this.join(session, req.node);
      case 'lookup': {
        const keys = req.keys;
        const out = new Array<Location | null>(keys.length);
        for (let i = 0; i < keys.length; i++) out[i] = this.entries.get(keys[i]) ?? null;
        return out;
      }
      case 'publish':
        return this.publish(this.joinedNode(session, 'publish'), req.entries);
      case 'remove':
        return this.remove(this.joinedNode(session, 'remove'), req.entries);
      case 'node':
        return this.members.get(req.nodeId)?.info ?? null;
      case 'members':
        return this.memberList();
      case 'leave':
        this.leave(session, 'left');
        return true;
      case 'ping':
        return true;
      case 'watch':
        // Connections stream their snapshot themselves (Connection.watch); an in-process directory reads the entries directly.
        throw new DirectoryRequestError('watch is for socket sessions; the in-process directory answers lookupLocal() directly');
      case 'unwatch':
        this.watchers.delete(session);
        return true;
    }
  }

  /** @internal Entries held now (a watch is refused when its replica could not hold them). */
  get entryCount(): number {
    return this.entries.size;
  }

  /** @internal A live view of the entries, for a watcher's snapshot (Map iteration sees later changes in order; see Connection.watch). */
  entryIterator(): IterableIterator<[string, Location]> {
    return this.entries.entries();
  }

  /** @internal From now on every change is pushed to this session. */
  addWatcher(session: Session): void {
    this.watchers.add(session);
  }

  /** @internal In-process replica read: the entries themselves (copies), no round trip. */
  lookupNow(keys: readonly string[]): (Location | null)[] {
    const out = new Array<Location | null>(keys.length);
    for (let i = 0; i < keys.length; i++) {
      const l = this.entries.get(keys[i]);
      out[i] = l === undefined ? null : { nodeId: l.nodeId, offset: l.offset, length: l.length, generation: l.generation };
    }
    return out;
  }

  /**
   * Pushes changed keys (null: removed) to every watcher, before the request that made them is
   * answered. A watcher gets exactly what its lookups could see: with per-session access rules
   * (namespaces), filter here and in Connection.watch's snapshot, the two places keys leave.
   */
  private pushChanges(keys: string[], locations: (Location | null)[]): void {
    if (keys.length === 0) return;
    let frame: Buffer | null = null;
    const encode = (): Buffer => (frame ??= encodeFrame(FrameKind.Event, 0, encodeKeyChanges(keys, locations), Number.MAX_SAFE_INTEGER));
    for (const w of this.watchers) w.deliverKeys?.(encode);
  }

  private memberList(): NodeInfo[] {
    return Array.from(this.members.values(), (m) => m.info);
  }

  private join(session: Session, node: NodeInfo): NodeInfo[] {
    const existing = this.members.get(node.nodeId);
    if (existing && existing.session !== session) {
      throw new DirectoryRequestError(
        `nodeId '${printable(node.nodeId)}' is already in use by a live member (connected from ${existing.session.label}); ` +
          'if that node died, its entry goes when its connection closes or times out',
      );
    }
    if (session.nodeId !== null && session.nodeId !== node.nodeId) {
      throw new DirectoryRequestError(`this connection already joined as '${session.nodeId}'; one node per connection`);
    }
    // Every join answers with the whole member list: their sum stays under what a client accepts.
    const bytes = Buffer.byteLength(JSON.stringify(node), 'utf8');
    const big = bytes > BIG_RECORD_BYTES;
    const prior = existing?.bytes ?? 0;
    const priorBig = prior > BIG_RECORD_BYTES ? prior : 0;
    const total = this.memberBytes - prior + bytes;
    const bigTotal = this.bigMemberBytes - priorBig + (big ? bytes : 0);
    if (total > this.maxMemberBytes || (big && bigTotal > Math.floor((this.maxMemberBytes * 3) / 4))) {
      throw new DirectoryRequestError(
        `join refused: the member records would take ${total} bytes, ${big ? `big ones (over ${BIG_RECORD_BYTES} bytes) ${bigTotal}, ` : ''}` +
          `past the directory's bound of ${this.maxMemberBytes} bytes${big ? ' (3/4 of it for big records)' : ''} (maxMemberBytes); this node's record is ${bytes} bytes: ` +
          'make it smaller (fewer or shorter attributes) or raise maxMemberBytes together with every client\'s maxFrameBytes',
      );
    }
    this.memberBytes = total;
    this.bigMemberBytes = bigTotal;
    // A re-join from the same connection updates the node's info (and tells the others again).
    this.members.set(node.nodeId, { info: node, session, bytes });
    session.nodeId = node.nodeId;
    this.log.info(`directory: node '${printable(node.nodeId)}' joined from ${session.label} (${this.members.size} members)`);
    this.broadcast({ type: 'node-joined', node }, session);
    return this.memberList();
  }

  /** The node a session joined as: only that node's entries may be published or removed by it. */
  private joinedNode(session: Session, op: string): string {
    if (session.nodeId === null) throw new DirectoryRequestError(`${op} refused: this connection has not joined as a node`);
    return session.nodeId;
  }

  private publish(nodeId: string, entries: readonly DirectoryEntry[]): boolean[] {
    const out = new Array<boolean>(entries.length);
    const watched = this.watchers.size > 0;
    const changedKeys: string[] = [];
    const changed: Location[] = [];
    for (let i = 0; i < entries.length; i++) {
      const { key, location } = entries[i];
      // A session publishes for its own node only (no squatting another member's keys or
      // generations); only live members may own entries.
      if (location.nodeId !== nodeId || !this.members.has(location.nodeId)) {
        out[i] = false;
        continue;
      }
      const cur = this.entries.get(key);
      if (cur === undefined) {
        const owned = this.ownedBy(location.nodeId);
        if (owned.size >= this.maxEntriesPerNode) {
          out[i] = false;
          continue;
        }
        this.entries.set(key, location);
        owned.add(key);
        out[i] = true;
        if (watched) {
          changedKeys.push(key);
          changed.push(location);
        }
      } else if (cur.nodeId !== location.nodeId || location.generation < cur.generation) {
        // First live publisher wins (entries of departed nodes are already gone); a node may
        // only move its own entry forward.
        out[i] = false;
      } else {
        this.entries.set(key, location);
        out[i] = true;
        if (watched) {
          changedKeys.push(key);
          changed.push(location);
        }
      }
    }
    if (watched) this.pushChanges(changedKeys, changed);
    return out;
  }

  private remove(owner: string, entries: readonly RemovalEntry[]): number {
    let removed = 0;
    const gone: string[] = [];
    for (const { key, nodeId, generation } of entries) {
      const cur = this.entries.get(key);
      if (nodeId !== owner || cur === undefined || cur.nodeId !== nodeId || cur.generation !== generation) continue;
      this.entries.delete(key);
      this.byNode.get(nodeId)?.delete(key);
      removed++;
      if (this.watchers.size > 0) gone.push(key);
    }
    if (gone.length > 0) this.pushChanges(gone, new Array<Location | null>(gone.length).fill(null));
    return removed;
  }

  private ownedBy(nodeId: string): Set<string> {
    let keys = this.byNode.get(nodeId);
    if (keys === undefined) {
      keys = new Set();
      this.byNode.set(nodeId, keys);
    }
    return keys;
  }

  private removeNode(nodeId: string, reason: string): void {
    const member = this.members.get(nodeId);
    if (member === undefined) return;
    this.members.delete(nodeId);
    this.memberBytes -= member.bytes;
    if (member.bytes > BIG_RECORD_BYTES) this.bigMemberBytes -= member.bytes;
    const keys = this.byNode.get(nodeId);
    if (keys) for (const key of keys) this.entries.delete(key);
    this.byNode.delete(nodeId);
    this.log.info(`directory: node '${printable(nodeId)}' left (${reason}); ${keys?.size ?? 0} entries removed`);
    this.broadcast({ type: 'node-left', nodeId, reason }, null);
  }

  private broadcast(event: DirectoryEvent, origin: Session | null): void {
    let frame: Buffer | null = null;
    const encode = (): Buffer => (frame ??= encodeFrame(FrameKind.Event, 0, event, Number.MAX_SAFE_INTEGER));
    for (const s of this.sessions) if (s !== origin) s.deliver(event, encode);
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.connectionCount() >= this.maxConnections) {
      this.countRejected('too-many-connections');
      socket.destroy();
      return;
    }
    let stream: net.Socket = socket;
    if (this.secureContext !== null) {
      // The handshake happens inside the hello deadline: a stranger that never finishes it is closed like one that never says hello.
      socket.on('error', () => undefined);
      stream = new tls.TLSSocket(socket, { isServer: true, secureContext: this.secureContext });
    }
    const conn: Connection = new Connection(this, stream, () => conn.owner.forgetConnection(conn));
    this.connections.add(conn);
  }

  private sweep(): void {
    // Decided after this turn's I/O: when the loop was blocked (a busy host), a hello or heartbeat
    // already waiting in the socket is read before the deadline judges its connection (timers run
    // before I/O in a libuv turn; immediates after it).
    setImmediate(() => {
      const now = Date.now();
      for (const conn of this.connections) conn.checkIdle(now, this.idleTimeoutMs, this.helloTimeoutMs);
    });
  }
}

/** One client socket: decoding, hello/auth, dispatch, and its fate when it misbehaves. */
class Connection implements Session {
  readonly label: string;
  nodeId: string | null = null;
  private readonly decoder: FrameDecoder;
  private ready = false;
  private closing = false;
  private closeReason: string | null = null;
  private lastError: Error | null = null;
  /** When the last complete frame arrived: a trickle of bytes does not keep a connection alive. */
  private lastSeen = Date.now();
  private readonly connectedAt = Date.now();
  /** The directory this connection belongs to (a tenant's after a tenant's hello). */
  get owner(): DirectoryServer {
    return this.server;
  }
  private peerMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  private waitingDrain = false;

  constructor(
    private server: DirectoryServer,
    private readonly socket: net.Socket,
    onClosed: () => void,
  ) {
    this.label = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    // Until hello (and its token) passed, only a small frame is accepted: nothing large is buffered for a stranger.
    this.decoder = new FrameDecoder((f) => this.onFrame(f), { maxFrameBytes: Math.min(LIMITS.helloFrameBytes, server.maxFrameBytes), role: 'server' });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.lastError = err;
    });
    socket.on('close', () => {
      onClosed();
      const reason =
        this.closeReason ?? (this.lastError ? `connection lost: ${(this.lastError as NodeJS.ErrnoException).code ?? this.lastError.message}` : 'connection closed');
      this.server.drop(this, reason);
    });
    socket.on('drain', () => {
      if (this.waitingDrain) {
        this.waitingDrain = false;
        socket.resume();
      }
    });
  }

  deliver(_event: DirectoryEvent, frame: () => Buffer): void {
    if (this.closing) return;
    this.socket.write(frame());
    this.checkQueued();
  }

  deliverKeys(frame: () => Buffer): void {
    if (this.closing) return;
    const buf = frame();
    if (buf.length > this.peerMaxFrameBytes) {
      // Larger than this client accepts: its replica can no longer be kept; it falls back to lookups.
      this.server.execute(this, { op: 'unwatch' });
      this.socket.write(encodeFrame(FrameKind.Event, 0, { type: 'keys-reset' }, Number.MAX_SAFE_INTEGER));
    } else {
      this.socket.write(buf);
    }
    this.checkQueued();
  }

  /**
   * Starts a replica: every entry in chunks, then the answer; changes made meanwhile are pushed
   * in order between the chunks. The snapshot iterates the live Map, so each chunk carries the
   * entries' values when it is written and an entry removed earlier is not sent: in socket order,
   * the replica ends equal to the directory. Waits for the socket to drain between chunks, so a
   * snapshot of millions of entries neither blocks the loop for long nor outgrows the send queue.
   */
  private async watch(id: number, maxEntries: number): Promise<void> {
    const held = this.server.entryCount;
    if (held > maxEntries) {
      this.send(FrameKind.Error, id, { message: `the directory holds ${held} entries, more than this replica's limit of ${maxEntries}`, fatal: false, code: 'too-many' });
      return;
    }
    this.server.addWatcher(this);
    const it = this.server.entryIterator();
    let sent = 0;
    for (let done = false; !done; ) {
      if (this.closing) return;
      const keys: string[] = [];
      const locations: Location[] = [];
      while (keys.length < SNAPSHOT_CHUNK) {
        const r = it.next();
        if (r.done) {
          done = true;
          break;
        }
        keys.push(r.value[0]);
        locations.push(r.value[1]);
      }
      if (keys.length === 0) break;
      this.deliverKeys(() => encodeFrame(FrameKind.Event, 0, encodeKeyChanges(keys, locations), Number.MAX_SAFE_INTEGER));
      sent += keys.length;
      if (this.socket.writableLength > SNAPSHOT_HIGH_WATER) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.socket.off('drain', done);
            this.socket.off('close', done);
            resolve();
          };
          this.socket.on('drain', done);
          this.socket.on('close', done);
        });
      }
    }
    if (!this.closing) this.reply(id, 'watch', { entries: sent });
  }

  /** A session that does not read what it is sent is closed before its queue grows without bound. */
  private checkQueued(): void {
    const queued = this.socket.writableLength;
    if (queued > this.server.maxQueuedBytes) {
      this.reject(new WireError('slow-reader', `${(queued / 2 ** 20).toFixed(1)} MiB queued for it, more than ${(this.server.maxQueuedBytes / 2 ** 20).toFixed(1)} MiB: it does not read its events`));
    }
  }

  checkIdle(now: number, idleTimeoutMs: number, helloTimeoutMs: number): void {
    if (this.closing) return;
    if (!this.ready && now - this.connectedAt > helloTimeoutMs) {
      this.reject(new WireError('idle', `no hello within ${helloTimeoutMs} ms of connecting`));
    } else if (idleTimeoutMs > 0 && now - this.lastSeen > idleTimeoutMs) {
      this.reject(new WireError('idle', this.ready ? `no frames for ${idleTimeoutMs} ms (heartbeat missing)` : `no hello within ${idleTimeoutMs} ms`));
    }
  }

  /** Server shutdown: tell the peer why, then close. */
  shutdown(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.closeReason = reason;
    this.finish(encodeFrame(FrameKind.Error, 0, { message: reason, fatal: true, code: 'shutdown' }));
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return; // discarding what a rejected peer still sends
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.reject(err);
    }
  }

  private onFrame(frame: Frame): void {
    if (this.closing) return;
    this.lastSeen = Date.now();
    if (frame.kind !== FrameKind.Request) {
      throw new WireError('bad-kind', `unexpected ${frameKindName(frame.kind)} frame from a client`, frame.id);
    }
    let req: Request;
    try {
      req = parseRequest(decodeJson(frame));
    } catch (err) {
      if (err instanceof WireError) throw new WireError(err.reason, err.message, frame.id);
      throw err;
    }
    if (!this.ready) {
      if (req.op !== 'hello') throw new WireError('no-hello', `request '${req.op}' before hello`, frame.id);
      this.hello(frame.id, req);
      return;
    }
    if (req.op === 'hello') throw new WireError('bad-message', 'duplicate hello', frame.id);
    if (req.op === 'watch') {
      this.watch(frame.id, req.maxEntries).catch((err: unknown) => this.reject(err));
      return;
    }
    let result: unknown;
    try {
      result = this.server.execute(this, req);
    } catch (err) {
      if (!(err instanceof DirectoryRequestError)) throw err;
      this.send(FrameKind.Error, frame.id, { message: err.message, fatal: false, code: 'refused' });
      return;
    }
    this.reply(frame.id, req.op, req.op === 'lookup' ? encodeLookupResult(result as ResultMap['lookup']) : result);
  }

  private hello(id: number, req: RequestOf<'hello'>): void {
    if (req.version !== PROTOCOL_VERSION) {
      throw new WireError('bad-version', `protocol version ${req.version} not supported (server speaks ${PROTOCOL_VERSION})`, id);
    }
    const auth = this.server.directoryFor(req.token);
    if (typeof auth === 'string') throw new WireError('auth', `authentication failed: ${auth} token`, id);
    if (auth !== this.server) {
      // A tenant's token: from now on this connection lives in that tenant's directory only.
      auth.adopt(this, this.server);
      this.server = auth;
    }
    this.ready = true;
    this.decoder.setMaxFrameBytes(this.server.maxFrameBytes);
    if (req.maxFrameBytes !== undefined) this.peerMaxFrameBytes = req.maxFrameBytes;
    this.server.admit(this);
    const result: ResultMap['hello'] = { version: PROTOCOL_VERSION, maxFrameBytes: this.server.maxFrameBytes, idleTimeoutMs: this.server.idleTimeoutMs };
    if (req.node !== undefined) {
      try {
        result.members = this.server.execute(this, { op: 'join', node: req.node });
      } catch (err) {
        if (!(err instanceof DirectoryRequestError)) throw err;
        this.send(FrameKind.Error, id, { message: err.message, fatal: false, code: 'refused' });
        return;
      }
    }
    this.send(FrameKind.Response, id, result);
  }

  private reply(id: number, op: string, result: unknown): void {
    let buf: Buffer;
    try {
      buf = encodeFrame(FrameKind.Response, id, result, this.peerMaxFrameBytes);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      // Too big for the client to accept: refuse this request rather than break the connection.
      this.send(FrameKind.Error, id, { message: `${op} response too large: ${err.message}; split the batch`, fatal: false, code: 'oversized' });
      return;
    }
    this.write(buf);
  }

  private send(kind: FrameKind, id: number, body: unknown): void {
    this.write(encodeFrame(kind, id, body, Number.MAX_SAFE_INTEGER));
  }

  private write(buf: Buffer): void {
    // Backpressure: a client that does not read its responses stops being read from.
    if (!this.socket.write(buf) && !this.waitingDrain) {
      this.waitingDrain = true;
      this.socket.pause();
    }
    this.checkQueued();
  }

  /** Protocol violation (or an internal error): count it, log it, tell the peer, close. */
  private reject(err: unknown): void {
    if (this.closing) return;
    this.closing = true;
    const wire = err instanceof WireError ? err : null;
    const code = wire?.reason ?? 'internal';
    const message = wire ? wire.message : 'internal error';
    this.server.countRejected(code);
    if (wire) this.server.logLine('warn', `directory: closing connection from ${this.label}: ${message}`);
    else this.server.logLine('error', `directory: internal error on connection from ${this.label}: ${(err as Error)?.stack ?? String(err)}`);
    this.closeReason = `connection rejected: ${message}`;
    this.finish(encodeFrame(FrameKind.Error, wire?.requestId ?? 0, { message, fatal: true, code }, Number.MAX_SAFE_INTEGER));
  }

  private finish(last: Buffer): void {
    this.server.drop(this, this.closeReason ?? 'connection closed');
    if (this.waitingDrain) this.socket.resume(); // keep draining (and discarding) input
    this.socket.end(last);
    // A peer that never reads or never closes must not hold the socket: destroy after a grace period.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}

/** The in-process Directory of the serving node: same semantics, no socket, no JSON. */
class LocalDirectory implements Directory {
  readonly session: Session;
  private readonly listeners = new Set<(event: DirectoryEvent) => void>();
  private lost: string | null = null;
  private closed = false;

  constructor(private readonly server: DirectoryServer) {
    const self = this;
    this.session = {
      label: 'local',
      nodeId: null,
      deliver(event: DirectoryEvent): void {
        // Deliver after the current operation completes, as a socket would.
        queueMicrotask(() => self.emit(event));
      },
    };
  }

  detach(reason: string): void {
    this.lost ??= reason;
    this.session.nodeId = null;
  }

  private emit(event: DirectoryEvent): void {
    if (this.lost !== null) return;
    for (const listener of this.listeners) {
      try {
        listener(cloneEvent(event));
      } catch (err) {
        this.server.logLine('error', `directory: event listener threw: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }

  private run<O extends Exclude<Request['op'], 'hello'>>(req: RequestOf<O>): Promise<ResultMap[O]> {
    if (this.closed) return Promise.reject(new PeercacheError('ERR_CLOSED', 'directory client is closed'));
    if (this.lost !== null) return Promise.reject(new PeercacheError('ERR_CONNECTION_LOST', `directory connection lost: ${this.lost}`));
    try {
      // The same validation (and copying) as the wire path: callers cannot alias stored state.
      const checked = checkRequest(req as Request) as RequestOf<O>;
      return Promise.resolve(this.server.execute<O>(this.session, checked));
    } catch (err) {
      return Promise.reject(err instanceof Error ? new PeercacheError('ERR_REFUSED', `directory ${(req as Request).op} failed: ${err.message}`) : err);
    }
  }

  async join(node: NodeInfo): Promise<NodeInfo[]> {
    return (await this.run<'join'>({ op: 'join', node })).map(cloneNode);
  }

  async lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    const locs = await this.run<'lookup'>({ op: 'lookup', keys: keys as string[] });
    // Copies: the caller must not be able to mutate the directory's entries.
    for (let i = 0; i < locs.length; i++) {
      const l = locs[i];
      if (l !== null) locs[i] = { nodeId: l.nodeId, offset: l.offset, length: l.length, generation: l.generation };
    }
    return locs;
  }

  /** The serving node reads the entries in-process: always current, no round trip. */
  lookupLocal(keys: readonly string[]): (Location | null)[] | null {
    if (this.closed || this.lost !== null) return null;
    return this.server.lookupNow(keys);
  }

  publish(entries: readonly DirectoryEntry[]): Promise<boolean[]> {
    return this.run<'publish'>({ op: 'publish', entries: entries as DirectoryEntry[] });
  }

  async remove(entries: readonly RemovalEntry[]): Promise<void> {
    await this.run<'remove'>({ op: 'remove', entries: entries as RemovalEntry[] });
  }

  async node(nodeId: string): Promise<NodeInfo | null> {
    const n = await this.run<'node'>({ op: 'node', nodeId });
    return n === null ? null : cloneNode(n);
  }

  async members(): Promise<NodeInfo[]> {
    return (await this.run<'members'>({ op: 'members' })).map(cloneNode);
  }

  subscribe(listener: (event: DirectoryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    if (this.lost === null) this.server.forgetLocal(this);
  }
}

function cloneNode(n: NodeInfo): NodeInfo {
  return parseNodeInfo(n);
}

function cloneEvent(e: DirectoryEvent): DirectoryEvent {
  return e.type === 'node-joined' ? { type: 'node-joined', node: cloneNode(e.node) } : { ...e };
}
