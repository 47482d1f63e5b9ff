/**
 * The tcp transport's data-plane server: each node listens, peers connect and send request frames
 * (wire.ts), and the server answers from the node's published regions, reached only through the
 * ServedRegions interface (lookup by id and token).
 *
 * Consistency: a READ frame is served whole within one event-loop turn (a snapshot copied into
 * the answer). A WRITE's payload is copied into the region as it arrives, in op order, so no
 * staging buffer per connection; like an RDMA WRITE it is not atomic (a concurrent READ may see
 * part of it, a dropped connection may leave part of it), but bytes land in op order.
 */
import net from 'node:net';
import { TransportError } from '../types.js';
import type { Refusal, ServedRegions, TcpPublished } from './regions.js';
import {
  FrameHeaderReader,
  KIND_HELLO,
  KIND_READ,
  KIND_WRITE,
  MAX_FRAME_DATA,
  MAX_FRAME_OPS,
  MAX_REASON_BYTES,
  OP_BYTES,
  REQUEST_HEADER,
  REQUEST_MAGIC,
  RESPONSE_HEADER,
  STATUS_BAD_RKEY,
  STATUS_INVALID,
  STATUS_OK,
  STATUS_OUT_OF_RANGE,
  STATUS_READ_ONLY,
  TOKEN_BYTES,
  encodeResponse,
  readU64,
  writeResponseHeader,
  type BufferPool,
} from './wire.js';

/** The server stops reading a connection while this much of its answers is queued unsent. */
const SERVER_SEND_HIGH_WATER = 64 << 20;

/** The listening side of one node. */
export class TcpServer {
  private readonly connections = new Set<ServerConnection>();
  private closed = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    readonly regions: ServedRegions,
    readonly pool: BufferPool,
    readonly log: (line: string) => void,
  ) {
    server.on('connection', (socket: net.Socket) => {
      if (this.closed) {
        socket.destroy();
        return;
      }
      this.connections.add(new ServerConnection(this, socket));
    });
  }

  /** Listens on `host`, an ephemeral port; rejects with ERR_PROTOCOL_UNAVAILABLE when it cannot. */
  static listen(host: string, regions: ServedRegions, pool: BufferPool, log: (line: string) => void): Promise<TcpServer> {
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
        resolve(new TcpServer(server, port, regions, pool, log));
      });
    });
  }

  /** @internal */
  drop(c: ServerConnection): void {
    this.connections.delete(c);
  }

  /** Closes every connection and stops listening. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const c of [...this.connections]) c.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

const enum Stage {
  Header,
  Ops,
  Payload,
}

/** One accepted connection: decodes request frames as they stream in and answers them in order. */
class ServerConnection {
  private stage = Stage.Header;
  private readonly header = new FrameHeaderReader(REQUEST_HEADER, REQUEST_MAGIC, ' (not a peercache tcp client?)');
  // The frame being decoded.
  private kind = 0;
  private id = 0;
  private count = 0;
  private payload = 0;
  private regionId = 0;
  private readonly token = Buffer.alloc(TOKEN_BYTES);
  private ops: Buffer = Buffer.alloc(0);
  private opsFill = 0;
  // A WRITE's payload streams straight into the region, op by op (or is skipped after an error).
  private wRegion: TcpPublished | null = null;
  private wError: Refusal | null = null;
  private wOp = 0;
  private wOpDone = 0;
  private wLeft = 0;
  // Backpressure: while too much of our answers is unsent, stop decoding (and reading).
  private blocked = false;
  private backlog: Buffer | null = null;
  private dead = false;

  constructor(
    private readonly server: TcpServer,
    readonly socket: net.Socket,
  ) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A client going away is normal; it must never surface as an uncaught 'error'.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.dead = true;
      server.drop(this);
    });
  }

  private get peer(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  private protocolError(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    this.server.log(`peercache tcp: closing the connection from ${this.peer}: ${reason}`);
    this.socket.destroy();
  }

  private onData(chunk: Buffer): void {
    if (this.dead) return;
    if (this.blocked) {
      this.backlog = this.backlog === null ? chunk : Buffer.concat([this.backlog, chunk]);
      return;
    }
    try {
      this.decode(chunk);
    } catch (err) {
      // A bug or garbage we did not foresee: lose this connection, never the server.
      this.protocolError(`internal error while decoding: ${(err as Error).message}`);
    }
  }

  private decode(chunk: Buffer): void {
    let pos = 0;
    const end = chunk.length;
    while (pos < end && !this.dead) {
      if (this.blocked) {
        this.backlog = chunk.subarray(pos);
        return;
      }
      if (this.stage === Stage.Header) {
        pos = this.header.take(chunk, pos, end);
        if (this.header.complete) this.onHeader(this.header.buf, this.header.at);
      } else if (this.stage === Stage.Ops) {
        const need = this.count * OP_BYTES;
        if (this.opsFill === 0 && end - pos >= need) {
          this.ops = chunk.subarray(pos, pos + need); // no copy: socket chunks are never reused
          pos += need;
          this.onOps();
        } else {
          if (this.opsFill === 0) this.ops = Buffer.allocUnsafe(need);
          const n = Math.min(need - this.opsFill, end - pos);
          chunk.copy(this.ops, this.opsFill, pos, pos + n);
          this.opsFill += n;
          pos += n;
          if (this.opsFill === need) this.onOps();
        }
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
    this.kind = kind;
    this.id = b.readUInt32LE(at + 8);
    this.count = count;
    this.payload = payload;
    this.regionId = b.readUInt32LE(at + 24);
    b.copy(this.token, 0, at + 32, at + 48);
    this.opsFill = 0;
    if (kind === KIND_HELLO) {
      this.send(encodeResponse(KIND_HELLO, STATUS_OK, this.id, Buffer.from(this.server.regions.nodeId, 'hex')));
      return;
    }
    if (count === 0) {
      // No ops: nothing to decode; a WRITE's payload (if any) is skipped, then refused.
      this.ops = Buffer.alloc(0);
      this.onOps();
      return;
    }
    this.stage = Stage.Ops;
  }

  /** Checks the frame's region, token and every op's range: the region and the bytes moved, or why not. */
  private check(): Refusal | { region: TcpPublished; bytes: number } {
    if (this.count === 0) return { status: STATUS_INVALID, reason: 'a batch has at least one op' };
    const region = this.server.regions.lookup(this.regionId, this.token);
    if ('status' in region) return region;
    if (this.kind === KIND_WRITE && !region.remoteWritable) {
      return { status: STATUS_READ_ONLY, reason: `region ${this.regionId} is read-only to peers (its node did not allocate it remoteWritable)` };
    }
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
    return { region, bytes };
  }

  private onOps(): void {
    this.stage = Stage.Header;
    const c = this.check();
    if (this.kind === KIND_READ) {
      if ('status' in c) return this.sendError(c.status, c.reason);
      // Served whole within this turn, ops in order (so any fence holds), into one buffer: a
      // snapshot of the region now, not a view of live memory the kernel would copy later.
      const out = this.server.pool.acquire(RESPONSE_HEADER + c.bytes);
      writeResponseHeader(out, KIND_READ, STATUS_OK, this.id, c.bytes);
      let at = RESPONSE_HEADER;
      const src = c.region.buf;
      const ops = this.ops;
      for (let i = 0; i < this.count; i++) {
        const roff = readU64(ops, i * OP_BYTES);
        const len = readU64(ops, i * OP_BYTES + 8);
        src.copy(out, at, roff, roff + len);
        at += len;
      }
      this.send(out, true);
      return;
    }
    // WRITE: the payload follows.
    this.wOp = 0;
    this.wOpDone = 0;
    this.wLeft = this.payload;
    if ('status' in c) {
      this.wRegion = null;
      this.wError = c;
    } else if (c.bytes !== this.payload) {
      this.wRegion = null;
      this.wError = { status: STATUS_INVALID, reason: `payload of ${this.payload} bytes does not match the ops' ${c.bytes} bytes` };
    } else {
      this.wRegion = c.region;
      this.wError = null;
    }
    if (this.wLeft === 0) this.finishWrite();
    else this.stage = Stage.Payload;
  }

  private onPayload(chunk: Buffer, pos: number, end: number): number {
    const take = Math.min(this.wLeft, end - pos);
    const region = this.wRegion;
    if (region !== null && region.freed) {
      this.wRegion = null;
      this.wError = { status: STATUS_BAD_RKEY, reason: `region ${this.regionId} was freed during the write` };
    }
    if (this.wRegion !== null) {
      // Copy into the region op by op, in op order.
      let p = pos;
      const stop = pos + take;
      const dst = this.wRegion.buf;
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
    if (this.wLeft === 0) {
      this.stage = Stage.Header;
      this.finishWrite();
    }
    return pos + take;
  }

  private finishWrite(): void {
    const err = this.wError;
    this.wRegion = null;
    this.wError = null;
    if (err !== null) this.sendError(err.status, err.reason);
    else this.send(encodeResponse(KIND_WRITE, STATUS_OK, this.id, null));
  }

  private sendError(status: number, reason: string): void {
    const body = Buffer.from(reason, 'utf8').subarray(0, MAX_REASON_BYTES);
    this.send(encodeResponse(this.kind, status, this.id, body));
  }

  private send(frame: Buffer, pooled = false): void {
    const pool = this.server.pool;
    if (this.dead) {
      if (pooled) pool.release(frame);
      return;
    }
    if (pooled) this.socket.write(frame, () => pool.release(frame));
    else this.socket.write(frame);
    if (this.socket.writableLength > SERVER_SEND_HIGH_WATER && !this.blocked) {
      this.blocked = true;
      this.socket.pause();
      this.socket.once('drain', () => this.unblock());
    }
  }

  private unblock(): void {
    this.blocked = false;
    const rest = this.backlog;
    this.backlog = null;
    if (rest !== null && rest.length > 0) this.onData(rest);
    if (!this.blocked && !this.dead) this.socket.resume();
  }

  destroy(): void {
    this.dead = true;
    this.socket.destroy();
  }
}
