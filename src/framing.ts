/**
 * The framing both socket protocols speak — the directory's (store/directory/, its messages in
 * messages.ts) and the sidecar's (sidecar/protocol.ts): the frame layout, the streaming decoder and
 * protocol errors. Its own module so neither reaches into the other.
 *
 * Frame: `u32 BE payload length | u8 protocol version | u8 kind | u32 BE request id | payload`,
 * payload UTF-8 JSON. Requests carry `{ op, ...args }`; a response carries the op's result; an
 * error carries `{ message, fatal, code? }` (fatal: the sender closes the connection after it);
 * an event (request id 0) carries a DirectoryEvent. Unlike the original (4-byte length, msgpack
 * or JSON without negotiation, no limit), every frame names its version and every length is
 * checked against a limit before any of its body is buffered.
 */
import { InvalidArgumentError, PeercacheError } from './errors.js';

export const PROTOCOL_VERSION = 1;
export const FRAME_HEADER_BYTES = 10;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** The largest payload length the u32 header can carry. */
export const MAX_FRAME_LIMIT = 0xffff_ffff;


export const FrameKind = { Request: 1, Response: 2, Event: 3, Error: 4 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];
const KIND_NAMES: Record<FrameKind, string> = { 1: 'request', 2: 'response', 3: 'event', 4: 'error' };

export function frameKindName(kind: number): string {
  return KIND_NAMES[kind as FrameKind] ?? `unknown(${kind})`;
}

export interface Frame {
  version: number;
  kind: FrameKind;
  id: number;
  payload: Buffer;
}


export type WireErrorCode =
  | 'oversized'
  | 'bad-version'
  | 'bad-kind'
  | 'bad-json'
  | 'bad-message'
  | 'unknown-op'
  | 'no-hello'
  | 'auth'
  | 'idle'
  | 'slow-reader'
  | 'bad-lane';

/**
 * A protocol violation: the connection that produced it is closed. `code` is ERR_OVERSIZED for a
 * frame past its limit and ERR_BAD_FRAME otherwise; `reason` is the wire's own name for it (what
 * error frames and the rejection counters carry).
 */
export class WireError extends PeercacheError {
  override name = 'WireError';
  constructor(
    readonly reason: WireErrorCode,
    message: string,
    /** The request id of the offending frame, when its header was read. */
    readonly requestId = 0,
  ) {
    super(reason === 'oversized' ? 'ERR_OVERSIZED' : reason === 'auth' ? 'ERR_AUTH' : 'ERR_BAD_FRAME', message);
  }
}

/** Checks a configured frame limit (a positive integer the u32 length can express). */
export function checkFrameLimit(value: number | undefined, what = 'maxFrameBytes'): number {
  const v = value ?? DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isSafeInteger(v) || v < 1 || v > MAX_FRAME_LIMIT) {
    throw new InvalidArgumentError(`${what} must be an integer in 1..${MAX_FRAME_LIMIT}, got ${String(value)}`);
  }
  return v;
}

/** Builds one frame around raw payload bytes (tests use `version` to forge foreign frames). */
export function encodeRawFrame(kind: number, id: number, payload: Uint8Array, version = PROTOCOL_VERSION): Buffer {
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.length);
  buf.writeUInt32BE(payload.length, 0);
  buf[4] = version;
  buf[5] = kind;
  buf.writeUInt32BE(id >>> 0, 6);
  buf.set(payload, FRAME_HEADER_BYTES);
  return buf;
}

/** Encodes `body` as JSON into one frame; throws WireError('oversized') past `maxFrameBytes`. */
export function encodeFrame(kind: FrameKind, id: number, body: unknown, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const json = JSON.stringify(body) ?? 'null';
  const length = Buffer.byteLength(json, 'utf8');
  if (length > maxFrameBytes) {
    throw new WireError('oversized', `frame of ${length} bytes exceeds the limit of ${maxFrameBytes} bytes`, id);
  }
  // One allocation and one UTF-8 pass; the header goes in front of the JSON.
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
  buf.writeUInt32BE(length, 0);
  buf[4] = PROTOCOL_VERSION;
  buf[5] = kind;
  buf.writeUInt32BE(id >>> 0, 6);
  buf.write(json, FRAME_HEADER_BYTES, length, 'utf8');
  return buf;
}

export function decodeJson(frame: Frame): unknown {
  try {
    return JSON.parse(frame.payload.toString('utf8'));
  } catch (err) {
    throw new WireError('bad-json', `invalid JSON payload: ${(err as Error).message}`, frame.id);
  }
}

export interface FrameDecoderOptions {
  maxFrameBytes?: number;
  /** Who is decoding, for messages ("protocol version 9 not supported (server speaks 1)"). */
  role?: 'server' | 'client';
}

/**
 * Streaming decoder: push TCP chunks, get whole frames. Chunks are kept as a list (no
 * concatenation per push); a payload inside one chunk is a zero-copy view, one spanning chunks is
 * copied exactly once, so the work is linear in the bytes received. The header is validated
 * (version, kind, length against the limit) before any of the body is buffered. After an error
 * the decoder stays failed: the connection is to be closed.
 */
export class FrameDecoder {
  private maxFrameBytes: number;
  private readonly role: string;
  private chunks: Buffer[] = [];
  private head = 0; // read offset into chunks[0]
  private buffered = 0; // unread bytes across chunks
  private header: { version: number; kind: FrameKind; id: number; length: number } | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    options: FrameDecoderOptions = {},
  ) {
    this.maxFrameBytes = checkFrameLimit(options.maxFrameBytes);
    this.role = options.role ?? 'this side';
  }

  /** Changes the limit for frames whose header has not been read yet (a server raises it after hello). */
  setMaxFrameBytes(limit: number): void {
    this.maxFrameBytes = checkFrameLimit(limit);
  }

  /** Unread bytes held (a partial frame), for tests and stats. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feeds one chunk; calls onFrame for every frame it completes. Throws WireError on a bad frame. */
  push(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.buffered += chunk.length;
    try {
      this.drain();
    } catch (err) {
      this.failure = err as Error;
      this.chunks = [];
      this.buffered = 0;
      throw err;
    }
  }

  private drain(): void {
    for (;;) {
      if (this.header === null) {
        if (this.buffered < FRAME_HEADER_BYTES) return;
        const h = this.take(FRAME_HEADER_BYTES);
        const length = h.readUInt32BE(0);
        const version = h[4];
        const kind = h[5];
        const id = h.readUInt32BE(6);
        if (version !== PROTOCOL_VERSION) {
          throw new WireError(
            'bad-version',
            `protocol version ${version} not supported (${this.role} speaks ${PROTOCOL_VERSION})`,
            id,
          );
        }
        if (!(kind in KIND_NAMES)) throw new WireError('bad-kind', `unknown frame kind ${kind}`, id);
        if (length > this.maxFrameBytes) {
          throw new WireError('oversized', `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes} bytes`, id);
        }
        this.header = { version, kind: kind as FrameKind, id, length };
      }
      if (this.buffered < this.header.length) return;
      const { version, kind, id, length } = this.header;
      const payload = this.take(length);
      this.header = null;
      this.onFrame({ version, kind, id, payload });
      if (this.failure) return;
    }
  }

  /** Removes n buffered bytes (n <= buffered): a view when they lie in one chunk, else one copy. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(first, n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const m = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + m);
      filled += m;
      this.advance(c, m);
    }
    return out;
  }

  private advance(chunk: Buffer, n: number): void {
    this.head += n;
    this.buffered -= n;
    if (this.head === chunk.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}
