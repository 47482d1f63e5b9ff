/**
 * The pure-TypeScript TCP fallback (`--protocol tcp`): the same one-sided READ/WRITE contract as
 * ucx.ts, served by a small TCP server in each node. Smoke tests only (no RDMA, no zero copy), but
 * not careless: one request frame per batch, many batches pipelined on one connection, access
 * tokens checked, every range checked on both sides, every wait bounded.
 *
 * Wire format (version 1, all integers little endian, u64 = lo u32 + hi u32, values < 2^53):
 *
 *   address blob (20 + host bytes):
 *     0 u32 magic 'PCTA'  4 u16 version  6 u16 port  8 8 B node id  16 u16 host bytes  18 u16 0
 *    20 host (UTF-8)
 *
 *   region descriptor (52 bytes): the rkey of this transport
 *     0 u32 magic 'PCTD'  4 u16 version  6 u16 0  8 8 B node id  16 u32 region id  20 u32 0
 *    24 u64 region length  32 16 B random access token  48 u32 FNV-1a of bytes 0..47
 *
 *   request frame, client -> server: a 48-byte header, `count` ops, then (WRITE) the payload
 *     0 u32 magic 'PCTQ'  4 u8 version  5 u8 kind (1 HELLO, 2 READ, 3 WRITE)  6 u16 0
 *     8 u32 request id  12 u32 op count  16 u64 payload bytes (WRITE: sum of op lengths, else 0)
 *    24 u32 region id  28 u32 0  32 16 B access token
 *    48 ops: count x (u64 remote offset, u64 length)    then payload: the ops' bytes, in op order
 *
 *   response frame, server -> client: a 24-byte header, then the body
 *     0 u32 magic 'PCTR'  4 u8 version  5 u8 kind (echoed)  6 u8 status  7 u8 0
 *     8 u32 request id  12 u32 0  16 u64 body bytes
 *     body: READ ok: the ops' bytes concatenated in op order; WRITE ok: empty;
 *           HELLO ok: the server's 8-byte node id; any error: the reason (UTF-8, <= 64 KiB)
 *
 * A connection opens with HELLO (the client checks it reached the node its address names). The
 * server handles the frames of one connection in arrival order and answers in that order; the
 * client still matches answers by request id. A batch bigger than the frame limits (1 GiB of data,
 * 65 536 ops) is split into several frames, sent back to back.
 *
 * Consistency: a READ frame is served whole within one event-loop turn (a snapshot copied into
 * the answer). A WRITE's payload is copied into the region as it arrives, in op order, so no
 * 1 GiB staging buffer per connection; like an RDMA WRITE it is not atomic (a concurrent READ may
 * see part of it, a dropped connection may leave part of it), but bytes land in op order.
 *
 * Copies: the server copies a READ's bytes once (region -> pooled answer buffer); the client
 * reads answers straight into the local views (read(2) into them), so a READ costs one user-space
 * copy plus the kernel's two. A WRITE is copied once on each side.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import net from 'node:net';
import {
  DEFAULT_BATCH_TIMEOUT_MS,
  OP_FIELDS,
  TransportError,
  type BatchOptions,
  type Endpoint,
  type LocalRegion,
  type PublishedRegion,
  type RemoteRegion,
  type TransportNode,
  type TransportOptions,
} from './types.js';

// ---------------------------------------------------------------------------------------- wire

const WIRE_VERSION = 1;
const ADDRESS_MAGIC = 0x41544350; // 'PCTA'
const DESCRIPTOR_MAGIC = 0x44544350; // 'PCTD'
const REQUEST_MAGIC = 0x51544350; // 'PCTQ'
const RESPONSE_MAGIC = 0x52544350; // 'PCTR'
const ADDRESS_HEADER = 20;
const DESCRIPTOR_BYTES = 52;
const REQUEST_HEADER = 48;
const RESPONSE_HEADER = 24;
const OP_BYTES = 16;
const TOKEN_BYTES = 16;
const NODE_ID_BYTES = 8;

const KIND_HELLO = 1;
const KIND_READ = 2;
const KIND_WRITE = 3;

const STATUS_OK = 0;
const STATUS_BAD_RKEY = 1;
const STATUS_OUT_OF_RANGE = 2;
const STATUS_INVALID = 3;

/** Data bytes one frame may carry (a WRITE's payload, a READ's answer). */
const MAX_FRAME_DATA = 1 << 30;
/** Ops one request frame may carry: the op list is buffered whole, so it stays small (1 MiB). */
const MAX_FRAME_OPS = 1 << 16;
const MAX_REASON_BYTES = 1 << 16;
/** The server stops reading a connection while this much of its answers is queued unsent. */
const SERVER_SEND_HIGH_WATER = 64 << 20;
/** The client's reusable staging buffer for reads (headers, reasons, small ops). */
const CLIENT_RECV_BUFFER = 256 << 10;
/** Below this, an op's remaining bytes go through the staging buffer (fewer, bigger reads). */
const MIN_DIRECT_READ = 64 << 10;
const MAX_TIMER_MS = 0x7fffffff;
const TWO_32 = 0x1_0000_0000;

/** Constants of the wire format, for tests and tools that speak it by hand. */
export const TCP_WIRE = {
  version: WIRE_VERSION,
  requestMagic: REQUEST_MAGIC,
  responseMagic: RESPONSE_MAGIC,
  requestHeaderBytes: REQUEST_HEADER,
  responseHeaderBytes: RESPONSE_HEADER,
  opBytes: OP_BYTES,
  kinds: { hello: KIND_HELLO, read: KIND_READ, write: KIND_WRITE },
  status: { ok: STATUS_OK, badRkey: STATUS_BAD_RKEY, outOfRange: STATUS_OUT_OF_RANGE, invalid: STATUS_INVALID },
  maxFrameData: MAX_FRAME_DATA,
  maxFrameOps: MAX_FRAME_OPS,
} as const;

function writeU64(buf: Buffer, offset: number, value: number): void {
  const lo = value >>> 0; // ToUint32 is value mod 2^32, exact for integers < 2^53
  buf.writeUInt32LE(lo, offset);
  buf.writeUInt32LE((value - lo) / TWO_32, offset + 4);
}

/** The u64 at offset, or -1 when it is 2^53 or more (no region is that large). */
function readU64(buf: Buffer, offset: number): number {
  const hi = buf.readUInt32LE(offset + 4);
  if (hi >= 1 << 21) return -1;
  return hi * TWO_32 + buf.readUInt32LE(offset);
}

function fnv1a(bytes: Uint8Array, end: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < end; i++) {
    h ^= bytes[i];
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

function asBuffer(view: Uint8Array): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

export interface TcpAddress {
  host: string;
  port: number;
  nodeId: string;
}

export function encodeTcpAddress(address: TcpAddress): Uint8Array {
  const host = Buffer.from(address.host, 'utf8');
  const out = Buffer.alloc(ADDRESS_HEADER + host.length);
  out.writeUInt32LE(ADDRESS_MAGIC, 0);
  out.writeUInt16LE(WIRE_VERSION, 4);
  out.writeUInt16LE(address.port, 6);
  out.write(address.nodeId, 8, NODE_ID_BYTES, 'hex');
  out.writeUInt16LE(host.length, 16);
  host.copy(out, ADDRESS_HEADER);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Decodes an address blob; throws ERR_INVALID_ARG saying what is wrong with it. */
export function decodeTcpAddress(blob: Uint8Array): TcpAddress {
  const bad = (why: string): never => {
    throw new TransportError('ERR_INVALID_ARG', `connect(address): not a peercache tcp address: ${why}`);
  };
  if (!(blob instanceof Uint8Array)) bad('address must be a Uint8Array from the peer node\'s address()');
  if (blob.byteLength < ADDRESS_HEADER) bad(`too short (${blob.byteLength} bytes)`);
  const b = asBuffer(blob);
  if (b.readUInt32LE(0) !== ADDRESS_MAGIC) bad('bad magic (is the peer on another protocol?)');
  const version = b.readUInt16LE(4);
  if (version !== WIRE_VERSION) bad(`unsupported version ${version} (this build speaks ${WIRE_VERSION})`);
  const port = b.readUInt16LE(6);
  if (port === 0) bad('port 0');
  const hostBytes = b.readUInt16LE(16);
  if (hostBytes === 0 || ADDRESS_HEADER + hostBytes !== b.length) bad('host length does not match the blob size');
  const host = b.toString('utf8', ADDRESS_HEADER, ADDRESS_HEADER + hostBytes);
  return { host, port, nodeId: b.toString('hex', 8, 8 + NODE_ID_BYTES) };
}

export interface TcpDescriptor {
  nodeId: string;
  regionId: number;
  length: number;
  token: Uint8Array;
}

export function encodeTcpDescriptor(d: TcpDescriptor): Uint8Array {
  const out = Buffer.alloc(DESCRIPTOR_BYTES);
  out.writeUInt32LE(DESCRIPTOR_MAGIC, 0);
  out.writeUInt16LE(WIRE_VERSION, 4);
  out.write(d.nodeId, 8, NODE_ID_BYTES, 'hex');
  out.writeUInt32LE(d.regionId, 16);
  writeU64(out, 24, d.length);
  asBuffer(d.token).copy(out, 32, 0, TOKEN_BYTES);
  out.writeUInt32LE(fnv1a(out, 48), 48);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** Decodes a region descriptor; throws ERR_BAD_RKEY saying what is wrong with it. */
export function decodeTcpDescriptor(blob: Uint8Array): TcpDescriptor {
  const bad = (why: string): never => {
    throw new TransportError('ERR_BAD_RKEY', `invalid region descriptor: ${why}`);
  };
  if (!(blob instanceof Uint8Array)) {
    throw new TransportError('ERR_INVALID_ARG', 'attach(descriptor): descriptor must be a Uint8Array');
  }
  if (blob.byteLength !== DESCRIPTOR_BYTES) bad(`${blob.byteLength} bytes, a tcp descriptor has ${DESCRIPTOR_BYTES}`);
  const b = asBuffer(blob);
  if (b.readUInt32LE(0) !== DESCRIPTOR_MAGIC) bad('bad magic (not a peercache tcp region descriptor)');
  const version = b.readUInt16LE(4);
  if (version !== WIRE_VERSION) bad(`unsupported descriptor version ${version}`);
  if (fnv1a(b, 48) !== b.readUInt32LE(48)) bad('checksum mismatch (damaged or forged blob)');
  const length = readU64(b, 24);
  if (length <= 0) bad('zero-length or oversized region');
  const token = new Uint8Array(b.subarray(32, 32 + TOKEN_BYTES));
  if (token.every((x) => x === 0)) bad('access token missing');
  return { nodeId: b.toString('hex', 8, 8 + NODE_ID_BYTES), regionId: b.readUInt32LE(16), length, token };
}

function encodeResponse(kind: number, status: number, id: number, body: Buffer | null): Buffer {
  const bodyBytes = body === null ? 0 : body.length;
  const out = Buffer.allocUnsafe(RESPONSE_HEADER + bodyBytes);
  writeResponseHeader(out, kind, status, id, bodyBytes);
  if (body !== null) body.copy(out, RESPONSE_HEADER);
  return out;
}

function writeResponseHeader(out: Buffer, kind: number, status: number, id: number, bodyBytes: number): void {
  out.writeUInt32LE(RESPONSE_MAGIC, 0);
  out[4] = WIRE_VERSION;
  out[5] = kind;
  out[6] = status;
  out[7] = 0;
  out.writeUInt32LE(id, 8);
  out.writeUInt32LE(0, 12);
  writeU64(out, 16, bodyBytes);
}

function writeRequestHeader(out: Buffer, kind: number, id: number, count: number, payload: number, regionId: number, token: Buffer | null): void {
  out.writeUInt32LE(REQUEST_MAGIC, 0);
  out[4] = WIRE_VERSION;
  out[5] = kind;
  out.writeUInt16LE(0, 6);
  out.writeUInt32LE(id, 8);
  out.writeUInt32LE(count, 12);
  writeU64(out, 16, payload);
  out.writeUInt32LE(regionId, 24);
  out.writeUInt32LE(0, 28);
  if (token === null) out.fill(0, 32, 48);
  else token.copy(out, 32, 0, TOKEN_BYTES);
}

function errorStatusCode(status: number): string {
  if (status === STATUS_BAD_RKEY) return 'ERR_BAD_RKEY';
  if (status === STATUS_OUT_OF_RANGE) return 'ERR_OUT_OF_RANGE';
  if (status === STATUS_INVALID) return 'ERR_INVALID_ARG';
  return 'ERR_TRANSFER';
}

const POOL_MIN = 64 << 10;
const POOL_MAX = 64 << 20;

/**
 * Reuses the big frame buffers: a fresh multi-MiB allocation page-faults on first touch (measured:
 * a third of the speed of copying into a reused one). A frame's buffer is free again once the
 * socket has handed it to the kernel (the write callback). Power-of-two classes, 64 KiB to 64 MiB.
 */
class BufferPool {
  private readonly lists = new Map<number, Buffer[]>();
  private pooledBytes = 0;
  constructor(private readonly capBytes: number) {}

  /** A buffer of exactly `size` bytes, pooled when it is in the class range. */
  acquire(size: number): Buffer {
    if (size < POOL_MIN || size > POOL_MAX) return Buffer.allocUnsafe(size);
    const cls = 2 ** Math.ceil(Math.log2(size));
    const whole = this.lists.get(cls)?.pop();
    if (whole === undefined) return Buffer.allocUnsafe(cls).subarray(0, size);
    this.pooledBytes -= cls;
    return whole.subarray(0, size);
  }

  release(view: Buffer): void {
    const cls = view.buffer.byteLength;
    // Only whole power-of-two buffers of ours (allocUnsafe above 4 KiB owns its ArrayBuffer).
    if (view.byteOffset !== 0 || cls < POOL_MIN || cls > POOL_MAX || (cls & (cls - 1)) !== 0) return;
    if (this.pooledBytes + cls > this.capBytes) return;
    let list = this.lists.get(cls);
    if (list === undefined) this.lists.set(cls, (list = []));
    list.push(Buffer.from(view.buffer, 0, cls));
    this.pooledBytes += cls;
  }
}

// ------------------------------------------------------------------------------------- regions

class TcpPublished implements PublishedRegion {
  private view: Uint8Array;
  /** A Buffer over the same memory, for Buffer.copy (memmove) on the serving path. */
  buf: Buffer;
  freed = false;
  readonly length: number;

  constructor(private readonly node: TcpTransport, readonly id: number, length: number, readonly token: Buffer) {
    const ab = new ArrayBuffer(length);
    this.view = new Uint8Array(ab);
    this.buf = Buffer.from(ab);
    this.length = length;
  }

  get bytes(): Uint8Array {
    return this.view;
  }

  descriptor(): Uint8Array {
    if (this.freed) throw new TransportError('ERR_CLOSED', `region ${this.id} was freed`);
    return encodeTcpDescriptor({ nodeId: this.node.nodeId, regionId: this.id, length: this.length, token: this.token });
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.node.unpublish(this);
    // Node 20 has no ArrayBuffer.prototype.transfer; transferring through structuredClone detaches
    // the buffer all the same (no copy), so every view of it, `bytes` included, reads length 0.
    const ab = this.view.buffer as ArrayBuffer;
    try {
      structuredClone(ab, { transfer: [ab] });
    } catch {
      // Not detachable (cannot happen for our own ArrayBuffer): the server has stopped serving it.
    }
  }
}

class TcpLocal implements LocalRegion {
  freed = false;
  readonly length: number;
  readonly buf: Buffer;
  constructor(readonly bytes: Uint8Array) {
    this.length = bytes.byteLength;
    this.buf = asBuffer(bytes);
  }
  free(): void {
    // Nothing is registered over TCP; a freed local is refused by later batches, like UCX's.
    this.freed = true;
  }
}

class TcpRemote implements RemoteRegion {
  readonly token: Buffer;
  constructor(readonly endpoint: TcpEndpoint, readonly regionId: number, readonly length: number, token: Uint8Array) {
    this.token = Buffer.from(token);
  }
}

// -------------------------------------------------------------------------------------- server

const enum ServerStage {
  Header,
  Ops,
  Payload,
}

/** One accepted connection: decodes request frames as they stream in and answers them in order. */
class ServerConnection {
  private stage = ServerStage.Header;
  private readonly hdr = Buffer.alloc(REQUEST_HEADER);
  private hdrFill = 0;
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
  private wError: { status: number; reason: string } | null = null;
  private wOp = 0;
  private wOpDone = 0;
  private wLeft = 0;
  // Backpressure: while too much of our answers is unsent, stop decoding (and reading).
  private blocked = false;
  private backlog: Buffer | null = null;
  private dead = false;

  constructor(private readonly node: TcpTransport, readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    // A client going away is normal; it must never surface as an uncaught 'error'.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.dead = true;
      node.dropConnection(this);
    });
  }

  private get peer(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`;
  }

  private protocolError(reason: string): void {
    if (this.dead) return;
    this.dead = true;
    this.node.log(`peercache tcp: closing the connection from ${this.peer}: ${reason}`);
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
      if (this.stage === ServerStage.Header) {
        if (this.hdrFill === 0 && end - pos >= REQUEST_HEADER) {
          this.onHeader(chunk, pos);
          pos += REQUEST_HEADER;
        } else {
          const n = Math.min(REQUEST_HEADER - this.hdrFill, end - pos);
          chunk.copy(this.hdr, this.hdrFill, pos, pos + n);
          this.hdrFill += n;
          pos += n;
          if (this.hdrFill === REQUEST_HEADER) {
            this.hdrFill = 0;
            this.onHeader(this.hdr, 0);
          }
        }
      } else if (this.stage === ServerStage.Ops) {
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
    if (b.readUInt32LE(at) !== REQUEST_MAGIC) return this.protocolError('bad frame magic (not a peercache tcp client?)');
    if (b[at + 4] !== WIRE_VERSION) return this.protocolError(`unsupported wire version ${b[at + 4]}`);
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
      this.send(encodeResponse(KIND_HELLO, STATUS_OK, this.id, Buffer.from(this.node.nodeId, 'hex')));
      return;
    }
    if (count === 0) {
      // No ops: nothing to decode; a WRITE's payload (if any) is skipped, then refused.
      this.ops = Buffer.alloc(0);
      this.onOps();
      return;
    }
    this.stage = ServerStage.Ops;
  }

  /** Checks the frame's region, token and every op's range: the region and the bytes moved, or why not. */
  private check(): { status: number; reason: string } | { region: TcpPublished; bytes: number } {
    if (this.count === 0) return { status: STATUS_INVALID, reason: 'a batch has at least one op' };
    const region = this.node.served(this.regionId);
    if (region === undefined) {
      const why = this.node.wasFreed(this.regionId) ? `region ${this.regionId} was freed` : `no region ${this.regionId} on this node`;
      return { status: STATUS_BAD_RKEY, reason: why };
    }
    if (!timingSafeEqual(region.token, this.token)) {
      return { status: STATUS_BAD_RKEY, reason: `access token does not match region ${this.regionId} (forged or stale descriptor)` };
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
    this.stage = ServerStage.Header;
    const c = this.check();
    if (this.kind === KIND_READ) {
      if ('status' in c) return this.sendError(c.status, c.reason);
      // Served whole within this turn, ops in order (so any fence holds), into one buffer: a
      // snapshot of the region now, not a view of live memory the kernel would copy later.
      const out = this.node.pool.acquire(RESPONSE_HEADER + c.bytes);
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
    else this.stage = ServerStage.Payload;
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
      this.stage = ServerStage.Header;
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
    if (this.dead) {
      if (pooled) this.node.pool.release(frame);
      return;
    }
    if (pooled) this.socket.write(frame, () => this.node.pool.release(frame));
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

// ------------------------------------------------------------------------------------ endpoint

const enum ClientStage {
  Header,
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
  private hello: { resolve: () => void; reject: (err: TransportError) => void } | null = null;
  // Response decoder state.
  private readonly recv = Buffer.allocUnsafe(CLIENT_RECV_BUFFER);
  private stage = ClientStage.Header;
  private readonly hdr = Buffer.alloc(RESPONSE_HEADER);
  private hdrFill = 0;
  private cur: PendingFrame | null = null;
  private curId = 0;
  private curStatus = 0;
  private bodyLeft = 0;
  private collect: Buffer = Buffer.alloc(0);
  private collectFill = 0;
  private scatterOp = 0;
  private scatterDone = 0;
  private readonly socket: net.Socket;

  private constructor(
    private readonly node: TcpTransport,
    private readonly peerAddress: TcpAddress,
    private readonly defaultTimeoutMs: number,
  ) {
    this.socket = net.connect({
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
  static open(node: TcpTransport, peer: TcpAddress, timeoutMs: number): Promise<TcpEndpoint> {
    const ep = new TcpEndpoint(node, peer, timeoutMs);
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
      ep.pending.set(0, { kind: KIND_HELLO, batch: null, dst: [], dstOff: [], len: [], bytes: NODE_ID_BYTES });
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
    return new TcpRemote(this, d.regionId, d.length, d.token);
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
      for (const plan of plans) this.sendFrame(kind, batch, tcpRemote, views, plan);
    });
  }

  private sendFrame(kind: number, batch: Batch, remote: TcpRemote, views: Buffer[], plan: FramePlan): void {
    const n = plan.len.length;
    const id = this.nextId;
    this.nextId = this.nextId === 0xffffffff ? 1 : this.nextId + 1;
    const payload = kind === KIND_WRITE ? plan.bytes : 0;
    // Header, ops and (WRITE) payload in one buffer: one write, and a snapshot of the source bytes.
    const frame = this.node.pool.acquire(REQUEST_HEADER + n * OP_BYTES + payload);
    writeRequestHeader(frame, kind, id, n, payload, remote.regionId, remote.token);
    let at = REQUEST_HEADER;
    for (let i = 0; i < n; i++) {
      writeU64(frame, at, plan.roff[i]);
      writeU64(frame, at + 8, plan.len[i]);
      at += OP_BYTES;
    }
    const dst: Buffer[] = [];
    if (kind === KIND_WRITE) {
      for (let i = 0; i < n; i++) {
        views[plan.lidx[i]].copy(frame, at, plan.loff[i], plan.loff[i] + plan.len[i]);
        at += plan.len[i];
      }
    } else {
      for (let i = 0; i < n; i++) dst.push(views[plan.lidx[i]]);
    }
    this.pending.set(id, { kind, batch, dst, dstOff: plan.loff, len: plan.len, bytes: kind === KIND_READ ? plan.bytes : 0 });
    this.socket.write(frame, () => this.node.pool.release(frame));
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
  private shutdown(code: string, why: string): void {
    this.closed = true;
    this.socket.destroy();
    this.rejectAll(code, why);
    this.node.dropEndpoint(this);
  }

  private rejectAll(code: string, why: string): void {
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
      hello.reject(new TransportError('ERR_CONNECT', `cannot connect to the peer at ${this.peer}: ${cause} (is its tcp transport open?)`));
    }
  }

  /** The connection broke (peer died, reset, garbage answer): fail everything in flight. */
  private fail(reason: string, code: string): void {
    if (this.closed || this.failed !== null) return;
    this.failed = reason;
    this.socket.destroy();
    this.rejectAll(code, reason);
  }

  private protocolError(what: string): void {
    this.fail(`peer ${this.peer} sent a malformed answer: ${what}`, 'ERR_TRANSFER');
  }

  private nextReadBuffer(): Uint8Array {
    if (this.stage === ClientStage.Scatter && this.cur !== null && !this.closed && this.failed === null) {
      const f = this.cur;
      const left = f.len[this.scatterOp] - this.scatterDone;
      if (left >= MIN_DIRECT_READ) {
        const start = f.dstOff[this.scatterOp] + this.scatterDone;
        return f.dst[this.scatterOp].subarray(start, start + left);
      }
    }
    return this.recv;
  }

  private onBytes(n: number, buf: Uint8Array): boolean {
    try {
      if (buf === this.recv) this.decode(this.recv, n);
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
          if (this.hdrFill === 0 && end - pos >= RESPONSE_HEADER) {
            this.onHeader(chunk, pos);
            pos += RESPONSE_HEADER;
          } else {
            const k = Math.min(RESPONSE_HEADER - this.hdrFill, end - pos);
            chunk.copy(this.hdr, this.hdrFill, pos, pos + k);
            this.hdrFill += k;
            pos += k;
            if (this.hdrFill === RESPONSE_HEADER) {
              this.hdrFill = 0;
              this.onHeader(this.hdr, 0);
            }
          }
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

  /** n answer bytes were read straight into the current op's local view. */
  private advanceDirect(n: number): void {
    if (this.closed || this.failed !== null) return;
    this.scatterDone += n;
    this.bodyLeft -= n;
    if (this.scatterDone === (this.cur as PendingFrame).len[this.scatterOp]) {
      this.scatterOp++;
      this.scatterDone = 0;
    }
    if (this.bodyLeft === 0) this.finishFrame();
  }

  private onHeader(b: Buffer, at: number): void {
    if (b.readUInt32LE(at) !== RESPONSE_MAGIC) return this.protocolError('bad frame magic');
    if (b[at + 4] !== WIRE_VERSION) return this.protocolError(`unsupported wire version ${b[at + 4]}`);
    const kind = b[at + 5];
    const status = b[at + 6];
    const id = b.readUInt32LE(at + 8);
    const body = readU64(b, at + 16);
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
      this.scatterOp = 0;
      this.scatterDone = 0;
      // A batch already failed (a sibling frame was refused): its buffers are the caller's again.
      this.stage = f.batch !== null && f.batch.settled ? ClientStage.Skip : ClientStage.Scatter;
    } else if (kind === KIND_WRITE) {
      if (body !== 0) return this.protocolError(`WRITE acknowledgement with a ${body}-byte body`);
    } else {
      if (body !== NODE_ID_BYTES) return this.protocolError(`HELLO answer of ${body} bytes`);
      this.startCollect(body);
    }
    if (this.bodyLeft === 0) this.finishFrame();
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

// ---------------------------------------------------------------------------------------- node

export class TcpTransport implements TransportNode {
  readonly protocol = 'tcp' as const;
  readonly transports = 'tcp (smoke, not publishable)';
  readonly smokeOnly = true;
  /** 16 hex digits, random per node: descriptors and addresses name it, HELLO confirms it. */
  readonly nodeId: string;
  /** Where the server reports a connection it closed and why (default: console.warn). */
  log: (line: string) => void = (line) => console.warn(line);

  /** @internal Frame buffers shared by this node's server and endpoints. */
  readonly pool = new BufferPool(128 << 20);
  private readonly regions = new Map<number, TcpPublished>();
  private readonly freedIds = new Set<number>();
  private readonly connections = new Set<ServerConnection>();
  private readonly endpoints = new Set<TcpEndpoint>();
  private nextRegionId = 1;
  private closed = false;
  private readonly addressBlob: Uint8Array;

  private constructor(
    private readonly server: net.Server,
    readonly host: string,
    readonly port: number,
    private readonly timeoutMs: number,
    nodeId: string,
  ) {
    this.nodeId = nodeId;
    this.addressBlob = encodeTcpAddress({ host, port, nodeId });
    server.on('connection', (socket: net.Socket) => {
      if (this.closed) {
        socket.destroy();
        return;
      }
      this.connections.add(new ServerConnection(this, socket));
    });
  }

  /** Starts the node's server on `host` (default 127.0.0.1), an ephemeral port. */
  static open(options: TransportOptions): Promise<TcpTransport> {
    if (options.protocol !== 'tcp') {
      return Promise.reject(new TransportError('ERR_INVALID_ARG', `TcpTransport supports tcp, not ${options.protocol}`));
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS;
    if (!(timeoutMs > 0)) return Promise.reject(new TransportError('ERR_INVALID_ARG', 'timeoutMs must be > 0: every wait has a deadline'));
    const host = options.host ?? '127.0.0.1';
    const nodeId = randomBytes(NODE_ID_BYTES).toString('hex');
    return new Promise<TcpTransport>((resolve, reject) => {
      const server = net.createServer();
      const onError = (err: NodeJS.ErrnoException): void => {
        reject(new TransportError('ERR_PROTOCOL_UNAVAILABLE', `protocol 'tcp' cannot listen on ${host}: ${err.code ?? err.message}`));
      };
      server.once('error', onError);
      server.listen({ host, port: 0 }, () => {
        server.off('error', onError);
        server.on('error', () => undefined);
        const port = (server.address() as net.AddressInfo).port;
        resolve(new TcpTransport(server, host, port, timeoutMs, nodeId));
      });
    });
  }

  private check(): void {
    if (this.closed) throw new TransportError('ERR_CLOSED', 'TcpTransport is closed');
  }

  address(): Uint8Array {
    this.check();
    return this.addressBlob.slice();
  }

  async connect(peerAddress: Uint8Array): Promise<TcpEndpoint> {
    this.check();
    const peer = decodeTcpAddress(peerAddress);
    const ep = await TcpEndpoint.open(this, peer, this.timeoutMs);
    if (this.closed) {
      ep.close();
      throw new TransportError('ERR_CLOSED', 'TcpTransport is closed');
    }
    this.endpoints.add(ep);
    return ep;
  }

  allocate(bytes: number): PublishedRegion {
    this.check();
    if (typeof bytes !== 'number' || !(bytes >= 1) || !Number.isInteger(bytes)) {
      throw new TransportError('ERR_INVALID_ARG', 'allocate(bytes): bytes must be a positive integer');
    }
    if (this.nextRegionId > 0xffffffff) throw new TransportError('ERR_ALLOC', 'this node ran out of region ids');
    const id = this.nextRegionId++;
    let region: TcpPublished;
    try {
      region = new TcpPublished(this, id, bytes, randomBytes(TOKEN_BYTES));
    } catch (err) {
      throw new TransportError('ERR_ALLOC', `cannot allocate a published region of ${bytes} bytes: ${(err as Error).message}`);
    }
    this.regions.set(id, region);
    return region;
  }

  register(view: Uint8Array): LocalRegion {
    this.check();
    if (!(view instanceof Uint8Array)) {
      throw new TransportError('ERR_INVALID_ARG', 'register(view): view must be a Uint8Array (over an ArrayBuffer or SharedArrayBuffer)');
    }
    if (view.byteLength === 0) throw new TransportError('ERR_INVALID_ARG', 'register(view): cannot register an empty view');
    return new TcpLocal(view);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ep of [...this.endpoints]) ep.close();
    for (const c of [...this.connections]) c.destroy();
    for (const r of [...this.regions.values()]) r.free();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // The server side's view of the node.
  /** @internal */
  served(id: number): TcpPublished | undefined {
    return this.regions.get(id);
  }
  /** @internal */
  wasFreed(id: number): boolean {
    return this.freedIds.has(id);
  }
  /** @internal */
  unpublish(region: TcpPublished): void {
    this.regions.delete(region.id);
    this.freedIds.add(region.id);
  }
  /** @internal */
  dropConnection(c: ServerConnection): void {
    this.connections.delete(c);
  }
  /** @internal */
  dropEndpoint(ep: TcpEndpoint): void {
    this.endpoints.delete(ep);
  }
}
