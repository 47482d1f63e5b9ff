/**
 * Whether a published segment fits this host, decided before anything is allocated. UCX allocates
 * a segment it cannot back without asking: System V first, and when that fails (a segment larger
 * than the kernel lets it promise) POSIX shared memory, whose allocator writes zeros through the
 * whole backing file in /dev/shm first. A 64 GiB segment on a 24 GiB host filled 13.8 GB of
 * /dev/shm that way before it was stopped. So the segment is compared with the memory the host
 * (and its cgroup) has available, /dev/shm's free space where POSIX memory backs it, and the
 * locked-memory limit RDMA registration is charged to — and refused in one line naming each.
 */
import { readFileSync, statfsSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import type { Protocol } from './types.js';

/** What the host can give a segment, as read from /proc, the cgroup and statfs (null: not known). */
export interface HostMemory {
  /** /proc/meminfo MemAvailable. */
  memAvailable: number | null;
  /** The cgroup's limit minus its usage; null when unlimited or unknown. */
  cgroupFree: number | null;
  cgroupLimit: number | null;
  /** statfs(/dev/shm): bytes an unprivileged writer may still use. */
  shmFree: number | null;
  /** RLIMIT_MEMLOCK's soft value (`ulimit -l`); null when unlimited. */
  memlock: number | null;
  /** CAP_IPC_LOCK in the effective set: RDMA registration then ignores RLIMIT_MEMLOCK. */
  ipcLock: boolean;
  /** The largest System V segment the kernel allows (kernel.shmmax), and all of them (shmall pages). */
  sysvMax: number | null;
  /** UCX_ALLOC_PRIO puts POSIX shared memory before System V. */
  posixFirst: boolean;
}

const GiB = 2 ** 30;
/** Memory a segment must leave to the rest of the host: 1 GiB, or a tenth of what is available if less. */
export function memoryHeadroom(available: number): number {
  return Math.min(GiB, Math.floor(available / 10));
}

/** 64 GiB, 512 MiB, 8 MiB: binary units, one decimal where it matters. */
export function humanBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${Number.isInteger(v) ? v : v.toFixed(1)} ${units[u]}`;
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

function readNumber(path: string): number | null {
  const text = readText(path)?.trim();
  if (!text || !/^\d+$/.test(text)) return null;
  const n = Number(text);
  // cgroup v1 says "no limit" with a number near 2^63.
  return n >= 2 ** 60 ? null : n;
}

/** The memory cgroup's limit and usage (v2, or v1's memory controller), seen from inside it. */
function cgroupMemory(): { limit: number | null; usage: number | null } {
  const lines = (readText('/proc/self/cgroup') ?? '').split('\n');
  const v2 = lines.find((l) => l.startsWith('0::'))?.slice(3);
  const v1 = lines.find((l) => /^\d+:([^:]*,)?memory(,[^:]*)?:/.test(l))?.split(':')[2];
  const candidates: Array<[string, string]> = [];
  if (v1 !== undefined) {
    // A container sees its own cgroup at the mount's root; the host sees it under its path.
    candidates.push([`/sys/fs/cgroup/memory${v1}/memory.limit_in_bytes`, `/sys/fs/cgroup/memory${v1}/memory.usage_in_bytes`]);
    candidates.push(['/sys/fs/cgroup/memory/memory.limit_in_bytes', '/sys/fs/cgroup/memory/memory.usage_in_bytes']);
  }
  if (v2 !== undefined) {
    candidates.push([`/sys/fs/cgroup${v2}/memory.max`, `/sys/fs/cgroup${v2}/memory.current`]);
    candidates.push(['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory.current']);
  }
  for (const [limitPath, usagePath] of candidates) {
    const limitText = readText(limitPath);
    if (limitText === null) continue;
    const limit = limitText.trim() === 'max' ? null : readNumber(limitPath);
    return { limit, usage: limit === null ? null : readNumber(usagePath) };
  }
  return { limit: null, usage: null };
}

/** Whether UCX_ALLOC_PRIO (UCX's allocator order) tries md:posix before md:sysv. */
export function posixFirst(allocPrio: string | undefined): boolean {
  if (!allocPrio) return false; // UCX 1.13's default: md:sysv,md:posix,huge,thp,md:*,mmap,heap
  const items = allocPrio.split(',').map((s) => s.trim());
  const posix = items.indexOf('md:posix');
  const sysv = items.indexOf('md:sysv');
  return posix >= 0 && (sysv < 0 || posix < sysv);
}

export function readHostMemory(env: NodeJS.ProcessEnv = process.env): HostMemory {
  const meminfo = readText('/proc/meminfo') ?? '';
  const avail = /^MemAvailable:\s+(\d+)\s+kB/m.exec(meminfo);
  const cg = cgroupMemory();
  let shmFree: number | null = null;
  try {
    const s = statfsSync('/dev/shm');
    shmFree = s.bavail * s.bsize;
  } catch {
    shmFree = null;
  }
  const limits = readText('/proc/self/limits') ?? '';
  const lock = /^Max locked memory\s+(\S+)/m.exec(limits);
  const capEff = /^CapEff:\s+([0-9a-f]+)/m.exec(readText('/proc/self/status') ?? '');
  const shmmax = readNumber('/proc/sys/kernel/shmmax');
  const shmall = readNumber('/proc/sys/kernel/shmall');
  const sysvMax = shmmax === null && shmall === null ? null : Math.min(shmmax ?? Infinity, shmall === null ? Infinity : shmall * 4096);
  return {
    memAvailable: avail ? Number(avail[1]) * 1024 : null,
    cgroupFree: cg.limit !== null && cg.usage !== null ? Math.max(0, cg.limit - cg.usage) : null,
    cgroupLimit: cg.limit,
    shmFree,
    memlock: !lock || lock[1] === 'unlimited' ? null : Number(lock[1]),
    ipcLock: capEff ? (BigInt(`0x${capEff[1]}`) & (1n << 14n)) !== 0n : false,
    sysvMax,
    posixFirst: posixFirst(env.UCX_ALLOC_PRIO),
  };
}

/**
 * Why a segment of `bytes` must not be allocated here, as a template naming the option
 * `{globalSegmentBytes}` (the CLI: its flag); null when it fits.
 */
export function segmentRefusal(bytes: number, protocol: Protocol, host: HostMemory): string | null {
  const size = `{globalSegmentBytes} ${humanBytes(bytes)}`;
  const sources: string[] = [];
  let available = Infinity;
  if (host.memAvailable !== null) {
    available = host.memAvailable;
    sources.push(`MemAvailable ${humanBytes(host.memAvailable)}`);
  }
  if (host.cgroupFree !== null && host.cgroupLimit !== null) {
    available = Math.min(available, host.cgroupFree);
    sources.push(`cgroup limit ${humanBytes(host.cgroupLimit)} with ${humanBytes(host.cgroupFree)} free`);
  }
  if (Number.isFinite(available)) {
    const headroom = memoryHeadroom(available);
    if (bytes > available - headroom) {
      return `${size} does not fit this host's memory: ${humanBytes(available)} available (${sources.join(', ')}), and a segment must leave ${humanBytes(headroom)} to the rest of the host; lower {globalSegmentBytes}`;
    }
  }
  if (protocol === 'shm' && host.shmFree !== null && bytes > host.shmFree) {
    // POSIX memory lives in /dev/shm: UCX takes it first when UCX_ALLOC_PRIO says so, or when the
    // segment is over System V's limits.
    const posix = host.posixFirst || (host.sysvMax !== null && bytes > host.sysvMax);
    if (posix) {
      const why = host.posixFirst ? 'UCX_ALLOC_PRIO puts md:posix first' : `System V allows at most ${humanBytes(host.sysvMax!)} (kernel.shmmax/shmall)`;
      return `${size} does not fit /dev/shm: ${humanBytes(host.shmFree)} free there, and the segment would be POSIX shared memory (${why}); lower {globalSegmentBytes} or make /dev/shm larger`;
    }
  }
  if (protocol === 'rdma' && host.memlock !== null && !host.ipcLock && bytes > host.memlock) {
    return `${size} is over this process's locked-memory limit (ulimit -l: ${humanBytes(host.memlock)}), which RDMA registration is charged to; raise it (ulimit -l unlimited; LimitMEMLOCK=infinity in a systemd unit) or lower {globalSegmentBytes}`;
  }
  return null;
}

/** Throws a ConfigError (CLI: exit 2) when a segment of `bytes` does not fit this host. */
export function checkSegmentFits(bytes: number, protocol: Protocol, host: HostMemory = readHostMemory()): void {
  const refusal = segmentRefusal(bytes, protocol, host);
  if (refusal) throw new ConfigError(refusal);
}
