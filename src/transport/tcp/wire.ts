/**
 * The tcp transport's wire format and the buffer pool its frames use.
 *
 * Wire format (version 2, all integers little endian, u64 = lo u32 + hi u32, values < 2^53):
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
 *   response frame, server -> client: a 24-byte header, `pad` bytes of padding, then the body
 *     0 u32 magic 'PCTR'  4 u8 version  5 u8 kind (echoed)  6 u8 status  7 u8 0
 *     8 u32 request id  12 u32 pad (< ANSWER_ALIGN; READ ok only, else 0)  16 u64 body bytes
 *     body: READ ok: the ops' bytes concatenated in op order; WRITE ok: empty;
 *           HELLO ok: the server's 8-byte node id; any error: the reason (UTF-8, <= 64 KiB)
 *
 * A connection opens with HELLO (the client checks it reached the node its address names). The
 * server handles the frames of one connection in arrival order and answers in that order; the
 * client still matches answers by request id. A batch bigger than the frame limits (16 MiB of
 * data, 65 536 ops) is split into several frames, sent back to back. Before its HELLO a
 * connection may send nothing else.
 *
 * Padding (version 2): a READ answered with views of the region is padded so that its body starts
 * at a multiple of ANSWER_ALIGN bytes into the connection's answer stream, whatever came before:
 * measured, bodies 24 bytes further on with every answer (version 1) made the kernel's copies
 * 1.3-2x as costly per byte (bench-results/tcp-breakdown.md). Both sides count the stream's bytes,
 * so the client knows the pad before the header arrives and reads header and pad together.
 */
import type { ErrorCode } from '../../errors.js';
import { TransportError } from '../types.js';

export const WIRE_VERSION = 2;
const ADDRESS_MAGIC = 0x41544350; // 'PCTA'
const DESCRIPTOR_MAGIC = 0x44544350; // 'PCTD'
export const REQUEST_MAGIC = 0x51544350; // 'PCTQ'
export const RESPONSE_MAGIC = 0x52544350; // 'PCTR'
const ADDRESS_HEADER = 20;
const DESCRIPTOR_BYTES = 52;
export const REQUEST_HEADER = 48;
export const RESPONSE_HEADER = 24;
export const OP_BYTES = 16;
export const TOKEN_BYTES = 16;
export const NODE_ID_BYTES = 8;
/** A padded READ answer's body starts at a multiple of this many bytes into the answer stream. */
export const ANSWER_ALIGN = 64;

/** The padding that starts a body at a multiple of ANSWER_ALIGN, after a header that ends `headerEnd` bytes into the stream. */
export function answerPad(headerEnd: number): number {
  return (ANSWER_ALIGN - (headerEnd % ANSWER_ALIGN)) % ANSWER_ALIGN;
}

export const KIND_HELLO = 1;
export const KIND_READ = 2;
export const KIND_WRITE = 3;

export const STATUS_OK = 0;
export const STATUS_BAD_RKEY = 1;
export const STATUS_OUT_OF_RANGE = 2;
export const STATUS_INVALID = 3;
/** A WRITE into a region its node did not allocate remote-writable. */
export const STATUS_READ_ONLY = 4;

/**
 * Data bytes one frame may carry (a WRITE's payload, a READ's answer): what the server allocates
 * for one answer at most, so it stays well under its answer budgets. Larger batches are split.
 */
export const MAX_FRAME_DATA = 16 << 20;
/** Ops one request frame may carry: the op list is buffered whole, so it stays small (1 MiB). */
export const MAX_FRAME_OPS = 1 << 16;
export const MAX_REASON_BYTES = 1 << 16;
const TWO_32 = 0x1_0000_0000;

/** Constants of the wire format, for tests and tools that speak it by hand. */
export const TCP_WIRE = {
  version: WIRE_VERSION,
  requestMagic: REQUEST_MAGIC,
  responseMagic: RESPONSE_MAGIC,
  requestHeaderBytes: REQUEST_HEADER,
  responseHeaderBytes: RESPONSE_HEADER,
  answerAlign: ANSWER_ALIGN,
  opBytes: OP_BYTES,
  kinds: { hello: KIND_HELLO, read: KIND_READ, write: KIND_WRITE },
  status: { ok: STATUS_OK, badRkey: STATUS_BAD_RKEY, outOfRange: STATUS_OUT_OF_RANGE, invalid: STATUS_INVALID, readOnly: STATUS_READ_ONLY },
  maxFrameData: MAX_FRAME_DATA,
  maxFrameOps: MAX_FRAME_OPS,
} as const;

export function writeU64(buf: Buffer, offset: number, value: number): void {
  const lo = value >>> 0; // ToUint32 is value mod 2^32, exact for integers < 2^53
  buf.writeUInt32LE(lo, offset);
  buf.writeUInt32LE((value - lo) / TWO_32, offset + 4);
}

/** The u64 at offset, or -1 when it is 2^53 or more (no region is that large). */
export function readU64(buf: Buffer, offset: number): number {
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

export function asBuffer(view: Uint8Array): Buffer {
  return Buffer.from(view.buffer, view.byteOffset, view.byteLength);
}

// ------------------------------------------------------------------------------- address blob

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

// -------------------------------------------------------------------------- region descriptor

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

// ------------------------------------------------------------------------------------- frames

export function encodeResponse(kind: number, status: number, id: number, body: Buffer | null): Buffer {
  const bodyBytes = body === null ? 0 : body.length;
  const out = Buffer.allocUnsafe(RESPONSE_HEADER + bodyBytes);
  writeResponseHeader(out, kind, status, id, bodyBytes);
  if (body !== null) body.copy(out, RESPONSE_HEADER);
  return out;
}

export function writeResponseHeader(out: Buffer, kind: number, status: number, id: number, bodyBytes: number, pad = 0): void {
  out.writeUInt32LE(RESPONSE_MAGIC, 0);
  out[4] = WIRE_VERSION;
  out[5] = kind;
  out[6] = status;
  out[7] = 0;
  out.writeUInt32LE(id, 8);
  out.writeUInt32LE(pad, 12);
  writeU64(out, 16, bodyBytes);
}

export function writeRequestHeader(out: Buffer, kind: number, id: number, count: number, payload: number, regionId: number, token: Buffer | null): void {
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

/** The TransportError code a response status stands for. */
export function errorStatusCode(status: number): ErrorCode {
  if (status === STATUS_BAD_RKEY) return 'ERR_BAD_RKEY';
  if (status === STATUS_OUT_OF_RANGE) return 'ERR_OUT_OF_RANGE';
  if (status === STATUS_INVALID) return 'ERR_INVALID_ARG';
  if (status === STATUS_READ_ONLY) return 'ERR_READ_ONLY';
  return 'ERR_TRANSFER';
}

/**
 * Gathers one fixed-size frame header from a byte stream, for both sides (request headers on the
 * server, response headers on the client). When a chunk holds the whole header it is not copied:
 * `buf`/`at` then point into the chunk. Also checks the magic and version every frame starts with.
 */
export class FrameHeaderReader {
  private readonly own: Buffer;
  private fill = 0;
  /** Where the complete header lies after take() returned true (valid until the next take). */
  buf: Buffer;
  at = 0;
  /** Whether the last take() completed a header. */
  complete = false;

  constructor(
    readonly size: number,
    private readonly magic: number,
    /** Appended to 'bad frame magic' (e.g. a guess at what the peer is). */
    private readonly magicHint = '',
  ) {
    this.own = Buffer.alloc(size);
    this.buf = this.own;
  }

  /** Header bytes still to come (the size when none has arrived). */
  get missing(): number {
    return this.size - this.fill;
  }

  /** True while part of a header has arrived and the rest has not. */
  get partial(): boolean {
    return this.fill !== 0;
  }

  /**
   * Takes header bytes from chunk[pos, end) and returns the position after them; `complete` says
   * whether the header is now whole (then read it from `buf` at `at`).
   */
  take(chunk: Buffer, pos: number, end: number): number {
    this.complete = false;
    if (this.fill === 0 && end - pos >= this.size) {
      this.buf = chunk;
      this.at = pos;
      this.complete = true;
      return pos + this.size;
    }
    const n = Math.min(this.size - this.fill, end - pos);
    chunk.copy(this.own, this.fill, pos, pos + n);
    this.fill += n;
    if (this.fill === this.size) {
      this.fill = 0;
      this.buf = this.own;
      this.at = 0;
      this.complete = true;
    }
    return pos + n;
  }

  /** Why the complete header cannot start a frame (bad magic, another version), or null. */
  problem(): string | null {
    if (this.buf.readUInt32LE(this.at) !== this.magic) return `bad frame magic${this.magicHint}`;
    const version = this.buf[this.at + 4];
    if (version !== WIRE_VERSION) return `unsupported wire version ${version}`;
    return null;
  }
}

// -------------------------------------------------------------------------------- buffer pool

const POOL_MIN = 64 << 10;
const POOL_MAX = 64 << 20;

/**
 * Reuses the big frame buffers: a fresh multi-MiB allocation page-faults on first touch (measured:
 * a third of the speed of copying into a reused one). A frame's buffer is free again once the
 * socket has handed it to the kernel (the write callback). Power-of-two classes, 64 KiB to 64 MiB.
 */
export class BufferPool {
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
