/**
 * Client pools mapped into the sidecar: a client (an SGLang rank) names its host pool's memfd as
 * (pid, fd); the sidecar opens /proc/<pid>/fd/<fd>, maps it MAP_SHARED (native mapShared) and
 * registers the mapping with the transport, so READs land in the client's pages and publishes copy
 * from them with no copy across the process boundary.
 *
 * Checks: the process must run under the sidecar's own uid (read from /proc/<pid>/status; the
 * kernel also refuses /proc/<pid>/fd of a process we may not ptrace), the fd must be shared memory
 * (a memfd, or a file on tmpfs or hugetlbfs such as /dev/shm: a wrong fd number must not make the
 * sidecar write into a file on disk) of at least `bytes` bytes. What the file is, the addon decides
 * from the file it maps (F_GET_SEALS), not from the name /proc shows for it, which a client can
 * choose (a disk directory bind-mounted under /dev/shm in its own mount namespace). The client can still shrink the file later: the native SIGBUS guard (native/
 * shared_mapping.cc) keeps the sidecar alive and shrunk() tells the server, which drops the pool.
 * A file is mapped once however many
 * connections register it (keyed by device, inode and size) and unmapped when the last one goes.
 */
import { readFileSync, statSync, type Stats } from 'node:fs';
import { requireNative } from '../transport/native.js';
import type { LocalRegion, WindowedMapping } from '../transport/types.js';
import { SidecarRequestError } from './protocol.js';

export interface MappedPool {
  readonly key: string;
  readonly region: LocalRegion;
  readonly bytes: number;
  /** The mapping (its first window when it has several): what the native SIGBUS guard knows it by. */
  readonly buffer: ArrayBuffer;
  refs: number;
  /** The client shrank the file after registering it: the pool serves no more requests. */
  shrunk: boolean;
}

/** Registers a mapping with the data plane (PeerCacheStore.registerRegion). */
export type RegisterRegion = (view: Uint8Array | WindowedMapping) => LocalRegion;

function uidOf(pid: number): number {
  let status: string;
  try {
    status = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    throw new SidecarRequestError(`process ${pid} does not exist`);
  }
  const m = /^Uid:\s+(\d+)/m.exec(status);
  if (!m) throw new SidecarRequestError(`cannot read the uid of process ${pid}`);
  return Number(m[1]);
}

/**
 * The path through which the sidecar opens fd `fd` of process `pid`, after the checks in the header
 * (same uid, a regular file at least `bytes` long; mapClientFile checks it is shared memory);
 * SidecarRequestError naming what failed.
 */
export function clientFile(pid: number, fd: number, bytes: number): { path: string; st: Stats } {
  const uid = process.getuid?.() ?? -1;
  if (uidOf(pid) !== uid) throw new SidecarRequestError(`process ${pid} does not run as this sidecar's uid ${uid}: its file is not mapped`);
  const path = `/proc/${pid}/fd/${fd}`;
  let st: Stats;
  try {
    st = statSync(path);
  } catch (err) {
    throw new SidecarRequestError(`cannot open fd ${fd} of process ${pid}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // (stat does not open: a FIFO or a device is refused before anything opens it)
  if (!st.isFile()) throw new SidecarRequestError(`fd ${fd} of process ${pid} is not shared memory (a memfd, or a file on tmpfs or hugetlbfs such as /dev/shm)`);
  if (st.size < bytes) throw new SidecarRequestError(`fd ${fd} of process ${pid} has ${st.size} bytes, fewer than the ${bytes} registered`);
  return { path, st };
}

/** Maps a client's file (clientFile's path) MAP_SHARED; SidecarRequestError when it is not shared memory or cannot be mapped. */
export function mapClientFile(pid: number, fd: number, path: string, bytes: number): ArrayBuffer | ArrayBuffer[] {
  try {
    return requireNative().mapShared(path, bytes);
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_NOT_SHARED_MEMORY') {
      throw new SidecarRequestError(`fd ${fd} of process ${pid} is not shared memory (a memfd, or a file on tmpfs or hugetlbfs such as /dev/shm)`);
    }
    throw new SidecarRequestError((err as Error).message);
  }
}

/** A mapShared mapping over 4 GiB: its windows made on first use, then kept (the mapping lives while they do). */
function lazyWindows(first: ArrayBuffer, length: number): WindowedMapping {
  const native = requireNative();
  const windows: ArrayBuffer[] = [first];
  return {
    window: (i) => (windows[i] ??= native.sharedMappingWindow(first, i)),
    stride: native.sharedWindowStride,
    length,
  };
}

export class PoolMappings {
  private readonly pools = new Map<string, MappedPool>();
  /** Bytes of every mapping held now. */
  mappedBytes = 0;

  constructor(private readonly register: RegisterRegion) {}

  get count(): number {
    return this.pools.size;
  }

  /** Maps (or shares the mapping of) a client's file; the caller must release() it. */
  acquire(pid: number, fd: number, bytes: number): MappedPool {
    const { path, st } = clientFile(pid, fd, bytes);
    const key = `${st.dev}:${st.ino}:${bytes}`;
    const existing = this.pools.get(key);
    if (existing) {
      existing.refs++;
      return existing;
    }
    const mapped = mapClientFile(pid, fd, path, bytes);
    // Over 4 GiB the mapping comes as overlapping windows (one JS buffer cannot be that long).
    const whole: Uint8Array | WindowedMapping = Array.isArray(mapped) ? lazyWindows(mapped[0], bytes) : new Uint8Array(mapped);
    const buffer = Array.isArray(mapped) ? mapped[0] : mapped;
    let region: LocalRegion;
    try {
      region = this.register(whole);
    } catch (err) {
      throw new SidecarRequestError(`cannot register the pool with the data plane: ${(err as Error).message}`);
    }
    const pool: MappedPool = { key, region, bytes, buffer, refs: 1, shrunk: false };
    this.pools.set(key, pool);
    this.mappedBytes += bytes;
    return pool;
  }

  /**
   * Whether the client shrank the pool's file since it registered it (checkFile: ask the file's size
   * now, one syscall; otherwise only whether a touched page was past the end). A shrunk pool is
   * marked and forgotten here: a later register of the file maps it afresh.
   */
  shrunk(pool: MappedPool, checkFile: boolean): boolean {
    if (pool.shrunk) return true;
    if (!requireNative().sharedMappingShrunk(pool.buffer, checkFile)) return false;
    pool.shrunk = true;
    if (this.pools.get(pool.key) === pool) {
      this.pools.delete(pool.key);
      this.mappedBytes -= pool.bytes;
    }
    return true;
  }

  /** Drops one reference; the last one deregisters the region (the mapping goes when it is collected). */
  release(pool: MappedPool): void {
    if (--pool.refs > 0) return;
    if (this.pools.get(pool.key) === pool) {
      this.pools.delete(pool.key);
      this.mappedBytes -= pool.bytes;
    }
    pool.region.free();
  }

  releaseAll(): void {
    for (const pool of [...this.pools.values()]) {
      pool.refs = 1;
      this.release(pool);
    }
  }
}
