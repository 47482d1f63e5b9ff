/**
 * The UCX data plane (`rdma`, `shm`): a typed wrapper over the native addon. One UCX worker per
 * TransportNode (create one per thread); endpoints are that worker's (its own QPs on RDMA).
 */
import { isErrorCode } from '../errors.js';
import { requireNative, type NativeContext, type NativeEndpoint, type NativeRegion, type NativeRemote, type NativeWorker } from './native.js';
import { openShmFiles, ShmLedger, writtenBytes } from './shm-ledger.js';
import {
  type AllocateOptions,
  DEFAULT_BATCH_TIMEOUT_MS,
  TransportError,
  type BatchOptions,
  type Endpoint,
  type LocalRegion,
  type WindowedMapping,
  windowView,
  type Protocol,
  type PublishedRegion,
  type RemoteRegion,
  type TransportNode,
  type TransportOptions,
} from './types.js';

/**
 * Test only, never a fast path: `PEERCACHE_TEST_UCX_TLS=tcp` runs protocol 'rdma' over UCX's own
 * tcp transport (one-sided GET emulated with active messages), so tests between network
 * namespaces exercise the rdma code path without a NIC: endpoints from a remote worker address,
 * rkeys unpacked from another host, UCX's peer-failure handling. Such a node is smoke-only.
 */
export const TEST_UCX_TLS_ENV = 'PEERCACHE_TEST_UCX_TLS';

function testTls(protocol: Protocol): { tls?: string } {
  const tls = process.env[TEST_UCX_TLS_ENV];
  if (tls === undefined || tls === '') return {};
  if (protocol !== 'rdma') throw new TransportError('ERR_INVALID_ARG', `${TEST_UCX_TLS_ENV} applies to protocol rdma only (a test setting), not ${protocol}`);
  if (!/^tcp$/.test(tls)) throw new TransportError('ERR_INVALID_ARG', `${TEST_UCX_TLS_ENV} may only be 'tcp' (a test setting), got '${tls}'`);
  // UCX 1.13's tcp transport connects with a blocking connect() by default: toward a silent peer
  // (a partition) ep creation held the whole thread for 70 s, until heal. Non-blocking connects
  // keep every wait under the batch deadline.
  process.env.UCX_TCP_CONN_NB ??= 'y';
  return { tls };
}

/** Allocations an abort gave up on that still run on a libuv pool thread (see allocateAsync). */
let abandonedAllocations = 0;

/** Whether an abandoned allocation still runs: a normal exit would wait for it (libuv joins its pool threads at exit). */
export function allocationsStillRunning(): boolean {
  return abandonedAllocations > 0;
}

function asTransportError(err: unknown): TransportError {
  if (err instanceof TransportError) return err;
  const e = err as { code?: string; message?: string };
  // The addon's codes are ours (native/common.h); anything else it might say is UCX's.
  return new TransportError(isErrorCode(e.code) ? e.code : 'ERR_UCX', e.message ?? String(err));
}

/** Lanes from `ucp_ep_print_info` text: "lane[0]:  1:sysv/memory.0 md[1] ..." -> "sysv/memory". */
export function parseLanes(info: string): string[] {
  const lanes = new Set<string>();
  for (const m of info.matchAll(/lane\[\d+\]:\s+\d+:(\S+?)(?:\.\d+)?\s/g)) lanes.add(m[1]);
  return [...lanes];
}

class UcxPublished implements PublishedRegion {
  readonly bytes: Uint8Array;
  readonly length: number;
  private readonly mapping?: WindowedMapping;
  constructor(
    readonly native: NativeRegion,
    private readonly onFree: (region: UcxPublished) => void,
  ) {
    this.length = native.length;
    if (native.windows) {
      const windows = native.windows;
      this.mapping = { window: (i) => windows[i], stride: requireNative().sharedWindowStride, length: native.length };
      this.bytes = new Uint8Array(native.windows[0]);
    } else this.bytes = new Uint8Array(native.buffer as ArrayBuffer);
  }
  view(offset: number, length: number): Uint8Array {
    return this.mapping ? windowView(this.mapping, offset, length) : this.bytes.subarray(offset, offset + length);
  }
  descriptor(): Uint8Array {
    return this.native.descriptor();
  }
  free(): void {
    this.onFree(this);
    this.native.free();
  }
}

class UcxLocal implements LocalRegion {
  readonly length: number;
  constructor(
    readonly native: NativeRegion,
    readonly bytes: Uint8Array,
    private readonly mapping?: WindowedMapping,
  ) {
    this.length = mapping ? mapping.length : bytes.byteLength;
  }
  view(offset: number, length: number): Uint8Array {
    return this.mapping ? windowView(this.mapping, offset, length) : this.bytes.subarray(offset, offset + length);
  }
  free(): void {
    this.native.free();
  }
}

class UcxRemote implements RemoteRegion {
  constructor(readonly native: NativeRemote) {}
  get length(): number {
    return this.native.length;
  }
}

// A caller that passes the same locals array call after call (the store's read fast path) gets
// its native list back without a new array per batch; the entries are re-checked every time.
const localsCache = new WeakMap<readonly LocalRegion[], { regions: LocalRegion[]; native: NativeRegion[] }>();

function nativeLocals(locals: readonly LocalRegion[]): NativeRegion[] {
  const hit = localsCache.get(locals);
  if (hit && hit.regions.length === locals.length) {
    let same = true;
    for (let i = 0; i < locals.length; i++) if (hit.regions[i] !== locals[i]) same = false;
    if (same) return hit.native;
  }
  const native = locals.map((l) => {
    if (!(l instanceof UcxLocal)) throw new TransportError('ERR_INVALID_ARG', 'local region was not registered with this UCX transport');
    return l.native;
  });
  localsCache.set(locals, { regions: [...locals], native });
  return native;
}

function nativeRemote(remote: RemoteRegion): NativeRemote {
  if (!(remote instanceof UcxRemote)) throw new TransportError('ERR_INVALID_ARG', 'remote region was not attached on a UCX endpoint');
  return remote.native;
}

export class UcxEndpoint implements Endpoint {
  readonly readInline?: Endpoint['readInline'];

  /** `inline`: READs complete inside the call (shm), so the endpoint offers `readInline`. */
  constructor(
    private readonly native: NativeEndpoint,
    private readonly defaultTimeoutMs: number,
    inline = false,
  ) {
    if (inline) this.readInline = (remote, locals, ops, count, options) => this.readSync(remote, locals, ops, count, options);
  }

  attach(descriptor: Uint8Array): RemoteRegion {
    try {
      return new UcxRemote(this.native.attach(descriptor));
    } catch (err) {
      throw asTransportError(err);
    }
  }

  read(remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): Promise<void> {
    try {
      return this.native
        .read(nativeRemote(remote), nativeLocals(locals), ops, count, options?.fenceAt ?? 0, options?.timeoutMs ?? this.defaultTimeoutMs)
        .catch((err: unknown) => Promise.reject(asTransportError(err)));
    } catch (err) {
      return Promise.reject(asTransportError(err));
    }
  }

  /** The blocking form: waits on the worker's event fd; no Promise, no event-loop turn. */
  readSync(remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): void {
    try {
      this.native.readSync(nativeRemote(remote), nativeLocals(locals), ops, count, options?.fenceAt ?? 0, options?.timeoutMs ?? this.defaultTimeoutMs);
    } catch (err) {
      throw asTransportError(err);
    }
  }

  write(remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): Promise<void> {
    try {
      return this.native
        .write(nativeRemote(remote), nativeLocals(locals), ops, count, options?.fenceAt ?? 0, options?.timeoutMs ?? this.defaultTimeoutMs)
        .catch((err: unknown) => Promise.reject(asTransportError(err)));
    } catch (err) {
      return Promise.reject(asTransportError(err));
    }
  }

  writeSync(remote: RemoteRegion, locals: readonly LocalRegion[], ops: Float64Array, count: number, options?: BatchOptions): void {
    try {
      this.native.writeSync(nativeRemote(remote), nativeLocals(locals), ops, count, options?.fenceAt ?? 0, options?.timeoutMs ?? this.defaultTimeoutMs);
    } catch (err) {
      throw asTransportError(err);
    }
  }

  lanes(): string[] {
    try {
      return parseLanes(this.native.info());
    } catch {
      return [];
    }
  }

  get failure(): string | null {
    return this.native.failure;
  }

  close(): void {
    this.native.close();
  }
}

export class UcxTransport implements TransportNode {
  /** True under the test-only UCX tcp setting (TEST_UCX_TLS_ENV): never a publishable figure. */
  readonly smokeOnly: boolean;
  private closed = false;
  /**
   * Every region this node published and has not freed. Peers hold its descriptor and READ it
   * whenever they like: it must not be unmapped because the caller dropped its object and the
   * collector ran (that unmapped a producer's region under its readers, who then crashed inside
   * UCX). It lives until free() or close().
   */
  private readonly published = new Set<UcxPublished>();

  private constructor(
    readonly protocol: Protocol,
    private readonly context: NativeContext,
    private readonly worker: NativeWorker,
    private readonly timeoutMs: number,
  ) {
    this.smokeOnly = protocol === 'rdma' && context.tls === 'tcp';
  }

  /** Opens the UCX context (shared per process) and this thread's worker. Throws ERR_PROTOCOL_UNAVAILABLE with the reason and the fix. */
  static open(options: TransportOptions): UcxTransport {
    if (options.protocol !== 'rdma' && options.protocol !== 'shm') {
      throw new TransportError('ERR_INVALID_ARG', `UcxTransport supports rdma and shm, not ${options.protocol}`);
    }
    let binding;
    try {
      binding = requireNative();
    } catch (err) {
      throw new TransportError('ERR_PROTOCOL_UNAVAILABLE', `protocol '${options.protocol}' cannot run here: ${(err as Error).message}. Use {protocol} tcp (smoke test only)`);
    }
    const ucx = binding.ucx();
    if (!ucx.available) {
      throw new TransportError('ERR_PROTOCOL_UNAVAILABLE', `protocol '${options.protocol}' cannot run here: ${ucx.error}. Or use {protocol} tcp (smoke test only)`);
    }
    let context: NativeContext;
    try {
      context = new binding.Context({
        ...testTls(options.protocol),
        protocol: options.protocol,
        devices: options.devices ?? [],
        ibPort: options.ibPort ?? 1,
        gidIndex: options.gidIndex ?? -1,
      });
    } catch (err) {
      throw asTransportError(err);
    }
    let worker: NativeWorker;
    try {
      worker = new binding.Worker(context);
    } catch (err) {
      context.close();
      throw asTransportError(err);
    }
    return new UcxTransport(options.protocol, context, worker, options.timeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS);
  }

  get transports(): string {
    return this.context.tls;
  }

  address(): Uint8Array {
    return this.worker.address();
  }

  async connect(peerAddress: Uint8Array): Promise<UcxEndpoint> {
    return this.connectSync(peerAddress);
  }

  connectSync(peerAddress: Uint8Array): UcxEndpoint {
    try {
      return new UcxEndpoint(this.worker.connect(peerAddress), this.timeoutMs, this.protocol === 'shm');
    } catch (err) {
      throw asTransportError(err);
    }
  }

  allocate(bytes: number, options: { remoteWritable?: boolean } = {}): PublishedRegion {
    try {
      const region = new UcxPublished(this.context.allocate(bytes, options.remoteWritable === true), (r) => this.published.delete(r));
      this.published.add(region);
      return region;
    } catch (err) {
      throw asTransportError(err);
    }
  }

  async allocateAsync(bytes: number, options: AllocateOptions = {}): Promise<PublishedRegion> {
    const { signal, onProgress } = options;
    if (signal?.aborted) throw new TransportError('ERR_ABORTED', 'allocation aborted before it started');
    // Descriptors open before: another allocation's, not this one's.
    const before = new Set(openShmFiles().keys());
    const ours = new Map<string, string>();
    const ledger = new ShmLedger();
    const t0 = performance.now();
    let lastReport = t0;
    const look = () => {
      for (const [fd, path] of openShmFiles()) {
        if (before.has(fd) || ours.has(fd)) continue;
        ours.set(fd, path);
        ledger.add(path);
      }
      const now = performance.now();
      if (onProgress && now - lastReport >= 1000) {
        lastReport = now;
        let written = 0;
        for (const fd of ours.keys()) written += writtenBytes(fd);
        onProgress({ written, total: bytes, elapsedMs: now - t0 });
      }
    };
    // Often at first: the file's name must be in the ledger before anything can kill this process.
    const timer = setInterval(look, 20);
    let native: Promise<NativeRegion>;
    try {
      native = this.context.allocateAsync(bytes, options.remoteWritable === true);
    } catch (err) {
      clearInterval(timer);
      throw asTransportError(err);
    }
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<never>((_, reject) => {
      onAbort = () => {
        clearInterval(timer);
        look();
        // The pool thread is still writing into it: unlinked, its memory goes when the process does.
        ledger.removeAll();
        reject(new TransportError('ERR_ABORTED', `allocation of ${bytes} bytes interrupted`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
    let delivered = false;
    try {
      const region = await Promise.race([native, aborted]);
      const published = new UcxPublished(region, (r) => this.published.delete(r));
      this.published.add(published);
      delivered = true;
      return published;
    } catch (err) {
      throw asTransportError(err);
    } finally {
      clearInterval(timer);
      if (onAbort) signal?.removeEventListener('abort', onAbort);
      ledger.settle();
      // Aborted: should the allocation finish after all, nobody will use it.
      if (!delivered) {
        abandonedAllocations++;
        native.then((r) => r.free(), () => {}).finally(() => abandonedAllocations--);
      }
    }
  }

  // RegisterOptions.mayShrink asks nothing more of UCX: a fault in a shrunk pool surfaces as the
  // guard's SIGBUS or a failed op (python/tests/test_hostile_pool.py runs both shm and tcp).
  register(view: Uint8Array | WindowedMapping): LocalRegion {
    try {
      if (view instanceof Uint8Array) return new UcxLocal(this.context.register(view), view);
      const first = new Uint8Array(view.window(0));
      return new UcxLocal(this.context.register(first, view.length), first, view);
    } catch (err) {
      throw asTransportError(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const region of [...this.published]) region.free();
    this.worker.close();
    this.context.close();
  }
}
