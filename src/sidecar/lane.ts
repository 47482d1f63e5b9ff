/**
 * A lane: a small shared-memory file through which a polling client and a polling sidecar pass one
 * binary request and its answer without a syscall each way (the socket's send and recv on each side
 * cost ~20 µs per 128-page call on the measured VM, bench-results/sglang-adapter-shm.md). The client
 * creates it (a memfd), registers it with `{"op":"lane"}` and keeps using the socket for everything
 * else, and for wake-ups: each side advertises until when it polls, and the other sends a one-frame
 * event over the socket only when that time is not comfortably ahead.
 *
 * Layout (little-endian; client-written fields apart from sidecar-written ones by cache lines):
 *   0   u32 magic 'PCL1'                   (client, at creation)
 *   64  u32 request id   68 u32 length     (client: the payload first, then the length, the id last)
 *   128 u64 client polls until             (client; CLOCK_MONOTONIC ns, 0: not polling)
 *   192 u64 sidecar polls until            (sidecar; same clock)
 *   256 u32 answer id    260 u32 length   264 u8 frame kind  (sidecar: body first, the id last)
 *   4096 request payload (LANE_REQUEST_BYTES)   then the answer payload (LANE_ANSWER_BYTES)
 * Ordering: a field written last is read first; x86-64's stores and loads are not reordered with
 * their own kind, and the copies in between are calls, which the JIT does not move loads across.
 * Other architectures would need fences JavaScript cannot issue, so lanes are offered on x64 only.
 * The fields are read and written whole, as typed-array elements (one aligned access each; a
 * DataView, like Python's struct, may go byte by byte and be seen half-written: seen in a test).
 *
 * The client is untrusted like on the socket: the request is copied out and re-checked (its id must
 * not change under the copy), then parsed by the same parser with the same limits.
 */
import { requireNative } from '../transport/native.js';
import { PeercacheError } from '../errors.js';

export const LANE_MAGIC = 0x314c4350; // 'PCL1' little-endian
export const LANE_REQUEST_ID = 64;
export const LANE_REQUEST_LENGTH = 68;
export const LANE_CLIENT_POLLS_UNTIL = 128;
export const LANE_SIDECAR_POLLS_UNTIL = 192;
export const LANE_ANSWER_ID = 256;
export const LANE_ANSWER_LENGTH = 260;
export const LANE_ANSWER_KIND = 264;
export const LANE_REQUEST_AT = 4096;
export const LANE_REQUEST_BYTES = 64 * 1024;
export const LANE_ANSWER_AT = LANE_REQUEST_AT + LANE_REQUEST_BYTES;
export const LANE_ANSWER_BYTES = 8 * 1024;
export const LANE_BYTES = LANE_ANSWER_AT + LANE_ANSWER_BYTES;
/** A side skips the wake-up event only when the other polls at least this much longer (ns). */
export const LANE_MARGIN_NS = 50_000n;

/** Whether this process can serve lanes (see the ordering note above). */
export const LANES_SUPPORTED = process.arch === 'x64';

const U32 = (offset: number): number => offset / 4;
const U64 = (offset: number): number => offset / 8;

export class Lane {
  /** Id of the last request taken (a new id in the lane is a new request). */
  private lastId: number;
  private readonly u32: Uint32Array;
  private readonly u64: BigUint64Array;
  private readonly bytes: Uint8Array;

  constructor(readonly buffer: ArrayBuffer) {
    this.bytes = new Uint8Array(buffer);
    this.u32 = new Uint32Array(buffer, 0, LANE_REQUEST_AT / 4);
    this.u64 = new BigUint64Array(buffer, 0, LANE_REQUEST_AT / 8);
    this.lastId = this.u32[U32(LANE_REQUEST_ID)];
  }

  /** The client wrote the magic (a registered file that is not a lane is refused). */
  get valid(): boolean {
    return this.buffer.byteLength >= LANE_BYTES && this.u32[0] === LANE_MAGIC;
  }

  /**
   * A new request, copied out of the lane (id, payload), or null. Throws a message for a request the
   * client rewrote while it was read, or longer than the lane or `maxBytes`.
   */
  take(maxBytes: number): { id: number; payload: Buffer } | null {
    const id = this.u32[U32(LANE_REQUEST_ID)];
    if (id === this.lastId) return null;
    const length = this.u32[U32(LANE_REQUEST_LENGTH)];
    if (length === 0 || length > LANE_REQUEST_BYTES || length > maxBytes) throw new PeercacheError('ERR_BAD_FRAME', `lane request ${id}: ${length} bytes (1..${Math.min(LANE_REQUEST_BYTES, maxBytes)})`);
    const payload = Buffer.from(this.bytes.subarray(LANE_REQUEST_AT, LANE_REQUEST_AT + length));
    if (this.u32[U32(LANE_REQUEST_ID)] !== id) throw new PeercacheError('ERR_BAD_FRAME', `lane request ${id} was rewritten while it was read`);
    this.lastId = id;
    return { id, payload };
  }

  /** Writes an answer (false: too long for the lane; the caller answers on the socket instead). */
  answer(id: number, kind: number, payload: Uint8Array): boolean {
    if (payload.byteLength > LANE_ANSWER_BYTES) return false;
    this.bytes.set(payload, LANE_ANSWER_AT);
    this.u32[U32(LANE_ANSWER_LENGTH)] = payload.byteLength;
    this.bytes[LANE_ANSWER_KIND] = kind;
    this.u32[U32(LANE_ANSWER_ID)] = id;
    return true;
  }

  /** Whether the client polls long enough past `nowNs` to see an answer without a wake-up. */
  clientPolls(nowNs: bigint): boolean {
    return nowNs + LANE_MARGIN_NS < this.u64[U64(LANE_CLIENT_POLLS_UNTIL)];
  }

  /** Until when this sidecar looks at the lane without being woken (0n: it does not poll). */
  set sidecarPollsUntil(ns: bigint) {
    this.u64[U64(LANE_SIDECAR_POLLS_UNTIL)] = ns;
  }

  /** Whether the client shrank the lane's file (the native SIGBUS guard then replaced its pages). */
  get shrunk(): boolean {
    return requireNative().sharedMappingShrunk(this.buffer, false);
  }
}
