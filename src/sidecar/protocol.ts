/**
 * The sidecar's socket protocol (`peercache node`, spoken by the Python adapter in python/): the
 * limits, the request shapes and their validation. Clients are local processes but untrusted:
 * every field is checked here before the server acts on it, and every size has a limit.
 *
 * Framing is the directory's (store/directory/framing.ts): `u32 BE payload length | u8 version (1)
 * | u8 kind (1 request, 2 response, 4 error) | u32 BE request id | UTF-8 JSON payload`. A request is
 * `{ "op": ..., ...args }`; its response carries the same id. The first request on a connection
 * must be `hello` naming SIDECAR_PROTOCOL. An error frame carries `{ message, fatal }`; fatal errors
 * (a malformed frame, a frame past the limit) close the connection, others answer one request.
 *
 * Ops (object keys are full object names: page hash + SGLang's component suffix):
 *   hello    { protocol: "peercache-sidecar/1", pid }       -> { nodeId, protocol, slotBytes, limits }
 *   register { pid, fd, bytes }                               -> { pool }   (maps /proc/<pid>/fd/<fd>)
 *   exists   { keys }                                         -> { found: "0110..." } (one char per key)
 *   get      { pool, keys, offsets, lengths }                 -> { ok: "1100..." }  (READs into the pool)
 *   set      { pool, keys, offsets, lengths }                 -> { ok: "1111..." }  (publishes from it)
 *   clear    {}                                               -> {}  (unpublishes what this node holds)
 *   stats    { reset? }                                       -> { store stats, connections, pools, storeCalls }
 *            (storeCalls: p10/p50/p90/p99/mean µs of the store's own get/set/exists calls, socket excluded;
 *            reset: true starts new samples after this answer)
 * `pool` is a number, or an array with one pool per key; `lengths` an array, or one number for all.
 * exists/get/set may carry `deadline` (Unix ms): when the client gives up. A request is not started
 * within DEADLINE_MARGIN_MS of it (a stale request queued behind a stall must not write into pages
 * the client has reused), and a get's READs are cut off at it. Offsets and lengths are bytes from the
 * start of the registered file; every range must lie inside it.
 */

export const SIDECAR_PROTOCOL = 'peercache-sidecar/1';
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
  /** A connection must send hello within this long (ms). */
  helloTimeoutMs: number;
}

export const DEFAULT_SIDECAR_LIMITS: SidecarLimits = {
  maxFrameBytes: 1024 * 1024,
  maxKeys: 4096,
  maxKeyChars: 512,
  maxConnections: 256,
  maxPoolsPerConnection: 16,
  maxQueuedRequests: 8,
  helloTimeoutMs: 5_000,
};

/** The largest file a client may register (bytes): 2^47, as the host pool. */
export const MAX_POOL_BYTES = 2 ** 47;

export type SidecarRequest =
  | { op: 'hello'; protocol: string; pid: number }
  | { op: 'register'; pid: number; fd: number; bytes: number }
  | { op: 'exists'; keys: string[]; deadline?: number }
  | { op: 'get' | 'set'; pool: number | number[]; keys: string[]; offsets: number[]; lengths: number[]; deadline?: number }
  | { op: 'clear' }
  | { op: 'stats'; reset: boolean };

/** A request that cannot be served; the connection stays open. */
export class RequestError extends Error {
  override readonly name = 'RequestError';
}

const OPS = new Set(['hello', 'register', 'exists', 'get', 'set', 'clear', 'stats']);

function bad(message: string): never {
  throw new RequestError(message);
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

/** Checks a decoded JSON body; throws RequestError naming the first bad field. */
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

/** One char per entry: '1' true, '0' false (compact for 256 keys, cheap in Python). */
export function bitString(values: readonly boolean[]): string {
  let s = '';
  for (const v of values) s += v ? '1' : '0';
  return s;
}
