/**
 * `DirectoryClient`: the Directory a node uses to talk to a DirectoryServer (embedded in some
 * node's process, or `serve`) over one TCP connection. Requests are pipelined (matched by request id) and each has a deadline.
 *
 * Failure model, deliberately simple (the original PeerCache client reconnected and retried,
 * running non-idempotent calls twice, and blocked forever when nobody answered):
 * - a request that gets no answer in `requestTimeoutMs` rejects; it is never retried;
 * - when the connection drops, every pending request rejects with "directory connection lost: …"
 *   and every later call fails at once with the same message. There is no silent reconnect in
 *   this version: the server dropped this node and its entries when the connection closed, so
 *   the owner (the store) must re-join and re-publish on a fresh client, if it wants to;
 * - a heartbeat ping keeps the server's idle timer fed (at a third of the idle timeout the server
 *   announces at hello, at most every `heartbeatMs`) and detects a server that stopped answering
 *   (its host vanished): a ping without answer ends the connection;
 * - once a request timed out, the server is known unresponsive (a silent partition: TCP neither
 *   fails nor progresses): every call fails at once (ERR_UNREACHABLE) instead of waiting its whole
 *   deadline again, while one ping probes it; its answer (any frame) ends that state, its timeout
 *   ends the connection (and a RejoiningDirectory reconnects).
 */
import net from 'node:net';
import tls from 'node:tls';
import { clientOptions as tlsClientOptions, type DirectoryTls } from '../../tls.js';
import type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from '../types.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, FrameKind, PROTOCOL_VERSION, WireError, checkFrameLimit, decodeJson, encodeFrame, frameKindName } from '../../framing.js';
import { LIMITS, encodeRequestBody, parseErrorBody, parseEvent, parseKeyChanges, parseLookupResult } from './messages.js';
import { KeyReplica, type ReplicaOptions, type ReplicaState } from './replica.js';
import type { Frame } from '../../framing.js';
import { PeercacheError, type ErrorCode, InvalidArgumentError } from '../../errors.js';
import { silentLogger, type Logger } from '../../log.js';
import type { Op, Request, ResultMap } from './messages.js';

export interface DirectoryClientOptions {
  /** Directory server host (default 127.0.0.1). */
  host?: string;
  port: number;
  authToken?: string;
  /** TCP connect + hello deadline (default 5000 ms). */
  connectTimeoutMs?: number;
  /** Deadline of each request (default 10 000 ms). */
  requestTimeoutMs?: number;
  /** Largest frame this client accepts (default 16 MiB); the server keeps responses under it. */
  maxFrameBytes?: number;
  /** Ping period when idle (default 5000 ms; 0 disables; keep it under the server's idleTimeoutMs). */
  heartbeatMs?: number;
  logger?: Logger;
  /** Called once when the connection is lost (not on close()). */
  onConnectionLost?: (reason: string) => void;
  /** Connect over TLS, verifying the server against caFile (and servername); see tls.ts. */
  tls?: DirectoryTls;
  /**
   * Keep a local replica of the key locations (replica.ts) so exists and lookups need no round
   * trip; off by default. A directory larger than its maxEntries is refused: lookups go on round trips.
   */
  replica?: ReplicaOptions;
}

/**
 * A connect / request error; `code` is ERR_TIMEOUT past a deadline, else the socket error's code
 * where there is one (ECONNREFUSED, ...), EAUTH for a refused token, EPROTO for a protocol error.
 */
export class DirectoryError extends PeercacheError {
  override name = 'DirectoryError';
  /** The system's code (ECONNREFUSED, EADDRNOTAVAIL, …) when a socket call failed. */
  readonly errno: string | undefined;
  constructor(message: string, code: ErrorCode = 'ERR_DIRECTORY', options?: { cause?: unknown; errno?: string }) {
    super(code, message, options);
    this.errno = options?.errno;
  }
}

/** The code of a directory server's error frame (messages.ts: its wire names) as one of ours. */
export function directoryWireCode(code: string | undefined): ErrorCode {
  switch (code) {
    case 'auth':
      return 'ERR_AUTH';
    case 'refused':
      return 'ERR_REFUSED';
    case 'too-many':
      return 'ERR_TOO_MANY';
    case 'shutdown':
      return 'ERR_SHUTDOWN';
    case 'oversized':
      return 'ERR_OVERSIZED';
    case undefined:
      return 'ERR_DIRECTORY';
    default:
      return 'ERR_BAD_FRAME';
  }
}

interface Pending {
  op: Op;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
  /** performance.now() at send: an answer proves every change the server made before it is here (replica.ts). */
  sentAt: number;
}

export class DirectoryClient implements Directory {
  private readonly decoder: FrameDecoder;
  private readonly pending = new Map<number, Pending>();
  private readonly listeners = new Set<(event: DirectoryEvent) => void>();
  private readonly log: Logger;
  private readonly requestTimeoutMs: number;
  private readonly where: string;
  private nextId = 1;
  /** The server's idle timeout, learned at hello (0: none announced). */
  private serverIdleTimeoutMs = 0;
  /** The largest frame the server accepts (learned at hello). */
  private serverMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  private lost: string | null = null;
  private userClosed = false;
  private closing: Promise<void> | null = null;
  private lastSentAt = Date.now();
  private heartbeat: NodeJS.Timeout | null = null;
  private lastError: Error | null = null;
  /** Why the server is known unresponsive (a request timed out), null while it answers. */
  private unresponsive: string | null = null;
  private probing = false;
  private replica: KeyReplica | null = null;
  private replicaTimer: NodeJS.Timeout | null = null;

  private constructor(
    private readonly socket: net.Socket,
    private readonly options: DirectoryClientOptions,
  ) {
    this.log = options.logger ?? silentLogger;
    this.requestTimeoutMs = options.requestTimeoutMs ?? 10_000;
    this.where = `${options.host ?? '127.0.0.1'}:${options.port}`;
    this.decoder = new FrameDecoder((f) => this.onFrame(f), { maxFrameBytes: options.maxFrameBytes, role: 'client' });
    socket.on('data', (chunk: Buffer) => {
      try {
        this.decoder.push(chunk);
      } catch (err) {
        const msg = err instanceof WireError ? err.message : String(err);
        this.log.error(`directory client: protocol error from ${this.where}: ${msg}`);
        this.fail(`protocol error from server: ${msg}`);
      }
    });
    socket.on('error', (err) => {
      this.lastError = err;
    });
    socket.on('close', () => {
      const e = this.lastError as NodeJS.ErrnoException | null;
      this.fail(e ? `connection to ${this.where} failed (${e.code ?? e.message})` : `connection to ${this.where} closed by the server`);
    });
  }

  /**
   * Connects and says hello (version, token). Rejects with a DirectoryError naming the address;
   * its `code` is the socket error's (ECONNREFUSED when nobody listens), 'ERR_TIMEOUT' past the
   * deadline, 'ERR_AUTH' when the token is refused.
   */
  static async connect(options: DirectoryClientOptions): Promise<DirectoryClient> {
    const host = options.host ?? '127.0.0.1';
    const port = options.port;
    const where = `${host}:${port}`;
    checkFrameLimit(options.maxFrameBytes);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new InvalidArgumentError(`port must be in 1..65535, got ${port}`);
    const timeoutMs = options.connectTimeoutMs ?? 5000;
    const deadline = Date.now() + timeoutMs;
    const socket = options.tls
      ? tls.connect({ host, port, ...tlsClientOptions(options.tls, host) }).setNoDelay(true).setKeepAlive(true, 5000)
      : net.connect({ host, port, noDelay: true, keepAlive: true, keepAliveInitialDelay: 5000 });
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new DirectoryError(`directory connect to ${where} timed out after ${timeoutMs} ms`, 'ERR_TIMEOUT'));
        }, timeoutMs);
        socket.once(options.tls ? 'secureConnect' : 'connect', () => {
          clearTimeout(timer);
          resolve();
        });
        socket.once('error', (err: NodeJS.ErrnoException) => {
          clearTimeout(timer);
          reject(new DirectoryError(`cannot connect to the directory at ${where}: ${err.message}`, 'ERR_CONNECT', { cause: err, errno: err.code }));
        });
      });
    } catch (err) {
      socket.destroy();
      throw err;
    }
    const client = new DirectoryClient(socket, options);
    try {
      const hello: Request = { op: 'hello', version: PROTOCOL_VERSION, maxFrameBytes: checkFrameLimit(options.maxFrameBytes) };
      if (options.authToken !== undefined) hello.token = options.authToken;
      const result = await client.call('hello', hello, Math.max(1, deadline - Date.now()));
      if (!isObject(result) || result.version !== PROTOCOL_VERSION || typeof result.maxFrameBytes !== 'number') {
        throw new DirectoryError(`directory at ${where} sent a malformed hello response`, 'ERR_DIRECTORY_PROTOCOL');
      }
      client.serverMaxFrameBytes = result.maxFrameBytes;
      if (typeof result.idleTimeoutMs === 'number' && result.idleTimeoutMs > 0) client.serverIdleTimeoutMs = result.idleTimeoutMs;
    } catch (err) {
      client.userClosed = true; // a failed connect is not a lost connection: no callbacks
      client.fail('hello failed');
      socket.destroy();
      const e = err as DirectoryError;
      const code = /authentication failed/.test(e.message) ? 'ERR_AUTH' : e.code;
      // A TCP connection but no hello answer: the port belongs to something that is not a directory.
      const why =
        e.code === 'ERR_TIMEOUT'
          ? `${where} is in use by a program that does not answer as a peercache directory (address in use?): hello timed out after ${timeoutMs} ms`
          : e.message;
      throw new DirectoryError(`cannot connect to the directory at ${where}: ${why}`, code, { cause: err });
    }
    client.startHeartbeat();
    if (options.replica) await client.startReplica(options.replica);
    return client;
  }

  /** The key replica's state and size (null when none was asked for). */
  get replicaStatus(): { state: ReplicaState; entries: number; ageMs: number; dropReason: string | null } | null {
    const r = this.replica;
    return r && { state: r.state, entries: r.size, ageMs: r.age(), dropReason: r.dropReason };
  }

  lookupLocal(keys: readonly string[]): (Location | null)[] | null {
    return this.lost === null && this.replica !== null ? this.replica.lookup(keys) : null;
  }

  /**
   * Asks the server to stream its entries and then every change. A refusal (too many entries)
   * leaves this client on round trips, logged once; the connection stays.
   */
  private async startReplica(options: ReplicaOptions): Promise<void> {
    const replica = new KeyReplica(options);
    this.replica = replica;
    const sentAt = performance.now();
    try {
      await this.call('watch', { op: 'watch', maxEntries: replica.maxEntries });
    } catch (err) {
      replica.drop((err as Error).message);
      this.log.warn(`directory client: no key replica (exists and lookups take a round trip): ${(err as Error).message}`);
      return;
    }
    replica.markLive(sentAt);
    // Keep a proof of freshness well inside the bound while idle.
    const period = Math.max(1, replica.maxStalenessMs / 4);
    this.replicaTimer = setInterval(() => {
      if (this.lost !== null || replica.state !== 'live' || replica.age() < period) return;
      this.call('ping', { op: 'ping' }).catch(() => {
        // The heartbeat judges the connection; a late ping just leaves the replica unused meanwhile.
      });
    }, period);
    this.replicaTimer.unref();
  }

  private dropReplica(reason: string): void {
    const r = this.replica;
    if (r === null || r.state === 'dropped') return;
    r.drop(reason);
    if (this.replicaTimer) clearInterval(this.replicaTimer);
    this.log.warn(`directory client: key replica dropped (exists and lookups take a round trip now): ${reason}`);
    if (this.lost === null) this.call('unwatch', { op: 'unwatch' }).catch(() => {});
  }

  /** False once the connection is lost or closed. */
  get isOpen(): boolean {
    return this.lost === null;
  }

  /** Why the connection ended, null while open. */
  get lostReason(): string | null {
    return this.lost;
  }

  async join(node: NodeInfo): Promise<NodeInfo[]> {
    return expectArray(await this.call('join', { op: 'join', node }), 'join');
  }

  async lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    if (keys.length > LIMITS.keysPerRequest) return (await Promise.all(slices(keys).map((s) => this.lookup(s)))).flat();
    const body = await this.call('lookup', { op: 'lookup', keys: keys as string[] });
    try {
      return parseLookupResult(body, keys.length);
    } catch (err) {
      throw new DirectoryError(`directory lookup: malformed response: ${(err as Error).message}`, 'ERR_DIRECTORY_PROTOCOL');
    }
  }

  async publish(entries: readonly DirectoryEntry[]): Promise<boolean[]> {
    if (entries.length > LIMITS.keysPerRequest) return (await Promise.all(slices(entries).map((s) => this.publish(s)))).flat();
    const out = expectArray<boolean>(await this.call('publish', { op: 'publish', entries: entries as DirectoryEntry[] }), 'publish');
    if (out.length !== entries.length) throw new DirectoryError(`directory publish: ${out.length} results for ${entries.length} entries`, 'ERR_DIRECTORY_PROTOCOL');
    return out;
  }

  async remove(entries: readonly RemovalEntry[]): Promise<void> {
    if (entries.length > LIMITS.keysPerRequest) {
      await Promise.all(slices(entries).map((s) => this.remove(s)));
      return;
    }
    await this.call('remove', { op: 'remove', entries: entries as RemovalEntry[] });
  }

  async node(nodeId: string): Promise<NodeInfo | null> {
    return (await this.call('node', { op: 'node', nodeId })) as NodeInfo | null;
  }

  async members(): Promise<NodeInfo[]> {
    return expectArray(await this.call('members', { op: 'members' }), 'members');
  }

  /** One round trip; resolves with its duration in ms. */
  async ping(): Promise<number> {
    const t0 = performance.now();
    await this.call('ping', { op: 'ping' });
    return performance.now() - t0;
  }

  subscribe(listener: (event: DirectoryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Leaves (the server removes this node and its entries) and closes. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.lost === null) {
        try {
          await this.call('leave', { op: 'leave' }, Math.min(this.requestTimeoutMs, 2000));
        } catch {
          // Closing anyway: the server drops the node when the connection closes.
        }
      }
      this.userClosed = true;
      this.listeners.clear();
      this.fail('directory client closed');
      if (!this.socket.destroyed) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => this.socket.destroy(), 1000);
          this.socket.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          this.socket.end();
        });
      }
    })();
    return this.closing;
  }

  // --- internals ------------------------------------------------------------------------------

  private call<O extends Op>(op: O, req: Request, timeoutMs = this.requestTimeoutMs): Promise<ResultMap[O] | unknown> {
    if (this.userClosed) return Promise.reject(new DirectoryError('directory client is closed', 'ERR_CLOSED'));
    if (this.lost !== null) return Promise.reject(new DirectoryError(`directory connection lost: ${this.lost}`, 'ERR_CONNECTION_LOST'));
    if (this.unresponsive !== null && op !== 'ping' && op !== 'leave') {
      return Promise.reject(new DirectoryError(`directory ${op} not sent: the server ${this.where} is unresponsive (${this.unresponsive}); failing fast until it answers`, 'ERR_UNREACHABLE'));
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1; // 0 is reserved for events
    let frame: Buffer;
    try {
      frame = encodeFrame(FrameKind.Request, id, encodeRequestBody(req), this.serverMaxFrameBytes);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      return Promise.reject(new DirectoryError(`directory ${op} request too large: ${err.message}; split the batch`, 'ERR_OVERSIZED'));
    }
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DirectoryError(`directory ${op} timed out after ${timeoutMs} ms (server ${this.where})`, 'ERR_TIMEOUT'));
        if (op !== 'leave' && op !== 'hello') this.markUnresponsive(`${op} unanswered for ${timeoutMs} ms`);
      }, timeoutMs);
      this.pending.set(id, { op, resolve, reject, timer, sentAt: performance.now() });
      this.lastSentAt = Date.now();
      this.socket.write(frame);
    });
  }

  private onFrame(frame: Frame): void {
    if (this.unresponsive !== null) {
      this.log.info(`directory client: server ${this.where} answers again`);
      this.unresponsive = null;
    }
    switch (frame.kind) {
      case FrameKind.Response: {
        const p = this.take(frame.id);
        if (p) p.resolve(decodeJson(frame));
        return;
      }
      case FrameKind.Error: {
        const body = parseErrorBody(decodeJson(frame));
        const p = this.take(frame.id);
        if (p) p.reject(new DirectoryError(`directory ${p.op} failed: ${body.message}`, directoryWireCode(body.code)));
        if (body.fatal) {
          this.log.warn(`directory client: server ${this.where} closed the connection: ${body.message}`);
          this.fail(`server closed the connection: ${body.message}`);
        }
        return;
      }
      case FrameKind.Event: {
        const body = decodeJson(frame);
        const changes = parseKeyChanges(body);
        if (changes === 'reset') {
          this.dropReplica('the server stopped pushing changes (a change was larger than this client accepts)');
          return;
        }
        if (changes !== null) {
          if (this.replica !== null && !this.replica.apply(changes)) {
            this.dropReplica(`the directory holds more than ${this.replica.maxEntries} entries (the replica's limit)`);
          }
          return;
        }
        const event = parseEvent(body);
        if (event.type === 'node-left') this.replica?.dropNode(event.nodeId);
        for (const listener of this.listeners) {
          try {
            listener(event);
          } catch (err) {
            this.log.error(`directory client: event listener threw: ${(err as Error)?.message ?? String(err)}`);
          }
        }
        return;
      }
      default:
        throw new WireError('bad-kind', `unexpected ${frameKindName(frame.kind)} frame from the server`, frame.id);
    }
  }

  private take(id: number): Pending | undefined {
    const p = this.pending.get(id);
    if (p === undefined) {
      if (id !== 0) this.log.debug(`directory client: answer to request ${id} came after its deadline; dropped`);
      return undefined;
    }
    this.pending.delete(id);
    clearTimeout(p.timer);
    this.replica?.synced(p.sentAt);
    return p;
  }

  /** Ends the connection for good: pending requests reject, later calls fail fast. */
  private fail(reason: string): void {
    if (this.lost !== null) return;
    this.lost = reason;
    if (this.heartbeat) clearInterval(this.heartbeat);
    if (this.replicaTimer) clearInterval(this.replicaTimer);
    this.replica?.drop(`connection lost: ${reason}`);
    const err = this.userClosed
      ? new DirectoryError('directory client is closed', 'ERR_CLOSED')
      : new DirectoryError(`directory connection lost: ${reason}`, 'ERR_CONNECTION_LOST');
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.pending.clear();
    if (!this.userClosed) {
      this.socket.destroy();
      this.log.warn(`directory client: connection to ${this.where} lost: ${reason}`);
      try {
        this.options.onConnectionLost?.(reason);
      } catch (e) {
        this.log.error(`directory client: onConnectionLost threw: ${(e as Error)?.message ?? String(e)}`);
      }
    }
  }

  /** A request timed out: fail fast from now on, and probe the server with one ping (its timeout ends the connection). */
  private markUnresponsive(reason: string): void {
    if (this.lost !== null) return;
    if (this.unresponsive === null) this.log.warn(`directory client: server ${this.where} unresponsive (${reason}); calls fail fast until it answers`);
    this.unresponsive ??= reason;
    if (this.probing) return;
    this.probing = true;
    this.call('ping', { op: 'ping' })
      .catch((err: DirectoryError) => {
        if (err.code === 'ERR_TIMEOUT') this.fail(`server unresponsive: ${err.message}`);
      })
      .finally(() => (this.probing = false));
  }

  private startHeartbeat(): void {
    const configured = this.options.heartbeatMs ?? 5000;
    if (configured <= 0) return;
    // Well within the server's idle timeout: a quiet member must not be dropped as dead.
    const period = this.serverIdleTimeoutMs > 0 ? Math.max(50, Math.min(configured, Math.floor(this.serverIdleTimeoutMs / 3))) : configured;
    this.heartbeat = setInterval(() => {
      if (this.lost !== null || Date.now() - this.lastSentAt < period) return;
      this.call('ping', { op: 'ping' }).catch((err: DirectoryError) => {
        if (err.code === 'ERR_TIMEOUT') this.fail(`server unresponsive: ${err.message}`);
      });
    }, period);
    this.heartbeat.unref();
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function expectArray<T>(v: unknown, op: string): T[] {
  if (!Array.isArray(v)) throw new DirectoryError(`directory ${op}: malformed response`, 'ERR_DIRECTORY_PROTOCOL');
  return v as T[];
}

/** A batch in requests of at most LIMITS.keysPerRequest keys (the server refuses larger ones). */
function slices<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += LIMITS.keysPerRequest) out.push(items.slice(i, i + LIMITS.keysPerRequest));
  return out;
}
