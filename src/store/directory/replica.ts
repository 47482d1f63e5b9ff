/**
 * A node's local replica of the embedded directory's key locations, so `batch_exists` (and the
 * lookups of a get) need no round trip. The directory streams every entry when the replica
 * starts (`watch`), then pushes every change on the same connection, in order, before it answers
 * the request that made it.
 *
 * Staleness bound. Frames on one connection arrive in the order the server wrote them, so when
 * the answer to a request sent at local time S arrives, the replica holds every change the
 * directory applied before S. `syncedAt` is the latest such S; the replica answers only while
 * `now - syncedAt <= maxStalenessMs` (an idle client pings every maxStalenessMs / 4 to keep it so),
 * else the caller does a round trip. So a change older than maxStalenessMs is always seen; a newer
 * one may not be: a key another node just published may read absent (a miss), one just removed
 * (or on a node that just left) may read present — and its READ is validated against the slot
 * header, so that costs a miss, never wrong bytes. A lost connection drops the replica at once.
 *
 * Memory: one Map entry per key in the whole directory (measured ~ 200 bytes per 64-character
 * key, bench-results/exists-replica.md), bounded by `maxEntries`: a directory larger than that
 * is refused at the start, and a replica that grows past it is dropped (the node falls back to
 * round trips and says so once). Off by default (`directoryReplica`): every publish and remove
 * is then pushed to every replicating node, which a large fleet may not want.
 */
import type { Location } from '../types.js';
import type { KeyChanges } from './messages.js';
import { InvalidArgumentError } from '../../errors.js';

export interface ReplicaOptions {
  /** Entries the replica may hold (default 1 048 576); past it the replica is dropped. */
  maxEntries?: number;
  /** Oldest proof of freshness the replica may answer on (default 1000 ms). */
  maxStalenessMs?: number;
}

export const REPLICA_DEFAULTS = { maxEntries: 1 << 20, maxStalenessMs: 1000 } as const;

export type ReplicaState = 'syncing' | 'live' | 'dropped';

export class KeyReplica {
  readonly maxEntries: number;
  readonly maxStalenessMs: number;
  private readonly entries = new Map<string, Location>();
  private stateNow: ReplicaState = 'syncing';
  /** Why the replica was dropped (null while it is kept). */
  dropReason: string | null = null;
  /** performance.now() at the send of the latest request whose answer arrived after the replica was live. */
  private syncedAt = -Infinity;

  constructor(options: ReplicaOptions = {}) {
    this.maxEntries = options.maxEntries ?? REPLICA_DEFAULTS.maxEntries;
    this.maxStalenessMs = options.maxStalenessMs ?? REPLICA_DEFAULTS.maxStalenessMs;
    if (!Number.isSafeInteger(this.maxEntries) || this.maxEntries < 1) throw new InvalidArgumentError(`replica maxEntries must be a positive integer, got ${this.maxEntries}`);
    if (!(Number.isFinite(this.maxStalenessMs) && this.maxStalenessMs > 0)) throw new InvalidArgumentError(`replica maxStalenessMs must be > 0 ms, got ${this.maxStalenessMs}`);
  }

  get state(): ReplicaState {
    return this.stateNow;
  }

  get size(): number {
    return this.entries.size;
  }

  /** Age in ms of the replica's latest proof of freshness (Infinity before it is live). */
  age(now = performance.now()): number {
    return now - this.syncedAt;
  }

  /** Applies pushed changes in arrival order; false when the replica outgrew its bound (the owner then drops it). */
  apply(changes: KeyChanges): boolean {
    if (this.stateNow === 'dropped') return false;
    const { keys, locations } = changes;
    for (let i = 0; i < keys.length; i++) {
      const loc = locations[i];
      if (loc === null) this.entries.delete(keys[i]);
      else this.entries.set(keys[i], loc);
    }
    return this.entries.size <= this.maxEntries;
  }

  /** A node left: its entries are gone from the directory (pushed as one event, not per key). */
  dropNode(nodeId: string): void {
    for (const [key, loc] of this.entries) if (loc.nodeId === nodeId) this.entries.delete(key);
  }

  /** The snapshot is complete (the watch was answered; `sentAt` is when it was asked). */
  markLive(sentAt: number): void {
    if (this.stateNow !== 'syncing') return;
    this.stateNow = 'live';
    this.syncedAt = sentAt;
  }

  /** An answer to a request sent at `sentAt` arrived: every change before it is applied. */
  synced(sentAt: number): void {
    if (this.stateNow === 'live' && sentAt > this.syncedAt) this.syncedAt = sentAt;
  }

  drop(reason: string): void {
    if (this.stateNow === 'dropped') return;
    this.stateNow = 'dropped';
    this.dropReason = reason;
    this.entries.clear();
  }

  /** Locations from the replica, or null when it is not live or older than its bound. */
  lookup(keys: readonly string[], now = performance.now()): (Location | null)[] | null {
    if (this.stateNow !== 'live' || now - this.syncedAt > this.maxStalenessMs) return null;
    const out = new Array<Location | null>(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = this.entries.get(keys[i]) ?? null;
    return out;
  }
}
