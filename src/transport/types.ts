/**
 * The data-plane contract every transport implements (UCX `rdma`/`shm` in ucx.ts, the pure
 * TypeScript `tcp` fallback in tcp/). The store sees transports only through this file.
 *
 * Model: one `TransportNode` per thread that moves data. A node publishes memory peers can READ
 * (`allocate`), registers local memory as READ destination / WRITE source (`register`), and opens
 * endpoints to peers (`connect`, from the peer's `address()` blob). A reader `attach`es the
 * publisher's region `descriptor()` on an endpoint and posts batches of one-sided ops.
 */

export type Protocol = 'rdma' | 'shm' | 'tcp';
export const PROTOCOLS: readonly Protocol[] = ['rdma', 'shm', 'tcp'];

import type { Logger } from '../log.js';
import { PeercacheError, type ErrorCode, InvalidArgumentError } from '../errors.js';
import type { TlsFiles } from '../tls.js';

/**
 * The data-plane options every layer takes, declared once: the store's config, `peercache node`'s
 * options and the bench's connection options extend it (TransportOptions, below, is what the store
 * resolves them to for the transport).
 */
export interface DataPlaneOptions {
  protocol: Protocol;
  /** RDMA device, e.g. mlx5_0 (default: UCX picks). */
  deviceName?: string;
  /** RDMA devices (rails); overrides deviceName. */
  devices?: readonly string[];
  /** RDMA port (default 1). */
  ibPort?: number;
  /** RoCE GID index; undefined: UCX picks. */
  gidIndex?: number;
  /** The address this node advertises and binds its tcp transport to (default 127.0.0.1). */
  localHost?: string;
}

export interface TransportOptions {
  protocol: Protocol;
  /** RDMA device names (rails), e.g. ['mlx5_0']; empty: UCX picks. */
  devices?: readonly string[];
  /** RDMA port (default 1). */
  ibPort?: number;
  /** RoCE GID index; undefined: UCX picks. */
  gidIndex?: number;
  /** tcp: the address to bind and advertise (default 127.0.0.1). */
  host?: string;
  /** Default deadline of one batch (default 10 000 ms). Every wait has one. */
  timeoutMs?: number;
  /** tcp: limits of the node's data-plane server (each defaults to TCP_SERVER_LIMITS). */
  tcpLimits?: Partial<TcpServerLimits>;
  /**
   * tcp: TLS for the data plane, certificates by path: this node's server presents certFile/keyFile
   * (its certificate must name the host it advertises), its endpoints verify peers against caFile.
   * Without it region tokens and page bytes cross the network in cleartext (docs/security.md).
   */
  tcpTls?: TlsFiles;
  /** Where the node reports what peers did to it (tcp: a connection closed and why); default: warnings to stderr. */
  logger?: Logger;
}

/**
 * What the tcp data-plane server holds per peer, enforced before it allocates: a peer that never
 * says HELLO, trickles a frame, stops reading its answers or opens too many connections costs a
 * bounded amount of memory and time.
 */
export interface TcpServerLimits {
  /** A connection must complete its HELLO frame within this long of connecting (ms). */
  helloTimeoutMs: number;
  /** A connection is closed when no complete frame arrived for this long (ms); bytes of an unfinished frame do not count. */
  idleTimeoutMs: number;
  /** Connections served at once; more are closed as they arrive. */
  maxConnections: number;
  /** Answer bytes (plus a fixed cost per answer) queued unsent on one connection before the server stops reading it. */
  maxQueuedAnswerBytes: number;
  /**
   * The same over all connections: past it, connections wait for answers to drain before more are
   * made. Half of it is split evenly as every connection's guaranteed allowance (so a reader's
   * small answers never wait behind others), the other half is shared, each connection holding at
   * most an even share of it once others want some.
   */
  maxTotalAnswerBytes: number;
  /**
   * Connections that have not yet sent a frame with a valid region token (only HELLO, or forged
   * tokens) held at once; a new one past it closes the oldest such connection. Their answers are
   * held to a small allowance of their own, never the shared budget.
   */
  maxUnauthenticated: number;
  /** A connection that sent no frame with a valid region token this long after connecting is closed (ms). */
  authTimeoutMs: number;
}

/** Memory this node publishes: peers READ (and WRITE) it one-sidedly. */
export interface PublishedRegion {
  /** A view of the whole region, or of its first window when it is over 4 GiB (detached after free()). */
  readonly bytes: Uint8Array;
  readonly length: number;
  /** The bytes [offset, offset + length) as one view (length at most MAX_VIEW_BYTES). */
  view(offset: number, length: number): Uint8Array;
  /** The blob a peer passes to `Endpoint.attach()` to reach this region. */
  descriptor(): Uint8Array;
  free(): void;
}

/** How `register` may use the memory it is given. */
export interface RegisterOptions {
  /**
   * The memory maps a file another process may shrink at any time (a client's host pool mapped by
   * the sidecar). The data plane then lets only the CPU write into it, where a page past the file's
   * end faults as a SIGBUS the shared-mapping guard catches, never the kernel on a socket read,
   * where it is an EFAULT that breaks the connection to the peer for every caller.
   */
  readonly mayShrink?: boolean;
}

/** Local memory registered as the destination of READs / source of WRITEs. */
export interface LocalRegion {
  /** The region's bytes; for a WindowedMapping only its first window (use view()). */
  readonly bytes: Uint8Array;
  readonly length: number;
  /** The bytes [offset, offset + length) as one view (length at most MAX_VIEW_BYTES). */
  view(offset: number, length: number): Uint8Array;
  free(): void;
}

/** The longest range view() promises to give as one view (a window stride). */
export const MAX_VIEW_BYTES = 2 ** 30;

/**
 * A shared mapping longer than one JS buffer may be (Node 20: 4 GiB): overlapping windows, window
 * i starting at i x stride and at least 2 x stride long (the last one shorter), over one mapping of
 * `length` bytes (native mapShared). Any range of up to `stride` bytes lies inside one window.
 */
export interface WindowedMapping {
  /** Window i (made when first asked for, where the owner allows). */
  window(index: number): ArrayBuffer;
  readonly stride: number;
  readonly length: number;
}

/** Index of the window that holds [offset, offset + length) whole (the last window if past it). */
function windowIndex(m: WindowedMapping, offset: number): number {
  return Math.max(0, Math.min(Math.floor(offset / m.stride), Math.ceil(m.length / m.stride) - 2));
}

/** view() of a WindowedMapping: the window holding the whole range, or a RangeError. */
export function windowView(m: WindowedMapping, offset: number, length: number): Uint8Array {
  const i = windowIndex(m, offset);
  const at = offset - i * m.stride;
  const w = m.window(i);
  if (offset < 0 || length < 0 || at + length > w.byteLength) throw new InvalidArgumentError(`bytes ${offset}..${offset + length} are not inside one window of the ${m.length}-byte mapping`);
  return new Uint8Array(w, at, length);
}

/** A peer's published region, attached on one endpoint. */
export interface RemoteRegion {
  readonly length: number;
}

/**
 * Ops of one batch: `count` quads in a Float64Array,
 * `[remoteOffset, localIndex, localOffset, length]`, where `localIndex` picks one of the batch's
 * `locals`. Offsets are bytes from the start of the remote / local region.
 */
export interface BatchOptions {
  /** Ops at index >= fenceAt start only after every op before it completed (a fence). */
  fenceAt?: number;
  /** Deadline of this batch, overriding the node's default. */
  timeoutMs?: number;
}

export interface Endpoint {
  attach(descriptor: Uint8Array): RemoteRegion;
  /** One-sided READ of every op into the local regions; one completion for the batch. */
  read(remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): Promise<void>;
  /** One-sided WRITE of every op from the local regions. */
  write(remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): Promise<void>;
  /**
   * A capability, present only where a READ completes inside the call (UCX over shared memory: a
   * copy from the peer's mapped segment): `read` without the Promise round trip, throwing a
   * TransportError instead of rejecting. Callers test for it; the contract is otherwise `read`'s.
   */
  readonly readInline?: (remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions) => void;
  /** The transports (lanes) this endpoint actually uses, e.g. ['sysv/memory', 'posix/memory']. */
  lanes(): string[];
  /** Why the endpoint failed (peer died, a batch timed out), or null. */
  readonly failure: string | null;
  close(): void;
}

/** Progress of a slow allocation: bytes of backing memory written so far, of `total`. */
export interface AllocateProgress {
  written: number;
  total: number;
  elapsedMs: number;
}

export interface AllocateOptions {
  remoteWritable?: boolean;
  signal?: AbortSignal;
  /** Called about once a second while an allocation lasts. */
  onProgress?: (progress: AllocateProgress) => void;
}

export interface TransportNode {
  readonly protocol: Protocol;
  /** The transports this node was restricted to (e.g. 'posix,sysv,cma,self'; 'tcp (smoke)'). */
  readonly transports: string;
  /** True when figures measured over this node are smoke tests, not publishable. */
  readonly smokeOnly: boolean;
  /** What a peer passes to `connect()`. */
  address(): Uint8Array;
  connect(peerAddress: Uint8Array): Promise<Endpoint>;
  allocate(bytes: number, options?: { remoteWritable?: boolean }): PublishedRegion;
  /**
   * The same without holding the event loop (UCX's POSIX allocator writes the whole segment
   * first: seconds per GiB): reports progress, and an abort unlinks what it has created so far and
   * rejects at once (ERR_ABORTED; the process should then exit, the allocation cannot be recalled).
   */
  allocateAsync(bytes: number, options?: AllocateOptions): Promise<PublishedRegion>;
  /** A local buffer: a view, or (UCX only) a mapShared mapping longer than one view. */
  register(view: Uint8Array | WindowedMapping, options?: RegisterOptions): LocalRegion;
  close(): Promise<void>;
}

/** Error with a stable `code` (ERR_PROTOCOL_UNAVAILABLE, ERR_TIMEOUT, ERR_OUT_OF_RANGE, ...). */
export class TransportError extends PeercacheError {
  override name = 'TransportError';
  constructor(code: ErrorCode, message: string) {
    super(code, message);
  }
}

export const OP_FIELDS = 4;
export const DEFAULT_BATCH_TIMEOUT_MS = 10_000;
