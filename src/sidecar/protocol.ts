/**
 * The sidecar's socket protocol (`peercache node`, spoken by the Python adapter in python/): the
 * limits, the request shapes and their validation. Clients are local processes but untrusted:
 * every field is checked here before the server acts on it, and every size has a limit.
 *
 * Framing is the shared one (src/framing.ts, which the directory speaks too): `u32 BE payload length | u8 version (1)
 * | u8 kind (1 request, 2 response, 4 error) | u32 BE request id | payload`: UTF-8 JSON, or a binary
 * exists/get/set (below). A JSON request is `{ "op": ..., ...args }`; its response carries the same id. The first request on a connection
 * must be `hello` naming SIDECAR_PROTOCOL. An error frame carries `{ message, fatal, code }`; fatal errors
 * (a malformed frame, a frame past the limit) close the connection, others answer one request.
 *
 * Ops (object keys are full object names: page hash + SGLang's component suffix):
 *   hello    { protocol: "peercache-sidecar/2", pid }       -> { nodeId, protocol, slotBytes, limits }
 *   register { pid, fd, bytes }                               -> { pool }   (maps /proc/<pid>/fd/<fd>)
 *   lane     { pid, fd, bytes: LANE_BYTES }                   -> { requestBytes, answerBytes } (lane.ts; x86-64)
 *   exists   { keys }                                         -> { found: "0110..." } (one char per key)
 *   get      { pool, keys, offsets, lengths }                 -> { ok: "1100..." }  (READs into the pool)
 *   set      { pool, keys, offsets, lengths }                 -> { ok: "1111..." }  (publishes from it)
 *   clear    {}                                               -> {}  (unpublishes what this sidecar holds)
 *   stats    { reset? }                                       -> { store stats, connections, pools, storeCalls }
 *            (storeCalls: p10/p50/p90/p99/mean µs of the store's own get/set/exists calls, socket excluded;
 *            reset: true starts new samples after this answer)
 * `pool` is a number, or an array with one pool per key; `lengths` an array, or one number for all.
 * exists/get/set may carry `deadline` (Unix ms): when the client gives up. A request is not started
 * within DEADLINE_MARGIN_MS of it (a stale request queued behind a stall must not write into pages
 * the client has reused), and a get's READs are cut off at it. Offsets and lengths are bytes from the
 * start of the registered file; every range must lie inside it.
 *
 * Binary requests (protocol 2; the adapter's hot path): exists, get and set may also be sent as a
 * binary payload, told apart from JSON by its first byte (>= 0x80, which no JSON text starts with).
 * All integers little-endian; a 32-byte header, then the arrays, then the keys:
 *   u8 op (0x81 exists, 0x82 get, 0x83 set) | u8 flags (1: one u32 pool per key, 2: one u64 length
 *   per key) | u16 0 | u32 count | u64 deadline (Unix ms, 0: none) | u32 key bytes | u32 pool |
 *   u64 length (for every key; 0 with flag 2) | get/set: count x u64 offset | flag 2: count x u64
 *   length | flag 1: count x u32 pool | key bytes: the keys, UTF-8, joined by '\n'.
 * exists carries no flags, pool 0, length 0 and no arrays. The payload's length must be exactly what
 * the header implies. The answer to a binary request is a response frame whose payload is the op
 * byte followed by one byte per key, '1' or '0'; errors are the usual JSON error frames.
 *
 * Lanes (lane.ts): a client that registered one may put a binary request in it instead of sending
 * it; an event frame (kind 3, empty payload, the request's id) from the client says "look at the
 * lane" (needed when the sidecar does not poll), and one from the sidecar "the answer is in the
 * lane" (when the client does not). An answer too long for the lane comes as a frame as usual.
 */

import { isAscii, isUtf8 } from 'node:buffer';
import { PeercacheError, type ErrorCode } from '../errors.js';
import { FRAME_HEADER_BYTES, FrameKind, PROTOCOL_VERSION, type WireErrorCode } from '../framing.js';
import { LANE_BYTES } from './lane.js';

export const SIDECAR_PROTOCOL = 'peercache-sidecar/2';
/** A request is not started this close to its client's deadline. */
export const DEADLINE_MARGIN_MS = 100;

export interface SidecarLimits {
  /** Largest frame payload a client may send (bytes). */
  maxFrameBytes: number;
  /** Keys (objects) in one request. */
  maxKeys: number;
  /** Characters of one key. */
  maxKeyChars: number;
  /** Connections served at once; more are refused. */
  maxConnections: number;
  /** Pools one connection may register. */
  maxPoolsPerConnection: number;
  /** Requests a connection may have queued (received, not answered). */
  maxQueuedRequests: number;
  /**
   * How long a client may keep the sidecar waiting (ms): for its hello, for its first request after
   * hello, and for reading its answers once they pile up (past 1/16 of maxAnswerBytes).
   */
  helloTimeoutMs: number;
  /**
   * Answer bytes queued for one connection (written, not yet read by its client) before it is
   * closed as not reading. Reading from a connection pauses well before (at 1/16 of this).
   */
  maxAnswerBytes: number;
  /**
   * A full sidecar (maxConnections) takes a new connection by closing the one idle longest, if it has
   * been idle (no request, none in flight) for at least this long (ms); otherwise refuses it.
   */
  idleEvictMs: number;
}

export const DEFAULT_SIDECAR_LIMITS: SidecarLimits = {
  maxFrameBytes: 1024 * 1024,
  maxKeys: 4096,
  maxKeyChars: 512,
  maxConnections: 256,
  maxPoolsPerConnection: 16,
  maxQueuedRequests: 8,
  helloTimeoutMs: 5_000,
  maxAnswerBytes: 1024 * 1024,
  idleEvictMs: 60_000,
};

/** The largest file a client may register (bytes): 2^47, as the host pool. */
export const MAX_POOL_BYTES = 2 ** 47;

export type SidecarRequest =
  | { op: 'hello'; protocol: string; pid: number }
  | { op: 'register'; pid: number; fd: number; bytes: number }
  | { op: 'lane'; pid: number; fd: number; bytes: number }
  | { op: 'exists'; keys: string[]; deadline?: number }
  | { op: 'get' | 'set'; pool: number | number[]; keys: string[]; offsets: ArrayLike<number>; lengths: ArrayLike<number>; deadline?: number }
  | { op: 'clear' }
  | { op: 'stats'; reset: boolean };

/**
 * The `code` of an error frame (schema/sidecar-wire.json lists them with their meaning): clients
 * act on it, never on the message text.
 */
export const SIDECAR_ERROR_CODES = [
  'ERR_BAD_REQUEST',
  'ERR_POOL_GONE',
  'ERR_TOO_LATE',
  'ERR_REQUEST_FAILED',
  'ERR_BAD_FRAME',
  'ERR_NO_HELLO',
  'ERR_WRONG_PROTOCOL',
  'ERR_TOO_MANY_CONNECTIONS',
  'ERR_SLOW_READER',
  'ERR_IDLE',
  'ERR_BAD_LANE',
] as const;
export type SidecarErrorCode = (typeof SIDECAR_ERROR_CODES)[number] & ErrorCode;

/** The error frame's code for a protocol violation (the connection is closed after it). */
export function wireErrorCode(code: WireErrorCode): SidecarErrorCode {
  switch (code) {
    case 'no-hello':
      return 'ERR_NO_HELLO';
    case 'bad-version':
      return 'ERR_WRONG_PROTOCOL';
    case 'idle':
      return 'ERR_IDLE';
    case 'slow-reader':
      return 'ERR_SLOW_READER';
    case 'bad-lane':
      return 'ERR_BAD_LANE';
    default:
      return 'ERR_BAD_FRAME';
  }
}

/** A request that cannot be served; the connection stays open. Its code goes in the error frame. */
export class SidecarRequestError extends PeercacheError {
  override name = 'SidecarRequestError';
  override readonly code: SidecarErrorCode;
  constructor(message: string, code: SidecarErrorCode = 'ERR_BAD_REQUEST') {
    super(code, message);
    this.code = code;
  }
}

const OPS = new Set(['hello', 'register', 'lane', 'exists', 'get', 'set', 'clear', 'stats']);

function bad(message: string): never {
  throw new SidecarRequestError(message);
}

function int(v: unknown, name: string, min: number, max: number): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max) bad(`${name} must be an integer in ${min}..${max}`);
  return v;
}

function keyList(v: unknown, limits: SidecarLimits): string[] {
  if (!Array.isArray(v)) bad('keys must be an array of strings');
  if (v.length > limits.maxKeys) bad(`${v.length} keys in one request; at most ${limits.maxKeys}`);
  for (let i = 0; i < v.length; i++) {
    const k = v[i] as unknown;
    if (typeof k !== 'string' || k.length === 0 || k.length > limits.maxKeyChars) bad(`keys[${i}] must be a non-empty string of at most ${limits.maxKeyChars} characters`);
  }
  return v as string[];
}

function intList(v: unknown, name: string, n: number, min: number, max: number): number[] {
  if (!Array.isArray(v) || v.length !== n) bad(`${name} must be an array with one integer per key (${n})`);
  for (let i = 0; i < n; i++) {
    const x = v[i] as unknown;
    if (typeof x !== 'number' || !Number.isSafeInteger(x) || x < min || x > max) bad(`${name}[${i}] must be an integer in ${min}..${max}`);
  }
  return v as number[];
}

/** The client's deadline: Unix time in ms (same host, same clock), or absent. */
function deadline(v: unknown): number | undefined {
  return v === undefined ? undefined : int(v, 'deadline', 0, 2 ** 50);
}

/** Checks a decoded JSON body; throws SidecarRequestError naming the first bad field. */
export function parseRequest(body: unknown, limits: SidecarLimits): SidecarRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) bad('a request must be a JSON object');
  const b = body as Record<string, unknown>;
  const op = b.op;
  if (typeof op !== 'string' || !OPS.has(op)) bad(`unknown op ${JSON.stringify(op)?.slice(0, 40)} (expected ${[...OPS].join(', ')})`);
  switch (op) {
    case 'hello':
      if (typeof b.protocol !== 'string') bad('hello.protocol must be a string');
      return { op, protocol: b.protocol, pid: int(b.pid, 'hello.pid', 1, 2 ** 22) };
    case 'register':
      return { op, pid: int(b.pid, 'register.pid', 1, 2 ** 22), fd: int(b.fd, 'register.fd', 0, 2 ** 20), bytes: int(b.bytes, 'register.bytes', 1, MAX_POOL_BYTES) };
    case 'lane':
      return { op, pid: int(b.pid, 'lane.pid', 1, 2 ** 22), fd: int(b.fd, 'lane.fd', 0, 2 ** 20), bytes: int(b.bytes, 'lane.bytes', LANE_BYTES, LANE_BYTES) };
    case 'exists':
      return { op, keys: keyList(b.keys, limits), deadline: deadline(b.deadline) };
    case 'get':
    case 'set': {
      const keys = keyList(b.keys, limits);
      const pool = Array.isArray(b.pool) ? intList(b.pool, `${op}.pool`, keys.length, 0, limits.maxPoolsPerConnection - 1) : int(b.pool, `${op}.pool`, 0, limits.maxPoolsPerConnection - 1);
      return {
        op,
        pool,
        keys,
        offsets: intList(b.offsets, `${op}.offsets`, keys.length, 0, MAX_POOL_BYTES),
        // One length for every key, or one per key.
        lengths: typeof b.lengths === 'number' ? new Array<number>(keys.length).fill(int(b.lengths, `${op}.lengths`, 1, MAX_POOL_BYTES)) : intList(b.lengths, `${op}.lengths`, keys.length, 1, MAX_POOL_BYTES),
        deadline: deadline(b.deadline),
      };
    }
    case 'stats':
      if (b.reset !== undefined && typeof b.reset !== 'boolean') bad('stats.reset must be a boolean');
      return { op, reset: b.reset === true };
    default:
      return { op: 'clear' };
  }
}

/** The first byte of binary exists/get/set payloads (protocol.ts header comment). */
export const BinaryOp = { exists: 0x81, get: 0x82, set: 0x83 } as const;
export const BINARY_HEADER_BYTES = 32;
/** Binary flags: one pool per key (u32 each), one length per key (u64 each). */
export const BINARY_PER_KEY_POOLS = 1;
export const BINARY_PER_KEY_LENGTHS = 2;
const BINARY_OPS: Record<number, 'exists' | 'get' | 'set'> = { 0x81: 'exists', 0x82: 'get', 0x83: 'set' };

/** Whether a request payload is binary (JSON never starts with a byte >= 0x80). */
export function isBinaryRequest(payload: Uint8Array): boolean {
  return payload.length > 0 && payload[0] >= 0x80;
}

/** A u64 LE field, as a number in 0..max (max <= 2^53 - 1). */
function u64(d: DataView, at: number, name: string, max: number): number {
  const hi = d.getUint32(at + 4, true);
  const v = hi * 0x1_0000_0000 + d.getUint32(at, true);
  if (hi >= 0x20_0000 || v > max) bad(`${name} must be an integer in 0..${max}`);
  return v;
}

/**
 * Checks a binary exists/get/set payload (layout in the header comment) and decodes it: the sizes
 * against the limits and the payload's length, every key (valid UTF-8, non-empty, at most
 * maxKeyChars), every offset and length (0..MAX_POOL_BYTES; the server checks them against the
 * pool). Throws SidecarRequestError naming the first bad field.
 */
export function parseBinaryRequest(p: Buffer, limits: SidecarLimits): SidecarRequest {
  const op = BINARY_OPS[p[0]];
  if (op === undefined) bad(`unknown binary op 0x${(p[0] ?? 0).toString(16)} (expected 0x81 exists, 0x82 get, 0x83 set)`);
  if (p.length < BINARY_HEADER_BYTES) bad(`binary ${op}: ${p.length} bytes, shorter than the ${BINARY_HEADER_BYTES}-byte header`);
  const d = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const flags = p[1];
  if (p.readUInt16LE(2) !== 0) bad(`binary ${op}: bytes 2..3 must be 0`);
  const n = p.readUInt32LE(4);
  if (n > limits.maxKeys) bad(`${n} keys in one request; at most ${limits.maxKeys}`);
  const dl = u64(d, 8, `${op}.deadline`, 2 ** 50);
  const keyBytes = p.readUInt32LE(16);
  const pool = p.readUInt32LE(20);
  const length = u64(d, 24, `${op}.length`, MAX_POOL_BYTES);
  const io = op !== 'exists';
  if (!io) {
    if (flags !== 0 || pool !== 0 || length !== 0) bad('binary exists: flags, pool and length must be 0');
  } else {
    if ((flags & ~(BINARY_PER_KEY_POOLS | BINARY_PER_KEY_LENGTHS)) !== 0) bad(`binary ${op}: unknown flags 0x${flags.toString(16)}`);
    if (flags & BINARY_PER_KEY_POOLS) {
      if (pool !== 0) bad(`binary ${op}: pool must be 0 when each key names its pool`);
    } else if (pool >= limits.maxPoolsPerConnection) bad(`${op}.pool must be an integer in 0..${limits.maxPoolsPerConnection - 1}`);
    if (flags & BINARY_PER_KEY_LENGTHS) {
      if (length !== 0) bad(`binary ${op}: length must be 0 when each key has its own`);
    } else if (length < 1) bad(`${op}.length must be an integer in 1..${MAX_POOL_BYTES}`);
  }
  const offsetsAt = BINARY_HEADER_BYTES;
  const lengthsAt = offsetsAt + (io ? 8 * n : 0);
  const poolsAt = lengthsAt + (flags & BINARY_PER_KEY_LENGTHS ? 8 * n : 0);
  const keysAt = poolsAt + (flags & BINARY_PER_KEY_POOLS ? 4 * n : 0);
  if (p.length !== keysAt + keyBytes) bad(`binary ${op}: ${p.length} bytes, but ${n} keys with ${keyBytes} key bytes make ${keysAt + keyBytes}`);
  let keys: string[] = [];
  if (n > 0) {
    const blob = p.subarray(keysAt);
    // ASCII keys (SGLang's hex hashes) decode as latin1, several times faster than the UTF-8 decoder.
    let text: string;
    if (isAscii(blob)) text = blob.toString('latin1');
    else if (isUtf8(blob)) text = blob.toString('utf8');
    else bad(`binary ${op}: the keys are not valid UTF-8`);
    keys = text.split('\n');
    if (keys.length !== n) bad(`binary ${op}: ${keys.length} keys in the key bytes, ${n} in the header`);
    for (let i = 0; i < n; i++) {
      const k = keys[i];
      if (k.length === 0 || k.length > limits.maxKeyChars) bad(`keys[${i}] must be a non-empty string of at most ${limits.maxKeyChars} characters`);
    }
  } else if (keyBytes !== 0) bad(`binary ${op}: key bytes without keys`);
  const deadline = dl === 0 ? undefined : dl;
  if (!io) return { op, keys, deadline };
  const offsets = new Float64Array(n);
  for (let j = 0; j < n; j++) offsets[j] = u64(d, offsetsAt + 8 * j, `${op}.offsets[${j}]`, MAX_POOL_BYTES);
  const lengths = new Float64Array(n);
  if (flags & BINARY_PER_KEY_LENGTHS) {
    for (let j = 0; j < n; j++) {
      const l = u64(d, lengthsAt + 8 * j, `${op}.lengths[${j}]`, MAX_POOL_BYTES);
      if (l < 1) bad(`${op}.lengths[${j}] must be an integer in 1..${MAX_POOL_BYTES}`);
      lengths[j] = l;
    }
  } else lengths.fill(length);
  let pools: number | number[] = pool;
  if (flags & BINARY_PER_KEY_POOLS) {
    pools = new Array<number>(n);
    for (let j = 0; j < n; j++) {
      const q = d.getUint32(poolsAt + 4 * j, true);
      if (q >= limits.maxPoolsPerConnection) bad(`${op}.pool[${j}] must be an integer in 0..${limits.maxPoolsPerConnection - 1}`);
      pools[j] = q;
    }
  }
  return { op, pool: pools, keys, offsets, lengths, deadline };
}

/** The answer to a binary request: a response frame, the op byte, then '1' or '0' per key. */
export function encodeBinaryAnswer(id: number, op: 'exists' | 'get' | 'set', values: readonly boolean[]): Buffer {
  const n = values.length;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + 1 + n);
  buf.writeUInt32BE(1 + n, 0);
  buf[4] = PROTOCOL_VERSION;
  buf[5] = FrameKind.Response;
  buf.writeUInt32BE(id >>> 0, 6);
  writeBinaryAnswer(buf, FRAME_HEADER_BYTES, op, values);
  return buf;
}

/** The payload of a binary answer (what a lane carries): the op byte, then '1' or '0' per key. */
export function binaryAnswerPayload(op: 'exists' | 'get' | 'set', values: readonly boolean[]): Buffer {
  return writeBinaryAnswer(Buffer.allocUnsafe(1 + values.length), 0, op, values);
}

function writeBinaryAnswer(buf: Buffer, at: number, op: 'exists' | 'get' | 'set', values: readonly boolean[]): Buffer {
  buf[at] = BinaryOp[op];
  for (let j = 0; j < values.length; j++) buf[at + 1 + j] = values[j] ? 0x31 : 0x30;
  return buf;
}

/** One char per entry: '1' true, '0' false (compact for 256 keys, cheap in Python). */
export function bitString(values: readonly boolean[]): string {
  let s = '';
  for (const v of values) s += v ? '1' : '0';
  return s;
}
