/**
 * The POSIX shared-memory files this process's UCX allocations create, and a ledger of them so a
 * later start can remove the ones a killed process left behind.
 *
 * UCX's POSIX allocator creates /dev/shm/ucx_shm_posix_<hex>, writes zeros through all of it (seconds
 * per GiB), and only then unlinks it (peers open it through /proc/<pid>/fd). A process killed in
 * between leaves the file, and its memory, behind. The file's name is random, so it is found
 * through this process's own open descriptors (/proc/self/fd): a descriptor this process holds is
 * proof that the file is its own. Its path goes into a ledger file (<state dir>/shm-<pid>.json)
 * with the process's start time; a later start removes a recorded file only when that process is
 * gone (pid dead, or reused by another process), the file is still a regular ucx_shm_posix_* file in
 * /dev/shm and it belongs to this user. Files it has no record of are never touched.
 */
import { lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

const SHM_DIR = '/dev/shm';
const UCX_POSIX_FILE = /^\/dev\/shm\/ucx_shm_posix_[0-9a-f]+$/;
const RECORD = /^shm-(\d+)\.json$/;

/** Where ledgers live: $PEERCACHE_STATE_DIR, else $XDG_RUNTIME_DIR/peercache, else /run/peercache (root) or ~/.cache/peercache. */
export function stateDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PEERCACHE_STATE_DIR) return env.PEERCACHE_STATE_DIR;
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, 'peercache');
  return process.getuid?.() === 0 ? '/run/peercache' : join(homedir(), '.cache', 'peercache');
}

/** A process's start time in clock ticks since boot (/proc/<pid>/stat field 22): tells a reused pid apart. */
export function processStart(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** The ucx_shm_posix_* files this process holds open and are still linked, by descriptor. */
export function openShmFiles(): Map<string, string> {
  const out = new Map<string, string>();
  let fds: string[];
  try {
    fds = readdirSync('/proc/self/fd');
  } catch {
    return out;
  }
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (UCX_POSIX_FILE.test(target)) out.set(fd, target);
  }
  return out;
}

/** Bytes written so far into the file behind one of this process's descriptors (0 if gone). */
export function writtenBytes(fd: string): number {
  try {
    return statSync(`/proc/self/fd/${fd}`).blocks * 512;
  } catch {
    return 0;
  }
}

interface LedgerRecord {
  pid: number;
  start: string | null;
  files: string[];
}

/** This process's ledger file: which shared-memory files it has created and not yet seen unlinked. */
export class ShmLedger {
  private readonly path: string;
  private readonly files = new Set<string>();

  constructor(private readonly dir: string = stateDir()) {
    this.path = join(dir, `shm-${process.pid}.json`);
  }

  /** Records `file` as this process's (before anything else can go wrong with it). */
  add(file: string): void {
    if (this.files.has(file)) return;
    this.files.add(file);
    this.write();
  }

  /** Forgets files that are no longer linked; removes the ledger when none is left. */
  settle(): void {
    for (const f of [...this.files]) if (!exists(f)) this.files.delete(f);
    if (this.files.size === 0) {
      try {
        unlinkSync(this.path);
      } catch {
        // never written, or already gone
      }
    } else {
      this.write();
    }
  }

  /** Unlinks every recorded file still there (an interrupted allocation) and the ledger. */
  removeAll(): string[] {
    const removed: string[] = [];
    for (const f of this.files) {
      try {
        unlinkSync(f);
        removed.push(f);
      } catch {
        // UCX unlinked it already
      }
    }
    this.files.clear();
    this.settle();
    return removed;
  }

  private write(): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const record: LedgerRecord = { pid: process.pid, start: processStart(process.pid), files: [...this.files] };
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, JSON.stringify(record) + '\n', { mode: 0o600 });
    renameSync(tmp, this.path);
  }
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function parseRecord(text: string): LedgerRecord | null {
  try {
    const r = JSON.parse(text) as Partial<LedgerRecord>;
    if (typeof r.pid !== 'number' || !Number.isInteger(r.pid) || r.pid <= 0) return null;
    if (!Array.isArray(r.files) || !r.files.every((f) => typeof f === 'string')) return null;
    return { pid: r.pid, start: typeof r.start === 'string' ? r.start : null, files: r.files };
  } catch {
    return null;
  }
}

/**
 * Removes the shared-memory files that ledgers in `dir` record for processes that are gone.
 * Returns what it removed, with sizes, for the log.
 */
export function removeStaleShm(dir: string = stateDir()): Array<{ file: string; bytes: number; pid: number }> {
  const removed: Array<{ file: string; bytes: number; pid: number }> = [];
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  const uid = process.getuid?.();
  for (const name of names) {
    const m = RECORD.exec(name);
    if (!m) continue;
    const path = join(dir, name);
    let record: LedgerRecord | null;
    try {
      record = parseRecord(readFileSync(path, 'utf8'));
    } catch {
      continue;
    }
    if (!record || record.pid !== Number(m[1])) continue;
    if (record.pid === process.pid) continue;
    const start = processStart(record.pid);
    // Alive, and the same process (not a reused pid): its files are in use.
    if (start !== null && (record.start === null || start === record.start)) continue;
    for (const file of record.files) {
      if (!UCX_POSIX_FILE.test(file) || !file.startsWith(`${SHM_DIR}/`)) continue;
      try {
        const st = lstatSync(file);
        if (!st.isFile() || (uid !== undefined && st.uid !== uid)) continue;
        unlinkSync(file);
        removed.push({ file, bytes: st.blocks * 512, pid: record.pid });
      } catch {
        // gone already
      }
    }
    try {
      unlinkSync(path);
    } catch {
      // another start removed it first
    }
  }
  return removed;
}
