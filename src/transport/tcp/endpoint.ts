/**
 * The tcp transport's client side: an endpoint to one peer node's server. One request frame per
 * batch (more only past the frame limits), many batches pipelined on one connection, every range
 * checked before anything is sent, every wait bounded.
 *
 * Copies: the server writes a big READ's answer as views of its region (no user-space copy; small
 * ones are copied once), and the endpoint reads answers straight into the local views (read(2)
 * into each run of adjacent destinations, the header and its padding alone before them), so a big
 * READ costs the kernel's two copies only. A WRITE is copied once on each side.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { ErrorCode } from '../../errors.js';
import { OP_FIELDS, TransportError, type BatchOptions, type Endpoint, type LocalRegion, type RemoteRegion } from '../types.js';
import { TcpLocal } from './regions.js';
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
  RESPONSE_HEADER,
  RESPONSE_MAGIC,
  STATUS_OK,
  ANSWER_ALIGN,
  answerPad,
  decodeTcpDescriptor,
  errorStatusCode,
  readU64,
  writeRequestHeader,
  writeU64,
  type BufferPool,
  type TcpAddress,
} from './wire.js';

/** The client's reusable staging buffer for reads (headers, reasons, small ops). */
const CLIENT_RECV_BUFFER = 256 << 10;
/** Below this, an op's remaining bytes go through the staging buffer (fewer, bigger reads). */
const MIN_DIRECT_READ = 64 << 10;
const MAX_TIMER_MS = 0x7fffffff;

/** A peer's region attached on one endpoint: the descriptor's id, length and access token. */
export class TcpRemote implements RemoteRegion {
  readonly token: Buffer;
  constructor(
    readonly endpoint: TcpEndpoint,
    readonly regionId: number,
    readonly length: number,
    token: Uint8Array,
  ) {
    this.token = Buffer.from(token);
  }
}

const enum ClientStage {
  Header,
  /** The padding between a READ answer's header and its body (wire.ts). */
  Pad,
  Scatter,
  Collect,
  Skip,
}

class Batch {
  settled = false;
  framesLeft = 0;
  timer: NodeJS.Timeout | undefined;
  constructor(
    readonly verb: 'READ' | 'WRITE',
    readonly count: number,
    readonly resolve: () => void,
    readonly reject: (err: TransportError) => void,
  ) {}

  settle(err: TransportError | null): void {
    if (this.settled) return;
    this.settled = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    if (err === null) this.resolve();
    else this.reject(err);
  }
}

/** One request frame in flight. */
interface PendingFrame {
  readonly kind: number;
  readonly batch: Batch | null; // null: the HELLO
  /** READ: where each answered op's bytes go (the locals' Buffers, parallel arrays by op). */
  readonly dst: Buffer[];
  readonly dstOff: number[];
  readonly len: number[];
  /** READ: bytes from op i's start to the end of its run of adjacent destinations (one read(2) target). */
  readonly run: number[];
  readonly bytes: number;
}

interface FramePlan {
  roff: number[];
  lidx: number[];
  loff: number[];
  len: number[];
  bytes: number;
}

/** Splits a batch's ops into frames within the frame limits (one frame, nearly always). */
function planFrames(ops: Float64Array, count: number): FramePlan[] {
  const plans: FramePlan[] = [];
  let cur: FramePlan = { roff: [], lidx: [], loff: [], len: [], bytes: 0 };
  for (let i = 0; i < count; i++) {
    const q = i * OP_FIELDS;
    let roff = ops[q];
    const lidx = ops[q + 1];
    let loff = ops[q + 2];
    let left = ops[q + 3];
    while (left > 0) {
      if (cur.len.length === MAX_FRAME_OPS || cur.bytes === MAX_FRAME_DATA) {
        plans.push(cur);
        cur = { roff: [], lidx: [], loff: [], len: [], bytes: 0 };
      }
      const n = Math.min(left, MAX_FRAME_DATA - cur.bytes);
      cur.roff.push(roff);
      cur.lidx.push(lidx);
      cur.loff.push(loff);
      cur.len.push(n);
      cur.bytes += n;
      roff += n;
      loff += n;
      left -= n;
    }
  }
  plans.push(cur);
  return plans;
}

export class TcpEndpoint implements Endpoint {
  private readonly pending = new Map<number, PendingFrame>();
  private nextId = 1;
  private closed = false;
  private failed: string | null = null;
  private lastSocketError: string | null = null;
  private corked = false;
  /** A region token was sent on this connection (see attach). */
  private tokenShown = false;
  private hello: { resolve: () => void; reject: (err: TransportError) => void } | null = null;
  // Response decoder state.
  private readonly recv = Buffer.allocUnsafe(CLIENT_RECV_BUFFER);
  private stage = ClientStage.Header;
  private readonly header = new FrameHeaderReader(RESPONSE_HEADER, RESPONSE_MAGIC);
  private cur: PendingFrame | null = null;
  private curId = 0;
  private curStatus = 0;
  private bodyLeft = 0;
  private collect: Buffer = Buffer.alloc(0);
  private collectFill = 0;
  private scatterOp = 0;
  private scatterDone = 0;
  /** Whether the buffer nextReadBuffer() gave last is a local view (else the staging buffer). */
  private direct = false;
  /** Bytes received on this connection (the server pads READ answers by the same count). */
  private received = 0;
  private padLeft = 0;
  private readonly socket: net.Socket;

  private constructor(
    private readonly pool: BufferPool,
    private readonly peerAddress: TcpAddress,
    private readonly defaultTimeoutMs: number,
    /** Called once when the endpoint is closed (its node stops tracking it). */
    private readonly onClosed: (ep: TcpEndpoint) => void,
    tlsOptions: tls.ConnectionOptions | null,
  ) {
    if (tlsOptions !== null) {
      // TLS decrypts into its own buffers (no onread): each chunk is handed to the decoder through
      // the same buffers a plain socket would have read into, so decoding is the same code.
      this.socket = tls.connect({ host: peerAddress.host, port: peerAddress.port, ...tlsOptions }).setNoDelay(true);
      this.socket.on('data', (chunk: Buffer) => {
        let pos = 0;
        while (pos < chunk.length && !this.closed) {
          const target = this.nextReadBuffer();
          const n = Math.min(target.length, chunk.length - pos);
          target.set(chunk.subarray(pos, pos + n));
          this.onBytes(n, target);
          pos += n;
        }
      });
    } else this.socket = net.connect({
      host: peerAddress.host,
      port: peerAddress.port,
      noDelay: true,
      // We pick the buffer of every read(2): while an answer's bytes stream in, the local view
      // they belong in (the kernel copies straight into it, nothing to copy after); otherwise one
      // reusable staging buffer that the decoder empties before returning. No per-read
      // allocation, no concatenation.
      onread: { buffer: () => this.nextReadBuffer(), callback: (n: number, buf: Uint8Array) => this.onBytes(n, buf) },
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => {
      this.lastSocketError = err.code ?? err.message;
    });
    this.socket.on('close', () => {
      this.fail(`connection to peer ${this.peer} lost (${this.lastSocketError ?? 'closed by the peer'})`, 'ERR_TRANSFER');
    });
  }

  /** Connects and completes the HELLO within `timeoutMs`. */
  static open(pool: BufferPool, peer: TcpAddress, timeoutMs: number, onClosed: (ep: TcpEndpoint) => void, tlsOptions: tls.ConnectionOptions | null = null): Promise<TcpEndpoint> {
    const ep = new TcpEndpoint(pool, peer, timeoutMs, onClosed, tlsOptions);
    return new Promise<TcpEndpoint>((resolve, reject) => {
      const timer = setTimeout(() => {
        ep.hello = null;
        ep.failed = 'the handshake timed out';
        ep.closed = true;
        ep.socket.destroy();
        reject(
          new TransportError(
            'ERR_TIMEOUT',
            `peer ${ep.peer} accepted the connection but did not answer the handshake within ${timeoutMs} ms (not a peercache tcp node, or hung)`,
          ),
        );
      }, Math.min(timeoutMs, MAX_TIMER_MS));
      ep.hello = {
        resolve: () => {
          clearTimeout(timer);
          resolve(ep);
        },
        reject: (err) => {
          clearTimeout(timer);
          ep.closed = true;
          ep.socket.destroy();
          reject(err);
        },
      };
      const frame = Buffer.allocUnsafe(REQUEST_HEADER);
      writeRequestHeader(frame, KIND_HELLO, 0, 0, 0, 0, null);
      ep.pending.set(0, { kind: KIND_HELLO, batch: null, dst: [], dstOff: [], len: [], run: [], bytes: NODE_ID_BYTES });
      ep.socket.write(frame);
    });
  }

  get peer(): string {
    const h = this.peerAddress.host;
    return `${h.includes(':') ? `[${h}]` : h}:${this.peerAddress.port}`;
  }

  get failure(): string | null {
    return this.failed;
  }

  lanes(): string[] {
    return ['tcp'];
  }

  private usable(): void {
    if (this.closed) {
      throw new TransportError('ERR_CLOSED', this.failed === null ? 'endpoint is closed' : `endpoint is closed (${this.failed})`);
    }
    if (this.failed !== null) throw new TransportError('ERR_CLOSED', `endpoint failed: ${this.failed}`);
  }

  attach(descriptor: Uint8Array): RemoteRegion {
    this.usable();
    const d = decodeTcpDescriptor(descriptor);
    if (d.nodeId !== this.peerAddress.nodeId) {
      throw new TransportError(
        'ERR_BAD_RKEY',
        `invalid region descriptor: it names a region of node ${d.nodeId}, but this endpoint's peer is node ${this.peerAddress.nodeId}`,
      );
    }
    const remote = new TcpRemote(this, d.regionId, d.length, d.token);
    if (!this.tokenShown && d.length > 0) {
      // The server closes connections that present no valid region token within its authTimeoutMs
      // (and the oldest of them under a flood): a 1-byte READ now proves ours, so an endpoint
      // attached ahead of its first real READ is not taken for a stranger. Its answer is dropped.
      this.tokenShown = true;
      const probe = new Batch('READ', 1, () => undefined, () => undefined);
      probe.framesLeft = 1;
      this.sendFrame(KIND_READ, probe, remote, [Buffer.allocUnsafe(1)], [false], { roff: [0], lidx: [0], loff: [0], len: [1], bytes: 1 });
    }
    return remote;
  }

  read(remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): Promise<void> {
    return this.post(KIND_READ, remote, locals, ops, count, options);
  }

  write(remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): Promise<void> {
    return this.post(KIND_WRITE, remote, locals, ops, count, options);
  }

  /**
   * Validates the whole batch before sending anything, then sends it as one frame (more only past
   * the frame limits). `fenceAt` needs no work here: the server applies a connection's frames in
   * order and each frame's ops in order (a READ's all within one event-loop turn), so every op
   * before the fence is complete before any op after it starts.
   */
  private post(kind: number, remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): Promise<void> {
    const verb = kind === KIND_READ ? 'READ' : 'WRITE';
    let views: Buffer[];
    let copyInto: boolean[];
    let timeoutMs: number;
    try {
      this.usable();
      if (!(remote instanceof TcpRemote)) throw new TransportError('ERR_INVALID_ARG', 'remote region was not attached on a TCP endpoint');
      if (remote.endpoint !== this) {
        throw new TransportError('ERR_BAD_RKEY', 'the remote region is not attached to this endpoint (destroyed, or attached elsewhere)');
      }
      if (!Array.isArray(locals)) throw new TransportError('ERR_INVALID_ARG', `${verb.toLowerCase()}(remote, locals, ops, count): locals must be an array`);
      views = locals.map((l, i) => {
        if (!(l instanceof TcpLocal)) throw new TransportError('ERR_INVALID_ARG', `locals[${i}] was not registered with a TCP transport`);
        if (l.freed) throw new TransportError('ERR_CLOSED', `locals[${i}] is freed`);
        return l.buf;
      });
      copyInto = locals.map((l) => (l as TcpLocal).copyInto);
      if (!(ops instanceof Float64Array)) {
        throw new TransportError('ERR_INVALID_ARG', 'ops must be a Float64Array of [remoteOffset, localIndex, localOffset, length] quads');
      }
      if (!(count >= 1) || !Number.isInteger(count) || count * OP_FIELDS > ops.length) {
        throw new TransportError('ERR_INVALID_ARG', 'count must be a positive integer with 4*count <= ops.length');
      }
      timeoutMs = options?.timeoutMs ?? this.defaultTimeoutMs;
      if (!(timeoutMs > 0)) throw new TransportError('ERR_INVALID_ARG', 'timeoutMs must be > 0: every wait has a deadline');
      for (let i = 0; i < count; i++) {
        const q = i * OP_FIELDS;
        const roff = ops[q];
        const lidx = ops[q + 1];
        const loff = ops[q + 2];
        const len = ops[q + 3];
        if (!(len >= 1) || !Number.isInteger(len)) throw new TransportError('ERR_INVALID_ARG', `op ${i}: length must be a positive integer (got ${len})`);
        if (!(lidx >= 0) || !Number.isInteger(lidx) || lidx >= views.length) throw new TransportError('ERR_INVALID_ARG', `op ${i}: local region index out of range`);
        const local = views[lidx];
        if (!(loff >= 0) || !Number.isInteger(loff) || loff + len > local.length) {
          throw new TransportError('ERR_OUT_OF_RANGE', `op ${i}: local range [${loff}, +${len}) is outside the registered ${local.length} bytes`);
        }
        if (!(roff >= 0) || !Number.isInteger(roff) || roff + len > remote.length) {
          throw new TransportError('ERR_OUT_OF_RANGE', `op ${i}: remote range [${roff}, +${len}) is outside the peer's ${remote.length}-byte region`);
        }
      }
    } catch (err) {
      return Promise.reject(err);
    }
    const tcpRemote = remote as TcpRemote;
    return new Promise<void>((resolve, reject) => {
      const batch = new Batch(verb, count, resolve, reject);
      const plans = planFrames(ops, count);
      batch.framesLeft = plans.length;
      batch.timer = setTimeout(() => this.onTimeout(batch, timeoutMs), Math.min(timeoutMs, MAX_TIMER_MS));
      // Frames posted in the same tick leave in one writev.
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        process.nextTick(() => {
          this.corked = false;
          this.socket.uncork();
        });
      }
      for (const plan of plans) this.sendFrame(kind, batch, tcpRemote, views, copyInto, plan);
    });
  }

  private sendFrame(kind: number, batch: Batch, remote: TcpRemote, views: Buffer[], copyInto: readonly boolean[], plan: FramePlan): void {
    const n = plan.len.length;
    const id = this.nextId;
    this.nextId = this.nextId === 0xffffffff ? 1 : this.nextId + 1;
    const payload = kind === KIND_WRITE ? plan.bytes : 0;
    // Header, ops and (WRITE) payload in one buffer: one write, and a snapshot of the source bytes.
    const frame = this.pool.acquire(REQUEST_HEADER + n * OP_BYTES + payload);
    writeRequestHeader(frame, kind, id, n, payload, remote.regionId, remote.token);
    let at = REQUEST_HEADER;
    for (let i = 0; i < n; i++) {
      writeU64(frame, at, plan.roff[i]);
      writeU64(frame, at + 8, plan.len[i]);
      at += OP_BYTES;
    }
    const dst: Buffer[] = [];
    const run: number[] = [];
    if (kind === KIND_WRITE) {
      for (let i = 0; i < n; i++) {
        views[plan.lidx[i]].copy(frame, at, plan.loff[i], plan.loff[i] + plan.len[i]);
        at += plan.len[i];
      }
    } else {
      for (let i = 0; i < n; i++) dst.push(views[plan.lidx[i]]);
      run.length = n;
      for (let i = n - 1; i >= 0; i--) {
        const adjacent = i + 1 < n && dst[i + 1] === dst[i] && plan.loff[i + 1] === plan.loff[i] + plan.len[i];
        // A destination that may shrink under us gets no direct read (run 0: the staging path).
        run[i] = copyInto[plan.lidx[i]] === true ? 0 : plan.len[i] + (adjacent ? run[i + 1] : 0);
      }
    }
    this.pending.set(id, { kind, batch, dst, dstOff: plan.loff, len: plan.len, run, bytes: kind === KIND_READ ? plan.bytes : 0 });
    this.socket.write(frame, () => this.pool.release(frame));
  }

  private onTimeout(batch: Batch, timeoutMs: number): void {
    if (batch.settled) return;
    batch.settle(
      new TransportError(
        'ERR_TIMEOUT',
        `${batch.verb} batch of ${batch.count} ops timed out after ${timeoutMs} ms (peer ${this.peer} unresponsive); the endpoint was closed`,
      ),
    );
    // As UCX does: the connection may hold half an answer, so it cannot be trusted any more.
    this.failed = 'a batch timed out';
    this.shutdown('ERR_TRANSFER', 'the endpoint was closed (a batch timed out)');
  }

  /** Closes the socket and rejects every batch still in flight. */
  private shutdown(code: ErrorCode, why: string): void {
    this.closed = true;
    this.socket.destroy();
    this.rejectAll(code, why);
    this.onClosed(this);
  }

  private rejectAll(code: ErrorCode, why: string): void {
    const frames = [...this.pending.values()];
    this.pending.clear();
    this.cur = null;
    for (const f of frames) {
      if (f.batch !== null) f.batch.settle(new TransportError(code, `${f.batch.verb} batch of ${f.batch.count} ops failed: ${why}`));
    }
    const hello = this.hello;
    this.hello = null;
    if (hello !== null) {
      const cause = this.lastSocketError ?? why;
      hello.reject(new TransportError('ERR_CONNECT', `cannot connect to the peer at ${this.peer}: ${cause} (is its tcp transport open, and under its connection limit?)`));
    }
  }

  /** The connection broke (peer died, reset, garbage answer): fail everything in flight. */
  private fail(reason: string, code: ErrorCode): void {
    if (this.closed || this.failed !== null) return;
    this.failed = reason;
    this.socket.destroy();
    this.rejectAll(code, reason);
  }

  private protocolError(what: string): void {
    this.fail(`peer ${this.peer} sent a malformed answer: ${what}`, 'ERR_TRANSFER');
  }

  private nextReadBuffer(): Uint8Array {
    this.direct = false;
    if (this.closed || this.failed !== null) return this.recv;
    if (this.stage === ClientStage.Scatter && this.cur !== null) {
      // The rest of the current run of adjacent destinations: the kernel copies straight into it.
      const f = this.cur;
      const left = f.run[this.scatterOp] - this.scatterDone;
      if (left >= MIN_DIRECT_READ) {
        this.direct = true;
        const start = f.dstOff[this.scatterOp] + this.scatterDone;
        return f.dst[this.scatterOp].subarray(start, start + left);
      }
    } else if (this.stage === ClientStage.Header) {
      // The server answers in order: when the next answer is a big READ, read its header alone, so
      // its body is not read into the staging buffer and copied from there. Likewise with nothing
      // in flight: Node asks for the next read's buffer as the last answer completes, before its
      // caller has posted the next batch (measured: 256 KiB of every 4 MiB answer went through
      // the staging buffer).
      const next = this.pending.values().next();
      if (next.done === true || (next.value.kind === KIND_READ && next.value.bytes >= MIN_DIRECT_READ)) {
        const headerEnd = this.received + this.header.missing;
        return this.recv.subarray(0, this.header.missing + answerPad(headerEnd));
      }
    } else if (this.stage === ClientStage.Pad) {
      return this.recv.subarray(0, this.padLeft);
    }
    return this.recv;
  }

  private onBytes(n: number, buf: Uint8Array): boolean {
    this.received += n;
    try {
      if (!this.direct) this.decode(buf as Buffer, n);
      else this.advanceDirect(n);
    } catch (err) {
      this.protocolError(`internal error while decoding: ${(err as Error).message}`);
    }
    return true;
  }

  private decode(chunk: Buffer, end: number): void {
    let pos = 0;
    while (pos < end) {
      if (this.closed || this.failed !== null) return;
      switch (this.stage) {
        case ClientStage.Header: {
          pos = this.header.take(chunk, pos, end);
          if (this.header.complete) this.onHeader(this.header.buf, this.header.at);
          break;
        }
        case ClientStage.Pad: {
          const k = Math.min(this.padLeft, end - pos);
          this.padLeft -= k;
          pos += k;
          if (this.padLeft === 0) this.startBody();
          break;
        }
        case ClientStage.Scatter: {
          // Copy the answer straight into the local views, op by op.
          const f = this.cur as PendingFrame;
          const stop = pos + Math.min(this.bodyLeft, end - pos);
          while (pos < stop) {
            const len = f.len[this.scatterOp];
            const k = Math.min(len - this.scatterDone, stop - pos);
            chunk.copy(f.dst[this.scatterOp], f.dstOff[this.scatterOp] + this.scatterDone, pos, pos + k);
            pos += k;
            this.scatterDone += k;
            this.bodyLeft -= k;
            if (this.scatterDone === len) {
              this.scatterOp++;
              this.scatterDone = 0;
            }
          }
          if (this.bodyLeft === 0) this.finishFrame();
          break;
        }
        case ClientStage.Collect: {
          const k = Math.min(this.bodyLeft, end - pos);
          chunk.copy(this.collect, this.collectFill, pos, pos + k);
          this.collectFill += k;
          this.bodyLeft -= k;
          pos += k;
          if (this.bodyLeft === 0) this.finishFrame();
          break;
        }
        case ClientStage.Skip: {
          const k = Math.min(this.bodyLeft, end - pos);
          this.bodyLeft -= k;
          pos += k;
          if (this.bodyLeft === 0) this.finishFrame();
          break;
        }
      }
    }
  }

  /** n answer bytes were read straight into the current run of local views. */
  private advanceDirect(n: number): void {
    if (this.closed || this.failed !== null) return;
    const f = this.cur as PendingFrame;
    this.bodyLeft -= n;
    while (n > 0) {
      const k = Math.min(f.len[this.scatterOp] - this.scatterDone, n);
      n -= k;
      this.scatterDone += k;
      if (this.scatterDone === f.len[this.scatterOp]) {
        this.scatterOp++;
        this.scatterDone = 0;
      }
    }
    if (this.bodyLeft === 0) this.finishFrame();
  }

  private onHeader(b: Buffer, at: number): void {
    const problem = this.header.problem();
    if (problem !== null) return this.protocolError(problem);
    const kind = b[at + 5];
    const status = b[at + 6];
    const id = b.readUInt32LE(at + 8);
    const body = readU64(b, at + 16);
    const pad = b.readUInt32LE(at + 12);
    if (pad !== 0 && (kind !== KIND_READ || status !== STATUS_OK || pad >= ANSWER_ALIGN)) return this.protocolError(`${pad} bytes of padding`);
    const f = this.pending.get(id);
    if (f === undefined) return this.protocolError(`an answer to request ${id}, which is not in flight`);
    if (f.kind !== kind) return this.protocolError(`request ${id} was kind ${f.kind}, the answer is kind ${kind}`);
    this.cur = f;
    this.curId = id;
    this.curStatus = status;
    this.bodyLeft = body;
    if (status !== STATUS_OK) {
      if (body < 0 || body > MAX_REASON_BYTES) return this.protocolError(`an error reason of ${body} bytes`);
      this.startCollect(body);
    } else if (kind === KIND_READ) {
      if (body !== f.bytes) return this.protocolError(`READ answer of ${body} bytes, ${f.bytes} were asked for`);
      this.padLeft = pad;
      if (pad > 0) this.stage = ClientStage.Pad;
      else this.startBody();
    } else if (kind === KIND_WRITE) {
      if (body !== 0) return this.protocolError(`WRITE acknowledgement with a ${body}-byte body`);
    } else {
      if (body !== NODE_ID_BYTES) return this.protocolError(`HELLO answer of ${body} bytes`);
      this.startCollect(body);
    }
    if (this.bodyLeft === 0) this.finishFrame();
  }

  /** A READ answer's body is next. */
  private startBody(): void {
    const f = this.cur as PendingFrame;
    this.scatterOp = 0;
    this.scatterDone = 0;
    // A batch already failed (a sibling frame was refused): its buffers are the caller's again.
    this.stage = f.batch !== null && f.batch.settled ? ClientStage.Skip : ClientStage.Scatter;
  }

  private startCollect(bytes: number): void {
    if (this.collect.length < bytes) this.collect = Buffer.allocUnsafe(Math.max(bytes, 256));
    this.collectFill = 0;
    this.stage = ClientStage.Collect;
  }

  private finishFrame(): void {
    const f = this.cur as PendingFrame;
    const status = this.curStatus;
    this.stage = ClientStage.Header;
    this.cur = null;
    this.pending.delete(this.curId);
    if (f.batch === null) {
      // The HELLO: did we reach the node the address names?
      const hello = this.hello;
      this.hello = null;
      if (hello === null) return;
      if (status !== STATUS_OK) {
        hello.reject(new TransportError('ERR_CONNECT', `peer ${this.peer} refused the handshake: ${this.collect.toString('utf8', 0, this.collectFill)}`));
        return;
      }
      const nodeId = this.collect.toString('hex', 0, NODE_ID_BYTES);
      if (nodeId !== this.peerAddress.nodeId) {
        hello.reject(
          new TransportError('ERR_CONNECT', `peer ${this.peer} is node ${nodeId}, not node ${this.peerAddress.nodeId} that the address names (stale address?)`),
        );
        return;
      }
      hello.resolve();
      return;
    }
    const batch = f.batch;
    if (status !== STATUS_OK) {
      const reason = this.collect.toString('utf8', 0, this.collectFill);
      batch.settle(new TransportError(errorStatusCode(status), `${batch.verb} batch of ${batch.count} ops refused by peer ${this.peer}: ${reason}`));
      return;
    }
    if (--batch.framesLeft === 0) batch.settle(null);
  }

  close(): void {
    if (this.closed) return;
    this.shutdown('ERR_CLOSED', 'the endpoint was closed while the batch was in flight');
  }
}
