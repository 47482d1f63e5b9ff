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
import { createHash, timingSafeEqual } from 'node:crypto';
import { serverContext } from '../../tls.js';
import type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from '../types.js';
import { FrameKind, checkFrameLimit, encodeFrame } from '../../framing.js';
import { encodeKeyChanges } from './messages.js';
import { InvalidArgumentError, PeercacheError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import type { Request, RequestOf, ResultMap } from './messages.js';
import { isLoopback } from '../loopback.js';
import { printable } from '../printable.js';
import { AuthRequiredError, BIG_RECORD_BYTES, checkLimits, checkTenants, type DirectoryServerOptions } from './server-options.js';
import { DirectoryRequestError, type Session, type SessionHost } from './session.js';
import { Connection } from './connection.js';
import { LocalDirectory } from './local-directory.js';

export { AuthRequiredError, BIG_RECORD_BYTES, DIRECTORY_SERVER_DEFAULTS, type DirectoryServerOptions } from './server-options.js';

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

interface Member {
  info: NodeInfo;
  session: Session;
  /** JSON bytes of `info`, counted against maxMemberBytes. */
  bytes: number;
}

const DEFAULT_IDLE_TIMEOUT_MS = 20_000;

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

export class DirectoryServer implements SessionHost {
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
