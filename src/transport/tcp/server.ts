/**
 * The tcp transport's data-plane server: each node listens, peers connect and send request frames
 * (wire.ts), and the server answers from the node's published regions, reached only through the
 * ServedRegions interface (lookup by id and token).
 *
 * Consistency, as an RDMA READ/WRITE: on a plain socket a READ of at least VIEW_MIN_BYTES is
 * answered with views of the region (header, then one view per run of adjacent ops, in op order,
 * one writev): no user-space copy, the kernel copies each byte when it takes it, in op order, so a
 * fence within the frame holds (every op before it is taken before any op after it), as does the
 * store's check (data, fence, slot header: a header taken after the data proves the data was not
 * being rewritten when taken). A WRITE frame on the same connection waits until that connection's
 * view answers are taken (a READ before it never sees its bytes). A freed region stays attached
 * until the views of it are done (TcpPublished.pin). Smaller READs, and READs under TLS, are
 * copied within one event-loop turn into one buffer (a snapshot). A WRITE's payload is copied into
 * the region as it arrives, in op order, so no staging buffer per connection; like an RDMA WRITE
 * it is not atomic (a concurrent READ may see part of it, a dropped connection may leave part of
 * it), but bytes land in op order.
 *
 * Limits (TcpServerLimits, defaults in TCP_SERVER_LIMITS), all enforced before memory is spent on
 * a peer: before its HELLO a connection may send only the 48-byte HELLO, within helloTimeoutMs
 * of connecting; after it, a frame's region and token are checked from its header, so a refused
 * frame's ops and payload are skipped, never buffered; a connection with no complete frame for
 * idleTimeoutMs is closed, however many bytes of an unfinished one trickle in; connections past
 * maxConnections are closed as they arrive; and every answer (READ data, acknowledgement, error)
 * is charged to its connection's and to the server's answer budget before it is made: a
 * connection whose queued answers are at its budget is not read until they drain.
 *
 * Fairness (issue 24): granting the total budget in arrival order let non-readers at the head of
 * the queue make everyone wait behind them. Now half of maxTotalAnswerBytes is split evenly into
 * a guaranteed allowance per connection (a reader's small answers never wait for anyone), and the
 * other half is shared: a connection may take from it only up to an even share among those that
 * hold some (a connection holding none may take one answer's worth), and waiting connections are
 * woken independently, not in a line. A connection is unauthenticated until one of its frames
 * carries a valid region token; such connections (only HELLO, or forged tokens) never touch that
 * budget (their answers get a small allowance of their own), are capped in number (a new one
 * closes the oldest) and closed after authTimeoutMs. The one-frame exception (an answer is always
 * allowed when nothing is queued) makes progress certain; MAX_FRAME_DATA bounds it.
 */
import net from 'node:net';
import tls from 'node:tls';
import { TransportError, type TcpServerLimits } from '../types.js';
import { ANSWER_OVERHEAD_BYTES, UNAUTHENTICATED_ANSWER_BYTES } from './limits.js';
import type { Refusal, ServedRegions, TcpPublished } from './regions.js';
import {
  FrameHeaderReader,
  KIND_HELLO,
  KIND_READ,
  KIND_WRITE,
  MAX_FRAME_DATA,
  MAX_FRAME_OPS,
  MAX_REASON_BYTES,
  NODE_ID_BYTES,
  OP_BYTES,
  REQUEST_HEADER,
  REQUEST_MAGIC,
  RESPONSE_HEADER,
  STATUS_BAD_RKEY,
  STATUS_INVALID,
  STATUS_OK,
  STATUS_OUT_OF_RANGE,
  STATUS_READ_ONLY,
  ANSWER_ALIGN,
  TOKEN_BYTES,
  answerPad,
  encodeResponse,
  readU64,
  writeResponseHeader,
  type BufferPool,
} from './wire.js';

/**
 * READ answers of at least this many bytes go out as views of the region, not a copy (measured in
 * bench-results/tcp-breakdown.md: the copy was a quarter of the server's busy time). Below it one
 * copy is cheaper than a writev of many pieces.
 */
export const VIEW_MIN_BYTES = 64 << 10;
/** Past this many runs of adjacent ops an answer is copied: each view is an object held until written. */
const VIEW_MAX_RUNS = 1024;
/** What one view costs beyond its bytes (its Buffer object and iovec), charged to the answer budget. */
const VIEW_OVERHEAD_BYTES = 128;

/** Connection closures logged per window; past it, one line says how many were not. */
const LOG_LINES_PER_WINDOW = 20;
const LOG_WINDOW_MS = 10_000;

/** What the server holds now, for tests and metrics. */
export interface TcpServerStats {
  connections: number;
  /** Answer bytes (with ANSWER_OVERHEAD_BYTES each) made and not yet handed to the kernel. */
  queuedAnswerBytes: number;
  /** Connections closed on arrival because the server was at maxConnections. */
  refusedConnections: number;
  /** Connections that have not sent a frame with a valid region token yet. */
  unauthenticated: number;
}

/** The listening side of one node. */
export class TcpServer {
  private readonly connections = new Set<ServerConnection>();
  /** Connections waiting for the shared answer budget (each woken on its own, not in a line). */
  private readonly waiting = new Set<ServerConnection>();
  /** Connections without a valid token yet, oldest first. */
  private readonly unauthenticated = new Set<ServerConnection>();
  private queuedTotal = 0;
  /** Bytes authenticated connections hold beyond their guaranteed allowance, and how many hold some. */
  private sharedTotal = 0;
  private sharers = 0;
  /** Every connection's guaranteed allowance, and what is left to share. */
  readonly guaranteed: number;
  readonly sharedBudget: number;
  private refused = 0;
  private wakeScheduled = false;
  private closed = false;
  private readonly sweeper: NodeJS.Timeout;
  private logWindowStart = -Infinity;
  private logLines = 0;
  private logDropped = 0;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly regions: ServedRegions,
    readonly pool: BufferPool,
    readonly limits: TcpServerLimits,
    private readonly sink: (line: string) => void,
    /** With tcpTls: every accepted socket is wrapped before it is read (the handshake counts against the HELLO deadline). */
    private readonly secureContext: tls.SecureContext | null,
  ) {
    this.guaranteed = Math.floor(limits.maxTotalAnswerBytes / 2 / limits.maxConnections);
    this.sharedBudget = limits.maxTotalAnswerBytes - this.guaranteed * limits.maxConnections;
    server.on('connection', (socket: net.Socket) => this.accept(socket));
    // Deadlines are checked by one sweep, not a timer per connection (frames must stay cheap):
    // a connection is closed at most a quarter of its deadline late.
    const every = Math.max(5, Math.min(1_000, Math.min(limits.helloTimeoutMs, limits.idleTimeoutMs) / 4));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  /** Listens on `host`, an ephemeral port; rejects with ERR_PROTOCOL_UNAVAILABLE when it cannot. */
  static listen(host: string, regions: ServedRegions, pool: BufferPool, limits: TcpServerLimits, log: (line: string) => void, secureContext: tls.SecureContext | null = null): Promise<TcpServer> {
    return new Promise<TcpServer>((resolve, reject) => {
      const server = net.createServer();
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new TransportError('ERR_PROTOCOL_UNAVAILABLE', `protocol 'tcp' cannot listen on ${host}: ${err.code ?? err.message}`));
      };
      server.once('error', onError);
      server.listen({ host, port: 0 }, () => {
        server.off('error', onError);
        server.on('error', () => undefined);
        const port = (server.address() as net.AddressInfo).port;
        resolve(new TcpServer(server, port, regions, pool, limits, log, secureContext));
      });
    });
  }

  private accept(socket: net.Socket): void {
    if (this.closed) {
      socket.destroy();
      return;
    }
    if (this.connections.size >= this.limits.maxConnections) {
      this.refused++;
      socket.on('error', () => undefined);
      this.log(`peercache tcp: refused a connection from ${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}: at the limit of ${this.limits.maxConnections} connections (tcpLimits.maxConnections)`);
      socket.destroy();
      return;
    }
    if (this.unauthenticated.size >= this.limits.maxUnauthenticated) {
      // The oldest stranger makes room: a flood of HELLO-only connections cannot hold every slot,
      // and a real peer presents its token within a round trip of connecting.
      const oldest = this.unauthenticated.values().next().value as ServerConnection;
      oldest.protocolError(`closed to make room: ${this.limits.maxUnauthenticated} unauthenticated connections (no valid region token yet; tcpLimits.maxUnauthenticated)`);
      this.unauthenticated.delete(oldest);
    }
    let stream: net.Socket = socket;
    if (this.secureContext !== null) {
      socket.on('error', () => undefined);
      stream = new tls.TLSSocket(socket, { isServer: true, secureContext: this.secureContext });
    }
    const c = new ServerConnection(this, stream, performance.now());
    this.connections.add(c);
    this.unauthenticated.add(c);
  }

  /** @internal `c` presented a valid region token. */
  authenticated(c: ServerConnection): void {
    this.unauthenticated.delete(c);
  }

  /** Logs a line, at most LOG_LINES_PER_WINDOW per window: a flood of bad peers cannot flood the log. */
  log(line: string): void {
    const now = performance.now();
    if (now - this.logWindowStart >= LOG_WINDOW_MS) {
      if (this.logDropped > 0) this.sink(`peercache tcp: ${this.logDropped} more lines like the above were not logged`);
      this.logWindowStart = now;
      this.logLines = 0;
      this.logDropped = 0;
    }
    if (this.logLines < LOG_LINES_PER_WINDOW) {
      this.logLines++;
      this.sink(line);
    } else {
      this.logDropped++;
    }
  }

  private sweep(): void {
    const now = performance.now();
    for (const c of this.connections) c.checkDeadlines(now);
  }

  /**
   * Takes `cost` for `c`, whose shared holding goes from `shared` to `after` (0 for an
   * unauthenticated connection or within the guarantee); or queues `c` to be woken when it may.
   */
  take(c: ServerConnection, cost: number, shared: number, after: number): boolean {
    const more = after - shared;
    if (more > 0 && this.queuedTotal > 0) {
      // A connection holding none may take one answer's worth; one holding some, up to an even share.
      const holders = this.sharers + (shared === 0 ? 1 : 0);
      const fits = this.sharedTotal + more <= this.sharedBudget && (shared === 0 || after <= Math.floor(this.sharedBudget / holders));
      if (!fits) {
        this.waiting.add(c);
        return false;
      }
    }
    this.waiting.delete(c);
    this.queuedTotal += cost;
    this.setShared(shared, after);
    return true;
  }

  /** Gives `cost` back (the answer reached the kernel, or its connection died); `c`'s shared holding is now `after`. */
  release(cost: number, shared: number, after: number): void {
    this.queuedTotal -= cost;
    this.setShared(shared, after);
    if (this.waiting.size > 0 && !this.wakeScheduled) {
      this.wakeScheduled = true;
      setImmediate(() => this.wake());
    }
  }

  /** @internal A connection's holding of the shared budget changed from `before` to `after`. */
  setShared(before: number, after: number): void {
    this.sharedTotal += after - before;
    if (before === 0 && after > 0) this.sharers++;
    else if (before > 0 && after === 0) this.sharers--;
  }

  private wake(): void {
    this.wakeScheduled = false;
    // Each on its own: one that still cannot go keeps waiting without holding up the others.
    for (const c of [...this.waiting]) c.resume();
  }

  stats(): TcpServerStats {
    return { connections: this.connections.size, queuedAnswerBytes: this.queuedTotal, refusedConnections: this.refused, unauthenticated: this.unauthenticated.size };
  }

  /** `c` no longer waits for the total budget (it is gone, or waits for its own answers first). */
  leave(c: ServerConnection): void {
    if (this.waiting.delete(c) && this.waiting.size > 0 && !this.wakeScheduled) {
      this.wakeScheduled = true;
      setImmediate(() => this.wake());
    }
  }

  /** @internal */
  drop(c: ServerConnection): void {
    this.connections.delete(c);
    this.unauthenticated.delete(c);
    this.leave(c);
  }

  /** Closes every connection and stops listening. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.sweeper);
    for (const c of [...this.connections]) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const enum Stage {
  Header,
  Ops,
  Payload,
  /** The frame is in; its answer waits for budget. */
  Answer,
}

/** One accepted connection: decodes request frames as they stream in and answers them in order. */
class ServerConnection {
  private stage = Stage.Header;
  private readonly header = new FrameHeaderReader(REQUEST_HEADER, REQUEST_MAGIC, ' (not a peercache tcp client?)');
  private helloed = false;
  /** A frame of this connection carried a valid region token. */
  private authenticated = false;
  private lastFrameAt: number;
  // The frame being decoded.
  private kind = 0;
  private id = 0;
  private count = 0;
  private payload = 0;
  private regionId = 0;
  private readonly token = Buffer.alloc(TOKEN_BYTES);
  /** The frame's region (token checked from its header), or null once it is refused. */
  private region: TcpPublished | null = null;
  private refusal: Refusal | null = null;
  /** Bytes a READ frame's answer carries (the sum of its ops' lengths). */
  private readBytes = 0;
  private ops: Buffer = Buffer.alloc(0);
  private opsFill = 0;
  // A WRITE's payload streams straight into the region, op by op (or is skipped when refused).
  private wOp = 0;
  private wOpDone = 0;
  private wLeft = 0;
  // Answer budget: what this connection's unsent answers cost, and whether reading waits for it.
  private queued = 0;
  /** The part of `queued` counted against the server's shared budget. */
  private shared = 0;
  private stalled = false;
  private resumeScheduled = false;
  private backlog: Buffer | null = null;
  private dead = false;
  /** READ answers sent as views of a region that the kernel has not taken yet (see the top). */
  private viewAnswers = 0;
  /** Answer bytes written on this connection so far (where a view answer's padding ends: wire.ts). */
  private sentBytes = 0;
  /** Plain sockets answer big READs with views; TLS copies (it encrypts into its own buffers anyway). */
  private readonly zeroCopy: boolean;

  constructor(
    private readonly server: TcpServer,
    readonly socket: net.Socket,
    private readonly connectedAt: number,
  ) {
    this.lastFrameAt = connectedAt;
    this.zeroCopy = !(socket instanceof tls.TLSSocket);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A client going away is normal; it must never surface as an uncaught 'error'.
    socket.on('error', () => undefined);
    socket.on('close', () => this.onClose());
  }

  private get peer(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  private onClose(): void {
    this.dead = true;
    // Answers still queued are dropped with the socket: their budget is free again.
    if (this.queued > 0) this.server.release(this.queued, this.shared, 0);
    this.queued = 0;
    this.shared = 0;
    this.server.drop(this);
  }

  /** Bytes of `queued` beyond this connection's guarantee (none while unauthenticated). */
  private sharedFor(queued: number): number {
    return this.authenticated ? Math.max(0, queued - this.server.guaranteed) : 0;
  }

  protocolError(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    this.server.log(`peercache tcp: closing the connection from ${this.peer}: ${reason}`);
    this.socket.destroy();
  }

  checkDeadlines(now: number): void {
    const limits = this.server.limits;
    if (!this.helloed) {
      if (now - this.connectedAt > limits.helloTimeoutMs) this.protocolError(`no HELLO within ${limits.helloTimeoutMs} ms of connecting`);
    } else if (!this.authenticated && now - this.connectedAt > limits.authTimeoutMs) {
      this.protocolError(`unauthenticated: no frame with a valid region token within ${limits.authTimeoutMs} ms of connecting (tcpLimits.authTimeoutMs)`);
    } else if (now - this.lastFrameAt > limits.idleTimeoutMs) {
      this.protocolError(`no complete frame for ${limits.idleTimeoutMs} ms (idle, or a frame trickling in)`);
    }
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    if (this.stalled) {
      // Paused, but a chunk already read may still arrive.
      this.backlog = this.backlog === null ? chunk : Buffer.concat([this.backlog, chunk]);
      return;
    }
    this.run(chunk);
  }

  private run(chunk: Buffer): void {
    try {
      this.decode(chunk);
    } catch (err) {
      // A bug or garbage we did not foresee: lose this connection, never the server.
      this.protocolError(`internal error while decoding: ${(err as Error).message}`);
    }
  }

  /** Budget came free: answer the waiting frame, then go on with what was read meanwhile. */
  resume(): void {
    if (this.dead || !this.stalled) return;
    if (this.stage === Stage.Answer && !this.answer()) return;
    if (this.mustDrain()) return;
    this.stalled = false;
    const rest = this.backlog;
    this.backlog = null;
    if (rest !== null) this.run(rest);
    if (!this.stalled && !this.dead) this.socket.resume();
  }

  private decode(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (!this.dead) {
      if (this.stage === Stage.Answer && !this.answer()) {
        // No budget for this answer yet: stop reading the connection until there is.
        this.stalled = true;
        if (pos < end) this.backlog = chunk.subarray(pos);
        this.socket.pause();
        return;
      }
      if (this.mustDrain()) {
        // A WRITE waits for this connection's view answers to be taken (its send callback resumes).
        this.stalled = true;
        if (pos < end) this.backlog = chunk.subarray(pos);
        this.socket.pause();
        return;
      }
      if (pos >= end) return;
      if (this.stage === Stage.Header) {
        pos = this.header.take(chunk, pos, end);
        if (this.header.complete) this.onHeader(this.header.buf, this.header.at);
      } else if (this.stage === Stage.Ops) {
        pos = this.takeOps(chunk, pos, end);
      } else {
        pos = this.onPayload(chunk, pos, end);
      }
    }
  }

  private onHeader(b: Buffer, at: number): void {
    const problem = this.header.problem();
    if (problem !== null) return this.protocolError(problem);
    const kind = b[at + 5];
    const count = b.readUInt32LE(at + 12);
    const payload = readU64(b, at + 16);
    if (kind !== KIND_HELLO && kind !== KIND_READ && kind !== KIND_WRITE) return this.protocolError(`unknown frame kind ${kind}`);
    if (count > MAX_FRAME_OPS) return this.protocolError(`frame of ${count} ops is over the limit of ${MAX_FRAME_OPS}`);
    if (payload < 0 || payload > MAX_FRAME_DATA) {
      return this.protocolError(`frame payload of ${payload < 0 ? '>= 2^53' : payload} bytes is over the limit of ${MAX_FRAME_DATA}`);
    }
    if (kind !== KIND_WRITE && payload !== 0) return this.protocolError('a HELLO or READ frame carries no payload');
    if (kind === KIND_HELLO && count !== 0) return this.protocolError('a HELLO frame carries no ops');
    if (!this.helloed && kind !== KIND_HELLO) return this.protocolError(`the first frame must be HELLO, not ${kind === KIND_READ ? 'READ' : 'WRITE'}`);
    this.kind = kind;
    this.id = b.readUInt32LE(at + 8);
    this.count = count;
    this.payload = payload;
    this.regionId = b.readUInt32LE(at + 24);
    b.copy(this.token, 0, at + 32, at + 48);
    this.opsFill = 0;
    this.refusal = null;
    this.region = null;
    if (kind === KIND_HELLO) {
      this.helloed = true;
      return this.frameIn();
    }
    // Region and token are checked now, from the header: a refused frame's ops and payload are
    // skipped as they arrive, never buffered.
    if (count === 0) {
      this.refusal = { status: STATUS_INVALID, reason: 'a batch has at least one op' };
    } else {
      const found = this.server.regions.lookup(this.regionId, this.token);
      if (!('status' in found) && !this.authenticated) {
        this.authenticated = true;
        this.server.authenticated(this);
        const after = this.sharedFor(this.queued);
        this.server.setShared(this.shared, after);
        this.shared = after;
      }
      if ('status' in found) this.refusal = found;
      else if (kind === KIND_WRITE && !found.remoteWritable) {
        this.refusal = { status: STATUS_READ_ONLY, reason: `region ${this.regionId} is read-only to peers (its node did not allocate it remoteWritable)` };
      } else this.region = found;
    }
    if (count > 0) this.stage = Stage.Ops;
    else this.afterOps();
  }

  private takeOps(chunk: Buffer, pos: number, end: number): number {
    const need = this.count * OP_BYTES;
    if (this.refusal !== null) {
      const n = Math.min(need - this.opsFill, end - pos);
      this.opsFill += n;
      if (this.opsFill === need) this.afterOps();
      return pos + n;
    }
    if (this.opsFill === 0 && end - pos >= need) {
      this.ops = chunk.subarray(pos, pos + need); // no copy: socket chunks are never reused
      this.afterOps();
      return pos + need;
    }
    if (this.opsFill === 0) this.ops = Buffer.allocUnsafe(need);
    const n = Math.min(need - this.opsFill, end - pos);
    chunk.copy(this.ops, this.opsFill, pos, pos + n);
    this.opsFill += n;
    if (this.opsFill === need) this.afterOps();
    return pos + n;
  }

  /** Every op of an accepted frame within the region, and the bytes they move; or the refusal. */
  private checkOps(region: TcpPublished): Refusal | number {
    if (region.freed) return { status: STATUS_BAD_RKEY, reason: `region ${this.regionId} was freed` };
    let bytes = 0;
    const ops = this.ops;
    for (let i = 0; i < this.count; i++) {
      const roff = readU64(ops, i * OP_BYTES);
      const len = readU64(ops, i * OP_BYTES + 8);
      if (len <= 0 || len > MAX_FRAME_DATA) return { status: STATUS_INVALID, reason: `op ${i}: length must be a positive integer of at most ${MAX_FRAME_DATA}` };
      if (roff < 0 || roff + len > region.length) {
        return {
          status: STATUS_OUT_OF_RANGE,
          reason: `op ${i}: remote range [${roff}, +${len}) is outside region ${this.regionId} (${region.length} bytes)`,
        };
      }
      bytes += len;
    }
    if (bytes > MAX_FRAME_DATA) return { status: STATUS_INVALID, reason: `frame moves ${bytes} bytes, over the limit of ${MAX_FRAME_DATA}` };
    return bytes;
  }

  private afterOps(): void {
    if (this.region !== null) {
      const checked = this.checkOps(this.region);
      if (typeof checked === 'number') this.readBytes = checked;
      else this.refuse(checked);
    }
    if (this.kind === KIND_READ) return this.frameIn();
    // WRITE: the payload follows.
    if (this.region !== null && this.readBytes !== this.payload) {
      this.refuse({ status: STATUS_INVALID, reason: `payload of ${this.payload} bytes does not match the ops' ${this.readBytes} bytes` });
    }
    this.wOp = 0;
    this.wOpDone = 0;
    this.wLeft = this.payload;
    if (this.wLeft === 0) this.frameIn();
    else this.stage = Stage.Payload;
  }

  private refuse(refusal: Refusal): void {
    this.region = null;
    this.refusal = refusal;
  }

  /** A WRITE's payload must not land while a READ before it on this connection is still a view the kernel has not taken. */
  private mustDrain(): boolean {
    return this.stage === Stage.Payload && this.viewAnswers > 0 && this.region !== null;
  }

  private onPayload(chunk: Buffer, pos: number, end: number): number {
    const take = Math.min(this.wLeft, end - pos);
    if (this.region !== null && this.region.freed) this.refuse({ status: STATUS_BAD_RKEY, reason: `region ${this.regionId} was freed during the write` });
    const region = this.region;
    if (region !== null) {
      // Copy into the region op by op, in op order.
      let p = pos;
      const stop = pos + take;
      const dst = region.buf;
      while (p < stop) {
        const roff = readU64(this.ops, this.wOp * OP_BYTES);
        const len = readU64(this.ops, this.wOp * OP_BYTES + 8);
        const n = Math.min(len - this.wOpDone, stop - p);
        chunk.copy(dst, roff + this.wOpDone, p, p + n);
        p += n;
        this.wOpDone += n;
        if (this.wOpDone === len) {
          this.wOp++;
          this.wOpDone = 0;
        }
      }
    }
    this.wLeft -= take;
    if (this.wLeft === 0) this.frameIn();
    return pos + take;
  }

  /** The whole frame has arrived: the idle clock restarts, and its answer is next. */
  private frameIn(): void {
    this.lastFrameAt = performance.now();
    this.stage = Stage.Answer;
  }

  /** Makes and sends the current frame's answer if the budget allows; false when it must wait. */
  private answer(): boolean {
    // A READ waiting for budget may outlive its region.
    if (this.kind === KIND_READ && this.region !== null && this.region.freed) this.refuse({ status: STATUS_BAD_RKEY, reason: `region ${this.regionId} was freed` });
    const refusal = this.refusal;
    if (refusal !== null) {
      const body = Buffer.from(refusal.reason, 'utf8').subarray(0, MAX_REASON_BYTES);
      const cost = this.reserve(RESPONSE_HEADER + body.length);
      if (cost < 0) return false;
      this.send(encodeResponse(this.kind, refusal.status, this.id, body), cost, false);
    } else if (this.kind === KIND_HELLO) {
      const cost = this.reserve(RESPONSE_HEADER + NODE_ID_BYTES);
      if (cost < 0) return false;
      this.send(encodeResponse(KIND_HELLO, STATUS_OK, this.id, Buffer.from(this.server.regions.nodeId, 'hex')), cost, false);
    } else if (this.kind === KIND_WRITE) {
      const cost = this.reserve(RESPONSE_HEADER);
      if (cost < 0) return false;
      this.send(encodeResponse(KIND_WRITE, STATUS_OK, this.id, null), cost, false);
    } else {
      const runs = this.viewRuns();
      const cost = this.reserve(RESPONSE_HEADER + ANSWER_ALIGN + this.readBytes + (runs > 0 ? runs * VIEW_OVERHEAD_BYTES : 0));
      if (cost < 0) return false;
      if (runs > 0) this.sendViews(this.region as TcpPublished, cost);
      else this.sendCopy(cost);
    }
    this.stage = Stage.Header;
    this.region = null;
    this.refusal = null;
    this.ops = Buffer.alloc(0);
    return true;
  }

  /** Runs of adjacent ops (the views) a READ answer would be sent as, or 0 when it is copied. */
  private viewRuns(): number {
    if (!this.zeroCopy || this.readBytes < VIEW_MIN_BYTES) return 0;
    const ops = this.ops;
    let runs = 0;
    let runEnd = -1;
    for (let i = 0; i < this.count; i++) {
      const roff = readU64(ops, i * OP_BYTES);
      if (roff !== runEnd && ++runs > VIEW_MAX_RUNS) return 0;
      runEnd = roff + readU64(ops, i * OP_BYTES + 8);
    }
    return runs;
  }

  /** The READ answer as its header and views of the region, in op order, in one writev. */
  private sendViews(region: TcpPublished, cost: number): void {
    const pad = answerPad(this.sentBytes + RESPONSE_HEADER);
    const head = Buffer.alloc(RESPONSE_HEADER + pad);
    writeResponseHeader(head, KIND_READ, STATUS_OK, this.id, this.readBytes, pad);
    this.sentBytes += head.length + this.readBytes;
    const socket = this.socket;
    const src = region.buf;
    const ops = this.ops;
    region.pin();
    this.viewAnswers++;
    socket.cork();
    socket.write(head);
    let start = readU64(ops, 0);
    let end = start + readU64(ops, 8);
    for (let i = 1; i < this.count; i++) {
      const roff = readU64(ops, i * OP_BYTES);
      const len = readU64(ops, i * OP_BYTES + 8);
      if (roff === end) {
        end += len;
        continue;
      }
      socket.write(src.subarray(start, end));
      start = roff;
      end = roff + len;
    }
    // Callbacks run in write order, after the kernel took the bytes (or with an error once the
    // socket is destroyed, when libuv no longer touches them): the last one ends the answer.
    socket.write(src.subarray(start, end), () => {
      this.viewAnswers--;
      region.unpin();
      this.written(cost);
    });
    socket.uncork();
  }

  private sendCopy(cost: number): void {
    // Copied whole within this turn, ops in order (so any fence holds), into one buffer: a
    // snapshot of the region now, not a view of live memory the kernel would copy later.
    const out = this.server.pool.acquire(RESPONSE_HEADER + this.readBytes);
    writeResponseHeader(out, KIND_READ, STATUS_OK, this.id, this.readBytes);
    let at = RESPONSE_HEADER;
    const src = (this.region as TcpPublished).buf;
    const ops = this.ops;
    for (let i = 0; i < this.count; i++) {
      const roff = readU64(ops, i * OP_BYTES);
      const len = readU64(ops, i * OP_BYTES + 8);
      src.copy(out, at, roff, roff + len);
      at += len;
    }
    this.send(out, cost, true);
  }

  /** Charges an answer of `bytes` to this connection and the server; its cost, or -1 to wait. */
  private reserve(bytes: number): number {
    const cost = bytes + ANSWER_OVERHEAD_BYTES;
    const own = this.authenticated ? this.server.limits.maxQueuedAnswerBytes : UNAUTHENTICATED_ANSWER_BYTES;
    // Over this connection's budget: its own answers draining wake it (see send).
    if (this.queued > 0 && this.queued + cost > own) {
      this.server.leave(this);
      return -1;
    }
    const after = this.sharedFor(this.queued + cost);
    if (!this.server.take(this, cost, this.shared, after)) return -1;
    this.queued += cost;
    this.shared = after;
    return cost;
  }

  private send(frame: Buffer, cost: number, pooled: boolean): void {
    const pool = this.server.pool;
    this.sentBytes += frame.length;
    this.socket.write(frame, () => {
      if (pooled) pool.release(frame);
      this.written(cost);
    });
  }

  /** An answer costing `cost` reached the kernel (or its socket died): its budget is free again. */
  private written(cost: number): void {
    if (this.dead) return; // onClose gave the budget back
    this.queued -= cost;
    const after = this.sharedFor(this.queued);
    this.server.release(cost, this.shared, after);
    this.shared = after;
    if (this.stalled && !this.resumeScheduled) {
      this.resumeScheduled = true;
      setImmediate(() => {
        this.resumeScheduled = false;
        this.resume();
      });
    }
  }

  destroy(): void {
    this.dead = true;
    this.socket.destroy();
  }
}
