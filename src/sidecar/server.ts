/**
 * The sidecar's Unix-socket server: serves the local SGLang ranks of one host with the store's core (ObjectStore)
 * (protocol.ts says what goes over the socket). The socket is 0600 (only this uid connects), in a
 * directory only this uid (or root) can write to, or a sticky one (socket-directory.ts). Each connection is served in order (one request at a
 * time, a bounded queue behind it), owns the pools it registered and releases them when it closes,
 * after its last request finished.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../log.js';
import { decodeJson, encodeFrame, encodeRawFrame, FrameDecoder, FrameKind, PROTOCOL_VERSION, WireError, type Frame } from '../framing.js';
import type { ObjectStore } from '../store/object-store.js';
import { BusyPoll } from './busy-poll.js';
import { Lane, LANE_ANSWER_BYTES, LANE_BYTES, LANE_REQUEST_BYTES, LANES_SUPPORTED } from './lane.js';
import { clientFile, mapClientFile, PoolMappings, type MappedPool } from './pool-mapping.js';
import { prepareSocketDirectory } from './socket-directory.js';
import {
  binaryAnswerPayload,
  bitString,
  DEADLINE_MARGIN_MS,
  DEFAULT_SIDECAR_LIMITS,
  encodeBinaryAnswer,
  isBinaryRequest,
  parseBinaryRequest,
  parseRequest,
  SidecarRequestError,
  SIDECAR_PROTOCOL,
  wireErrorCode,
  type SidecarErrorCode,
  type SidecarLimits,
  type SidecarRequest,
} from './protocol.js';
import { PeercacheError } from '../errors.js';

/** What a frame asked: a JSON body (checked when served), or a binary request decoded on arrival (or why it cannot be). */
type Incoming = { json: unknown } | { binary: SidecarRequest } | { refused: SidecarRequestError };

/** The answer of exists/get/set before it is framed: JSON `{found|ok: "10.."}` or binary bytes. */
class Bits {
  constructor(
    readonly op: 'exists' | 'get' | 'set',
    readonly values: boolean[],
  ) {}
}

const EMPTY = new Uint8Array(0);
/** Connection warnings of one kind are logged at most this often (warnConnection). */
const WARN_EVERY_MS = 5000;

/** Milliseconds a request may still use before its client's deadline (undefined: no deadline); throws when too late to start. */
function timeLeft(op: string, deadline: number | undefined): number | undefined {
  if (deadline === undefined) return undefined;
  const left = deadline - Date.now() - DEADLINE_MARGIN_MS;
  if (left <= 0) throw new SidecarRequestError(`${op}: too late to start (the client's deadline is ${deadline - Date.now()} ms away): not served`, 'ERR_TOO_LATE');
  return left;
}

/** What the server counts (also exported with the store's stats by the `stats` op). */
export interface SidecarCounters {
  connections: number;
  connectionsRefused: number;
  requests: number;
  badRequests: number;
  protocolErrors: number;
  /** Requests taken from lanes, and the answers whose client had to be woken by an event frame. */
  laneRequests: number;
  laneWakeups: number;
  /** Connections closed for not reading their answers; times reading from one was paused for it. */
  closedNotReading: number;
  readPauses: number;
  /** Connections closed idle: no request after hello in time, or the idle longest when the sidecar was full. */
  closedIdle: number;
  evictedIdle: number;
}

export interface SidecarServerOptions {
  socketPath: string;
  store: ObjectStore;
  limits?: Partial<SidecarLimits>;
  logger: Logger;
  /** Keep polling the sockets this long after each answer (µs; 0: sleep until the next request). */
  busyPollUs?: number;
}

/** The last TIMING_SAMPLES durations (µs) of the store calls of one op: what the store itself took, without the socket. */
const TIMING_SAMPLES = 4096;
class Timings {
  private readonly samples = new Float64Array(TIMING_SAMPLES);
  private n = 0;
  add(us: number): void {
    this.samples[this.n++ % TIMING_SAMPLES] = us;
  }
  summary(): { count: number; p10_us: number; p50_us: number; p90_us: number; p99_us: number; mean_us: number } {
    const k = Math.min(this.n, TIMING_SAMPLES);
    const sorted = Array.from(this.samples.subarray(0, k)).sort((a, b) => a - b);
    const q = (p: number) => (k ? sorted[Math.min(k - 1, Math.floor(p * k))] : 0);
    return { count: this.n, p10_us: q(0.1), p50_us: q(0.5), p90_us: q(0.9), p99_us: q(0.99), mean_us: k ? sorted.reduce((a, b) => a + b, 0) / k : 0 };
  }
  reset(): void {
    this.n = 0;
  }
}

class Connection {
  helloDone = false;
  readonly pools: MappedPool[] = [];
  queued = 0;
  chain: Promise<void> = Promise.resolve();
  closed = false;
  /** Until hello: its deadline; after hello, until the first request: that one's. */
  helloTimer: NodeJS.Timeout | null = null;
  lane: Lane | null = null;
  /** When it last sent a request or was last answered (ms): what "idle" is measured from. */
  lastActive = Date.now();
  /** Not read from while too many of its answers wait unread; closed if they stay unread. */
  paused = false;
  unreadTimer: NodeJS.Timeout | null = null;
  constructor(readonly socket: Socket) {}
}

/** Whether something accepts connections on a Unix socket (a stale socket file refuses them). */
function accepting(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    const done = (live: boolean) => {
      probe.destroy();
      resolve(live);
    };
    probe.once('connect', () => done(true));
    probe.once('error', () => done(false));
    probe.setTimeout(1000, () => done(false));
  });
}

export class SidecarServer {
  readonly limits: SidecarLimits;
  readonly counters: SidecarCounters = {
    connections: 0,
    connectionsRefused: 0,
    requests: 0,
    badRequests: 0,
    protocolErrors: 0,
    laneRequests: 0,
    laneWakeups: 0,
    closedNotReading: 0,
    readPauses: 0,
    closedIdle: 0,
    evictedIdle: 0,
  };
  readonly mappings: PoolMappings;
  private readonly server: Server;
  private readonly connections = new Set<Connection>();
  private readonly store: ObjectStore;
  private readonly logger: Logger;
  private readonly socketPath: string;
  private readonly timings = { get: new Timings(), set: new Timings(), exists: new Timings() };
  /** Connections with a lane, looked at on each turn of the busy poll. */
  private readonly laneConnections = new Set<Connection>();
  /** Until when the busy poll runs (CLOCK_MONOTONIC ns), told to each new lane. */
  private pollsUntilNs = 0n;
  private readonly warned = new Map<string, { at: number; skipped: number }>();
  readonly busyPoll: BusyPoll;

  private constructor(options: SidecarServerOptions) {
    this.limits = { ...DEFAULT_SIDECAR_LIMITS, ...options.limits };
    this.store = options.store;
    this.logger = options.logger;
    this.socketPath = options.socketPath;
    this.busyPoll = new BusyPoll(options.busyPollUs ?? 0, {
      window: (untilNs) => {
        this.pollsUntilNs = untilNs;
        for (const c of this.laneConnections) c.lane!.sidecarPollsUntil = untilNs;
      },
      spin: () => {
        for (const c of this.laneConnections) this.pollLane(c);
      },
    });
    this.mappings = new PoolMappings((view) => this.store.registerRegion(view));
    this.server = createServer((socket) => this.accept(socket));
  }

  /** Checks the socket's directory, or creates it 0700 (socket-directory.ts), replaces a stale socket, listens (socket 0600). */
  static async listen(options: SidecarServerOptions): Promise<SidecarServer> {
    prepareSocketDirectory(options.socketPath);
    let existing: ReturnType<typeof lstatSync> | null = null;
    try {
      existing = lstatSync(options.socketPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    if (existing) {
      if (!existing.isSocket()) throw new PeercacheError('ERR_CONFIG', `${options.socketPath} exists and is not a socket: refusing to replace it`);
      // A live sidecar keeps its socket; only a stale one (nobody accepts) is replaced.
      if (await accepting(options.socketPath)) throw new PeercacheError('ERR_CONFIG', `another peercache node is serving ${options.socketPath}`);
      unlinkSync(options.socketPath);
    }
    const s = new SidecarServer(options);
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        s.server.once('error', reject);
        s.server.listen(options.socketPath, () => {
          s.server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(options.socketPath, 0o600);
    return s;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get laneCount(): number {
    return this.laneConnections.size;
  }

  private accept(socket: Socket): void {
    if (this.connections.size >= this.limits.maxConnections) this.evictIdle();
    socket.on('error', () => {}); // a client gone before its answer (EPIPE) must not kill the sidecar
    if (this.connections.size >= this.limits.maxConnections) {
      this.counters.connectionsRefused++;
      this.warnConnection('refused', `sidecar: refusing a connection: ${this.limits.maxConnections} connections already (--max-connections)`);
      socket.end(encodeFrame(FrameKind.Error, 0, { message: `too many connections (limit ${this.limits.maxConnections})`, fatal: true, code: 'ERR_TOO_MANY_CONNECTIONS' }));
      socket.destroySoon?.();
      return;
    }
    const conn = new Connection(socket);
    this.connections.add(conn);
    this.counters.connections++;
    const decoder = new FrameDecoder((frame) => this.onFrame(conn, frame), { maxFrameBytes: this.limits.maxFrameBytes, role: 'server' });
    conn.helloTimer = setTimeout(() => this.fail(conn, new WireError('no-hello', `no hello within ${this.limits.helloTimeoutMs} ms`)), this.limits.helloTimeoutMs);
    socket.on('data', (chunk: Buffer) => {
      if (conn.closed) return;
      try {
        decoder.push(chunk);
      } catch (err) {
        this.fail(conn, err as Error);
      }
    });
    socket.on('close', () => this.drop(conn));
    socket.on('drain', () => this.resume(conn));
  }

  /**
   * A full sidecar: closes the connection idle longest (nothing in flight, no request or answer for
   * idleEvictMs), so that a new rank is not locked out by connections nobody uses (leaked by dead
   * threads, or held on purpose). A rank idle between requests is only closed when the sidecar is
   * full, and its adapter reconnects on its next call.
   */
  private evictIdle(): void {
    const now = Date.now();
    let victim: Connection | null = null;
    for (const c of this.connections) {
      if (c.closed || c.queued > 0 || now - c.lastActive < this.limits.idleEvictMs) continue;
      if (!victim || c.lastActive < victim.lastActive) victim = c;
    }
    if (!victim) return;
    this.counters.evictedIdle++;
    const idleS = Math.round((now - victim.lastActive) / 1000);
    this.warnConnection('evicted', `sidecar: closing a connection idle for ${idleS} s to take a new one: ${this.limits.maxConnections} connections already (--max-connections)`);
    this.closeWith(victim, `closed: idle for ${idleS} s while the node is full (${this.limits.maxConnections} connections, --max-connections): reconnect`, 'ERR_IDLE');
  }

  /**
   * A warning about one connection (refused, closed, evicted): at most one line per kind every
   * WARN_EVERY_MS, the next one saying how many were left out, so a local client opening
   * connections in a loop cannot fill the sidecar's log.
   */
  private warnConnection(kind: string, message: string): void {
    const now = Date.now();
    const w = this.warned.get(kind);
    if (w && now - w.at < WARN_EVERY_MS) {
      w.skipped++;
      return;
    }
    this.logger.warn(w?.skipped ? `${message} (and ${w.skipped} more like it in the last ${Math.round((now - w.at) / 1000)} s)` : message);
    this.warned.set(kind, { at: now, skipped: 0 });
  }

  /** Closes a connection with a last fatal error frame (not waited for: a client that does not read must not keep it open). */
  private closeWith(conn: Connection, message: string, code: SidecarErrorCode, id = 0): void {
    if (conn.closed) return;
    const socket = conn.socket;
    socket.pause(); // nothing more is read from it (a flood would be read and dropped until it closes)
    try {
      socket.end(encodeFrame(FrameKind.Error, id, { message, fatal: true, code }));
    } catch {
      socket.destroy();
    }
    if (!socket.destroyed) setTimeout(() => socket.destroy(), 2000).unref();
    this.drop(conn);
  }

  /**
   * Writes an answer (or event) to a connection. Its client reads each answer before it sends the
   * next request (or a few, pipelined), so answers that pile up mean it does not read: past 1/16 of
   * maxAnswerBytes the connection is not read from (no more requests, no more answers) until they
   * drain; still unread after helloTimeoutMs, or past maxAnswerBytes (the answers to the frames of
   * one chunk already read), it is closed.
   */
  private send(conn: Connection, bytes: Uint8Array): void {
    const socket = conn.socket;
    socket.write(bytes);
    const queued = socket.writableLength;
    if (queued <= this.limits.maxAnswerBytes / 16) return;
    if (queued > this.limits.maxAnswerBytes) {
      this.closeNotReading(conn, `${queued} bytes of answers queued, more than ${this.limits.maxAnswerBytes}`);
      return;
    }
    if (conn.paused) return;
    conn.paused = true;
    this.counters.readPauses++;
    socket.pause();
    conn.unreadTimer = setTimeout(() => this.closeNotReading(conn, `its answers stayed unread for ${this.limits.helloTimeoutMs} ms`), this.limits.helloTimeoutMs);
    conn.unreadTimer.unref();
  }

  private resume(conn: Connection): void {
    if (!conn.paused || conn.closed) return;
    conn.paused = false;
    if (conn.unreadTimer) clearTimeout(conn.unreadTimer);
    conn.unreadTimer = null;
    conn.socket.resume();
  }

  private closeNotReading(conn: Connection, why: string): void {
    if (conn.closed) return;
    this.counters.closedNotReading++;
    this.warnConnection('not reading', `sidecar: closing a connection not reading its answers: ${why}`);
    conn.socket.destroy(); // its queue is what must go: nothing more is written to it
    this.drop(conn);
  }

  /** A protocol violation: one error frame, then the connection is closed. */
  private fail(conn: Connection, err: Error): void {
    if (conn.closed) return;
    this.counters.protocolErrors++;
    const id = err instanceof WireError ? err.requestId : 0;
    this.warnConnection(err instanceof WireError ? err.reason : 'failed', `sidecar: closing a connection: ${err.message}`);
    this.closeWith(conn, err.message, err instanceof WireError ? wireErrorCode(err.reason) : 'ERR_BAD_FRAME', id);
  }

  private drop(conn: Connection): void {
    if (!this.connections.has(conn)) return;
    conn.closed = true;
    if (conn.helloTimer) clearTimeout(conn.helloTimer);
    if (conn.unreadTimer) clearTimeout(conn.unreadTimer);
    this.connections.delete(conn);
    this.laneConnections.delete(conn);
    conn.lane = null; // unmapped when collected
    // Pools are released once the connection's last request is over (a READ may still target them).
    void conn.chain.then(() => {
      for (const p of conn.pools.splice(0)) this.mappings.release(p);
    });
  }

  /** Takes a new request from a connection's lane, if there is one (a bad lane closes the connection). */
  private pollLane(conn: Connection): void {
    if (conn.closed || !conn.lane || conn.paused) return;
    let taken;
    try {
      taken = conn.lane.take(this.limits.maxFrameBytes);
      if (taken && !isBinaryRequest(taken.payload)) throw new PeercacheError('ERR_BAD_FRAME', `lane request ${taken.id}: a lane carries binary exists/get/set requests only`);
    } catch (err) {
      this.fail(conn, new WireError('bad-lane', (err as Error).message, 0));
      return;
    }
    if (!taken) return;
    this.counters.laneRequests++;
    try {
      this.onFrame(conn, { version: PROTOCOL_VERSION, kind: FrameKind.Request, id: taken.id, payload: taken.payload }, true);
    } catch (err) {
      this.fail(conn, err as Error);
    }
  }

  /** An answer to a lane request: into the lane, with an event frame when the client is not polling for it. */
  private answerLane(conn: Connection, id: number, kind: FrameKind, payload: Uint8Array): void {
    const lane = conn.lane!;
    if (!lane.answer(id, kind, payload)) {
      this.send(conn, encodeRawFrame(kind, id, payload)); // too long for the lane: the socket, as usual
      return;
    }
    if (!lane.clientPolls(process.hrtime.bigint())) {
      this.counters.laneWakeups++;
      this.send(conn, encodeRawFrame(FrameKind.Event, id, EMPTY));
    }
  }

  private onFrame(conn: Connection, frame: Frame, viaLane = false): void {
    if (frame.kind === FrameKind.Event && conn.lane && frame.payload.length === 0) {
      this.pollLane(conn); // "look at the lane": the client saw this sidecar was not polling
      return;
    }
    if (frame.kind !== FrameKind.Request) throw new WireError('bad-kind', `a client sends requests (and lane events, once it has a lane) only (got kind ${frame.kind})`, frame.id);
    conn.lastActive = Date.now();
    if (conn.helloDone && conn.helloTimer) {
      clearTimeout(conn.helloTimer); // its first request after hello: a working connection
      conn.helloTimer = null;
    }
    let incoming: Incoming;
    if (isBinaryRequest(frame.payload)) {
      // Decoded now (the payload is a view of the socket's chunk): keys, offsets and lengths become JS values.
      try {
        incoming = { binary: parseBinaryRequest(frame.payload, this.limits) };
      } catch (err) {
        if (!(err instanceof SidecarRequestError)) throw err;
        incoming = { refused: err };
      }
    } else incoming = { json: decodeJson(frame) };
    if (++conn.queued > this.limits.maxQueuedRequests) {
      throw new WireError('slow-reader', `more than ${this.limits.maxQueuedRequests} requests queued on one connection`, frame.id);
    }
    // Nothing in flight (the usual case: one request at a time per connection): served now, in this
    // I/O callback, instead of a promise hop later; otherwise in order behind the others.
    conn.chain = conn.queued === 1 ? this.serve(conn, frame.id, incoming, viaLane) : conn.chain.then(() => this.serve(conn, frame.id, incoming, viaLane));
  }

  private async serve(conn: Connection, id: number, incoming: Incoming, viaLane: boolean): Promise<void> {
    try {
      if (conn.closed) return;
      this.counters.requests++;
      let answer: unknown;
      const binary = !('json' in incoming);
      try {
        if ('refused' in incoming) {
          if (!conn.helloDone) throw new WireError('no-hello', 'the first request must be hello', id);
          throw incoming.refused;
        }
        const req = 'binary' in incoming ? incoming.binary : parseRequest(incoming.json, this.limits);
        if (!conn.helloDone && req.op !== 'hello') throw new WireError('no-hello', 'the first request must be hello', id);
        answer = await this.handle(conn, req);
      } catch (err) {
        if (err instanceof WireError) {
          this.fail(conn, err);
          return;
        }
        this.counters.badRequests++;
        const message = (err as Error).message;
        const code: SidecarErrorCode = err instanceof SidecarRequestError ? err.code : 'ERR_REQUEST_FAILED';
        if (!(err instanceof SidecarRequestError)) this.logger.error(`sidecar: request failed: ${message}`);
        else this.logger.info(`sidecar: bad request: ${message}`);
        if (conn.closed) return;
        if (viaLane) this.answerLane(conn, id, FrameKind.Error, Buffer.from(JSON.stringify({ message, fatal: false, code })));
        else this.send(conn, encodeFrame(FrameKind.Error, id, { message, fatal: false, code }));
        return;
      }
      if (conn.closed) return;
      // Before the answer: a client that gets it through its lane sees this poll's window at once.
      this.busyPoll.extend();
      if (viaLane && answer instanceof Bits) this.answerLane(conn, id, FrameKind.Response, binaryAnswerPayload(answer.op, answer.values));
      else if (answer instanceof Bits) {
        this.send(conn, binary ? encodeBinaryAnswer(id, answer.op, answer.values) : encodeFrame(FrameKind.Response, id, answer.op === 'exists' ? { found: bitString(answer.values) } : { ok: bitString(answer.values) }));
      } else this.send(conn, encodeFrame(FrameKind.Response, id, answer));
    } finally {
      conn.queued--;
      conn.lastActive = Date.now();
    }
  }

  private pool(conn: Connection, index: number): MappedPool {
    const p = conn.pools[index];
    if (!p) throw new SidecarRequestError(`pool ${index} is not registered on this connection`, 'ERR_POOL_GONE');
    if (p.shrunk) throw new SidecarRequestError(`pool ${index} shrank after it was registered: it serves no more requests (register the file again)`, 'ERR_POOL_GONE');
    return p;
  }

  /**
   * Throws when a client shrank a pool's file (checkFile: its size now; otherwise whether a READ or a
   * copy touched a page past its end, which the native SIGBUS guard turned into anonymous memory).
   * After a get the pages did not land in the file; after a set what was published from a shrunk
   * pool may be zeros, which the client could have written there itself.
   */
  private checkIntact(conn: Connection, used: readonly MappedPool[], checkFile: boolean, op: string): void {
    for (const p of used) {
      if (p.shrunk || !this.mappings.shrunk(p, checkFile)) continue;
      const index = conn.pools.indexOf(p);
      this.logger.warn(`sidecar: ${op}: pool ${index} (${p.bytes} bytes) of a client shrank after it was registered: dropped`);
      throw new SidecarRequestError(`${op}: pool ${index} shrank after it was registered (its file is shorter than the ${p.bytes} bytes registered): dropped`, 'ERR_POOL_GONE');
    }
  }

  private async handle(conn: Connection, req: SidecarRequest): Promise<unknown> {
    switch (req.op) {
      case 'hello': {
        if (req.protocol !== SIDECAR_PROTOCOL) throw new WireError('bad-version', `protocol ${JSON.stringify(req.protocol.slice(0, 40))} not supported (this sidecar speaks ${SIDECAR_PROTOCOL})`);
        conn.helloDone = true;
        if (conn.helloTimer) clearTimeout(conn.helloTimer);
        // A connection that says hello and then nothing is not a rank (the adapter registers its
        // pools or asks right after hello): it must not keep a slot.
        conn.helloTimer = setTimeout(() => {
          if (conn.closed) return;
          this.counters.closedIdle++;
          this.fail(conn, new WireError('idle', `no request within ${this.limits.helloTimeoutMs} ms of hello`));
        }, this.limits.helloTimeoutMs);
        return { nodeId: this.store.nodeId, protocol: SIDECAR_PROTOCOL, transport: this.store.protocol, slotBytes: this.store.slotBytes, limits: this.limits, lanes: LANES_SUPPORTED };
      }
      case 'register': {
        if (conn.pools.length >= this.limits.maxPoolsPerConnection) throw new SidecarRequestError(`at most ${this.limits.maxPoolsPerConnection} pools per connection`);
        const p = this.mappings.acquire(req.pid, req.fd, req.bytes);
        conn.pools.push(p);
        return { pool: conn.pools.length - 1 };
      }
      case 'lane': {
        if (!LANES_SUPPORTED) throw new SidecarRequestError(`lanes need x86-64 (this sidecar runs on ${process.arch}): use the socket`);
        if (conn.lane) throw new SidecarRequestError('this connection has a lane already');
        const { path } = clientFile(req.pid, req.fd, LANE_BYTES);
        const lane = new Lane(mapClientFile(req.pid, req.fd, path, LANE_BYTES) as ArrayBuffer); // one buffer: far below 4 GiB
        if (!lane.valid) throw new SidecarRequestError(`fd ${req.fd} of process ${req.pid} is not a lane (no 'PCL1' at its start)`);
        lane.sidecarPollsUntil = this.pollsUntilNs;
        conn.lane = lane;
        this.laneConnections.add(conn);
        return { requestBytes: LANE_REQUEST_BYTES, answerBytes: LANE_ANSWER_BYTES };
      }
      case 'exists': {
        const left = timeLeft('exists', req.deadline);
        const t0 = performance.now();
        // Answered within the client's deadline (as misses past it): a late answer is an error there.
        const found = await this.store.existsObjects(req.keys, left);
        this.timings.exists.add((performance.now() - t0) * 1000);
        return new Bits('exists', found);
      }
      case 'get':
      case 'set': {
        const left = timeLeft(req.op, req.deadline);
        const n = req.keys.length;
        const pools = typeof req.pool === 'number' ? null : req.pool.map((i) => this.pool(conn, i));
        const single = typeof req.pool === 'number' ? this.pool(conn, req.pool) : null;
        for (let j = 0; j < n; j++) {
          const p = single ?? pools![j];
          if (req.offsets[j] + req.lengths[j] > p.bytes) throw new SidecarRequestError(`${req.op}: key ${j} (offset ${req.offsets[j]}, length ${req.lengths[j]}) lies outside its pool of ${p.bytes} bytes`);
        }
        const used = single ? [single] : [...new Set(pools)];
        if (req.op === 'set') {
          // Published pages are seen by every host: a file already shorter is refused before the copy.
          this.checkIntact(conn, used, true, 'set');
          const slot = this.store.slotBytes;
          const sources = req.keys.map((_, j) => {
            if (req.lengths[j] > slot) throw new SidecarRequestError(`set: key ${j} is ${req.lengths[j]} bytes; this sidecar's slots hold ${slot} (--slot-bytes)`);
            const p = single ?? pools![j];
            return p.region.view(req.offsets[j], req.lengths[j]);
          });
          const t0 = performance.now();
          const ok = await this.store.setObjectsFrom(req.keys, sources);
          this.timings.set.add((performance.now() - t0) * 1000);
          this.checkIntact(conn, used, false, 'set');
          return new Bits('set', ok);
        }
        const t0 = performance.now();
        if (single) {
          const got = await this.store.getObjectsInto(req.keys, single.region, req.offsets, req.lengths, left);
          this.timings.get.add((performance.now() - t0) * 1000);
          // A miss may be a READ the kernel refused (EFAULT) past the end of a shrunk file: the tcp
          // data plane reads straight into the pool, so no SIGBUS marks it; ask the file's size then.
          this.checkIntact(conn, used, got.includes(false), 'get');
          return new Bits('get', got);
        }
        // Keys spread over several pools (MHA k and v in separate files): one call per pool.
        const ok = new Array<boolean>(n).fill(false);
        const byPool = new Map<MappedPool, number[]>();
        pools!.forEach((p, j) => {
          const l = byPool.get(p);
          if (l) l.push(j);
          else byPool.set(p, [j]);
        });
        await Promise.all(
          [...byPool].map(async ([p, idx]) => {
            const got = await this.store.getObjectsInto(idx.map((j) => req.keys[j]), p.region, idx.map((j) => req.offsets[j]), idx.map((j) => req.lengths[j]), left);
            idx.forEach((j, k) => (ok[j] = got[k]));
          }),
        );
        this.timings.get.add((performance.now() - t0) * 1000);
        this.checkIntact(conn, used, ok.includes(false), 'get');
        return new Bits('get', ok);
      }
      case 'clear':
        await this.store.clear();
        return {};
      case 'stats': {
        const storeCalls = { get: this.timings.get.summary(), set: this.timings.set.summary(), exists: this.timings.exists.summary() };
        if (req.reset) for (const t of Object.values(this.timings)) t.reset();
        return { ...this.store.stats, ...this.counters, connectionsOpen: this.connections.size, lanes: this.laneCount, pools: this.mappings.count, mappedBytes: this.mappings.mappedBytes, published: this.store.publishedCount, busyPollUs: this.busyPoll.windowUs, busyPollSeconds: this.busyPoll.spunSeconds, storeCalls };
      }
    }
  }

  /** Stops accepting, closes every connection, releases every pool, removes the socket. */
  async close(): Promise<void> {
    this.busyPoll.stop();
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of [...this.connections]) {
      c.socket.destroy();
      this.drop(c);
      await c.chain;
    }
    await closed;
    this.mappings.releaseAll();
    try {
      unlinkSync(this.socketPath);
    } catch {
      /* already gone */
    }
  }
}
