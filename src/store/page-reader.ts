/**
 * The read path of PeerCacheStore: key locations (looked up, cached), READs from peers into the
 * host pool with every object validated against its slot header, and the fast path of the steady
 * state (every location cached, one peer): one op list in reused buffers, one native call.
 */
import { OpList } from '../transport/op-list.js';
import type { LocalRegion, TransportNode } from '../transport/types.js';
import type { Logger } from '../log.js';
import type { HostKVPool } from './host-pool.js';
import { LocationCache, type CachedLocation } from './location-cache.js';
import type { Peer, PeerSet } from './peers.js';
import { SLOT_CHECK_BYTES, headerMatches, keyTag, type PublishedPool } from './published-pool.js';
import type { StoreStats } from './stats.js';
import type { Directory, Location } from './types.js';
import { PeercacheError } from '../errors.js';

/** What the reader shares with the store that owns it. */
export interface PageReaderContext {
  nodeId: string;
  transport: TransportNode;
  directory: Directory;
  peers: PeerSet;
  stats: StoreStats;
  logger: Logger;
  /** Entries of the location cache (0: no cache). */
  cacheEntries: number;
  /** The deadline of a get that names none (the store's timeoutMs): it bounds the whole call. */
  timeoutMs: number;
  /** This node's own published pool (its keys are copied, not READ), if any. */
  localPool(): PublishedPool | null;
}

interface ReadItem {
  /** Index into the batch's object list. */
  index: number;
  key: string;
  location: Location;
  /** The key tag the slot header must carry. */
  tag: number;
  /** Where the bytes go: a local region and an offset in it. */
  local: LocalRegion;
  localOffset: number;
  fromCache: boolean;
}

/** What the read fast path reuses from call to call: the op list, the header scratch, the locals. */
interface FastReadBuffers {
  ops: OpList;
  scratch: LocalRegion;
  locals: LocalRegion[];
  locations: CachedLocation[];
  capacity: number;
}

/** Registered scratch space for slot headers fetched to validate READs; reused across calls. */
class ScratchPool {
  private readonly free: LocalRegion[] = [];
  constructor(private readonly transport: TransportNode) {}
  acquire(bytes: number): LocalRegion {
    const i = this.free.findIndex((r) => r.length >= bytes);
    if (i >= 0) return this.free.splice(i, 1)[0];
    return this.transport.register(new Uint8Array(Math.max(bytes, 64 * SLOT_CHECK_BYTES)));
  }
  release(region: LocalRegion): void {
    this.free.push(region);
  }
  freeAll(): void {
    for (const r of this.free.splice(0)) r.free();
  }
}

export class PageReader {
  private readonly cache: LocationCache;
  private readonly scratch: ScratchPool;
  private hostRegion: LocalRegion | null = null;
  /** The fast path's reused buffers; `fastInUse` while an asynchronous READ fills them (concurrent calls take the general path). */
  private fast: FastReadBuffers | null = null;
  private fastInUse = false;

  constructor(private readonly ctx: PageReaderContext) {
    this.cache = new LocationCache(ctx.cacheEntries);
    this.scratch = new ScratchPool(ctx.transport);
  }

  /** The host pool and its registration: the destination of batchGetV1. */
  setHost(_pool: HostKVPool, region: LocalRegion): void {
    this.hostRegion = region;
  }

  /** Forgets every cached location on a node (it left, or its endpoint failed). */
  forgetNode(nodeId: string): void {
    this.cache.dropNode(nodeId);
  }

  /** Forgets every cached location (this node cleared its pool). */
  forgetAll(): void {
    this.cache.clear();
  }

  /** Looks keys up in the directory (one round trip) and refreshes the location cache with the answer. */
  async lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    // A fresh replica answers here (stale by its bound at most; READs are validated anyway).
    let found = this.ctx.directory.lookupLocal?.(keys) ?? null;
    if (found !== null) {
      this.ctx.stats.replicaLookups++;
    } else {
      this.ctx.stats.directoryLookups++;
      found = await this.ctx.directory.lookup(keys);
    }
    for (let i = 0; i < keys.length; i++) {
      const loc = found[i];
      if (loc) this.cache.set(keys[i], loc);
      else this.cache.delete(keys[i]);
    }
    return found;
  }

  /**
   * A directory that cannot answer (down, reconnecting) makes misses, not errors, as on the get
   * path; so do locations on a node this reader has found unreachable (a get could only miss them).
   */
  async lookupOrMiss(keys: readonly string[], what: string, timeoutMs?: number): Promise<(Location | null)[]> {
    try {
      const found = await (timeoutMs === undefined ? this.lookup(keys) : withDeadline(this.lookup(keys), timeoutMs, 'directory lookup'));
      const { peers, nodeId } = this.ctx;
      let last = '';
      let lastReachable = true;
      for (let i = 0; i < found.length; i++) {
        const owner = found[i]?.nodeId;
        if (owner === undefined || owner === nodeId) continue;
        if (owner !== last) {
          last = owner;
          lastReachable = peers.reachable(owner);
        }
        if (!lastReachable) found[i] = null;
      }
      return found;
    } catch (err) {
      this.ctx.stats.directoryErrors++;
      this.ctx.logger.error(`${what}: directory lookup failed (the keys are misses): ${(err as Error).message}`);
      return new Array<Location | null>(keys.length).fill(null);
    }
  }

  /**
   * READs `objects` (`comps` per page) into the host pool's `pages`; one bool per page (true =
   * every component read and validated).
   */
  async getPages(objects: readonly string[], pages: readonly number[], comps: number, host: HostKVPool): Promise<boolean[]> {
    const { stats } = this.ctx;
    const keyCount = pages.length;
    const offsets = new Array<number>(objects.length);
    for (let j = 0; j < objects.length; j++) offsets[j] = host.objectOffset(pages[Math.floor(j / comps)], j % comps);
    const ok = await this.getObjects(objects, this.hostRegion!, offsets, host.pageBytes);
    const result = new Array<boolean>(keyCount);
    let hits = 0;
    for (let i = 0; i < keyCount; i++) {
      let all = true;
      for (let c = 0; c < comps; c++) if (!ok[i * comps + c]) all = false;
      result[i] = all;
      if (all) hits++;
    }
    stats.getPages += keyCount;
    stats.getHits += hits;
    stats.bytesRead += hits * comps * host.pageBytes;
    return result;
  }

  /**
   * READs `objects` into a registered local region: object j into `offsets[j]`, and only if its
   * published length is `lengths` (one for all) or `lengths[j]`; every object validated against its
   * slot header. One byte per object: 1 = read and validated. The caller checks the ranges.
   * `timeoutMs` bounds every READ of the call together (default: the transport's): a READ that
   * would end later is cut off (its endpoint closed), so nothing lands in `local` after it.
   */
  async getObjects(objects: readonly string[], local: LocalRegion, offsets: ArrayLike<number>, lengths: number | ArrayLike<number>, timeoutMs?: number): Promise<Uint8Array> {
    const { stats } = this.ctx;
    const lengthOf = typeof lengths === 'number' ? () => lengths : (j: number) => lengths[j];
    // One deadline for the whole call, whatever paths it takes (the fast path, a lookup, a
    // connect, the retry of stale entries): each gets only what is left of it.
    const budget = timeoutMs ?? this.ctx.timeoutMs;
    const end = performance.now() + budget;
    const left = (): number => end - performance.now();
    const attempt = this.tryFastGet(objects, local, offsets, lengthOf, budget);
    if (attempt === true || (attempt !== false && (await attempt))) {
      stats.cacheHits += objects.length;
      return new Uint8Array(objects.length).fill(1);
    }
    const ok = new Uint8Array(objects.length);
    const items: (ReadItem | null)[] = new Array(objects.length).fill(null);
    const missing: number[] = [];
    for (let j = 0; j < objects.length; j++) {
      const loc = this.cache.get(objects[j]);
      if (loc && loc.length === lengthOf(j)) {
        stats.cacheHits++;
        items[j] = this.readItem(j, objects[j], loc, loc.tag, local, offsets[j], true);
      } else {
        missing.push(j);
      }
    }
    if (left() <= 0) return ok;
    await this.resolveMissing(objects, missing, items, local, offsets, lengthOf, left());
    const first = left();
    if (first <= 0) return ok;
    const retry = await this.readAll(items.filter((x): x is ReadItem => x !== null), ok, first);
    const again = left();
    if (retry.length && again > 0) {
      // Stale cached locations: one directory lookup for those keys, then one more READ.
      const stale = retry.map((it) => it.index);
      for (const j of stale) items[j] = null;
      for (const it of retry) this.cache.delete(it.key);
      await this.resolveMissing(objects, stale, items, local, offsets, lengthOf, again);
      const last = left();
      if (last > 0) await this.readAll(stale.map((j) => items[j]).filter((x): x is ReadItem => x !== null), ok, last);
    }
    return ok;
  }

  /** Legacy batchGet: READs raw keys into `targets` through registered staging; each element is the target on a hit, else null. */
  async getRaw(keys: readonly string[], targets: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    const locations = await this.lookupOrMiss(keys, 'batchGet');
    const total = locations.reduce((s, l, i) => s + (l && l.length <= targets[i].byteLength ? l.length : 0), 0);
    const staging = this.scratch.acquire(Math.max(total, 1));
    const ok = new Uint8Array(keys.length);
    const items: ReadItem[] = [];
    let offset = 0;
    for (let i = 0; i < keys.length; i++) {
      const loc = locations[i];
      if (!loc || loc.length > targets[i].byteLength) continue;
      items.push({ index: i, key: keys[i], location: loc, tag: keyTag(keys[i]), local: staging, localOffset: offset, fromCache: false });
      offset += loc.length;
    }
    try {
      await this.readAll(items, ok);
      return keys.map((_, i) => {
        if (!ok[i]) return null;
        const it = items.find((x) => x.index === i)!;
        targets[i].set(staging.bytes.subarray(it.localOffset, it.localOffset + it.location.length));
        this.ctx.stats.bytesRead += it.location.length;
        return targets[i];
      });
    } finally {
      this.scratch.release(staging);
    }
  }

  /** Frees the registered scratch and fast-path buffers (the store is closing). */
  close(): void {
    this.scratch.freeAll();
    this.fast?.scratch.free();
    this.fast = null;
  }

  /**
   * The steady-state read: every object's location is cached and on one remote peer. One op list
   * (data READs, a fence, header READs) built straight into reused buffers, one native call, one
   * validation loop: no per-object allocation. Returns false when it does not apply or any object
   * failed validation; the general path then does the whole batch (and its retries) again.
   */
  private tryFastGet(objects: readonly string[], local: LocalRegion, offsets: ArrayLike<number>, lengthOf: (j: number) => number, timeoutMs?: number): boolean | Promise<boolean> {
    if (this.fastInUse || this.cache.maxEntries <= 0) return false;
    const n = objects.length;
    const first = this.cache.get(objects[0]);
    if (!first || first.nodeId === this.ctx.nodeId) return false;
    const peer = this.ctx.peers.connected(first.nodeId);
    if (!peer) return false;
    const f = this.fastBuffers(n);
    const { ops, locations } = f;
    f.locals[0] = local;
    for (let j = 0; j < n; j++) {
      const loc = j === 0 ? first : this.cache.get(objects[j]);
      const length = lengthOf(j);
      if (!loc || loc.nodeId !== first.nodeId || loc.length !== length) return false;
      const header = peer.headerOffset(loc.offset);
      if (header < 0) return false;
      locations[j] = loc;
      // The data into the caller's page (local 0), and after the fence its slot header (local 1).
      ops.set(j, loc.offset, 0, offsets[j], length);
      ops.set(n + j, header, 1, j * SLOT_CHECK_BYTES, SLOT_CHECK_BYTES);
    }
    const endpoint = peer.endpoint;
    if (endpoint.readInline) {
      // Where a READ completes inside the call (shm), the inline form skips the Promise round trips.
      try {
        endpoint.readInline(peer.remote, f.locals, ops.ops, 2 * n, { fenceAt: n, timeoutMs });
      } catch (err) {
        if (endpoint.failure !== null) this.peerFailed(peer, err as Error);
        return false; // the general path reads again (what is left of the deadline)
      }
      return this.fastValidate(f, n);
    }
    this.fastInUse = true;
    return endpoint.read(peer.remote, f.locals, ops.ops, 2 * n, { fenceAt: n, timeoutMs }).then(
      () => {
        this.fastInUse = false;
        return this.fastValidate(f, n);
      },
      (err: Error) => {
        this.fastInUse = false;
        if (endpoint.failure !== null) this.peerFailed(peer, err);
        return false;
      },
    );
  }

  private fastValidate(f: FastReadBuffers, n: number): boolean {
    const { locations } = f;
    const scratch = f.scratch.bytes;
    for (let j = 0; j < n; j++) {
      const loc = locations[j];
      if (!headerMatches(scratch, j * SLOT_CHECK_BYTES, loc.generation, loc.tag, loc.length)) return false;
    }
    return true;
  }

  private fastBuffers(objects: number): FastReadBuffers {
    if (this.fast && this.fast.capacity >= objects) return this.fast;
    this.fast?.scratch.free();
    const capacity = Math.max(objects, 64);
    const scratch = this.ctx.transport.register(new Uint8Array(capacity * SLOT_CHECK_BYTES));
    this.fast = {
      ops: new OpList(2 * capacity),
      scratch,
      locals: [scratch, scratch], // [0] is set per call: the destination region
      locations: new Array<CachedLocation>(capacity),
      capacity,
    };
    return this.fast;
  }

  private readItem(index: number, key: string, location: Location, tag: number, local: LocalRegion, localOffset: number, fromCache: boolean): ReadItem {
    return { index, key, location, tag, local, localOffset, fromCache };
  }

  private async resolveMissing(
    objects: readonly string[],
    missing: number[],
    items: (ReadItem | null)[],
    local: LocalRegion,
    offsets: ArrayLike<number>,
    lengthOf: (j: number) => number,
    timeoutMs: number,
  ): Promise<void> {
    if (!missing.length) return;
    let found: (Location | null)[];
    try {
      found = await withDeadline(this.lookup(missing.map((j) => objects[j])), timeoutMs, 'directory lookup');
    } catch (err) {
      this.ctx.stats.directoryErrors++;
      this.ctx.logger.error(`batchGetV1: directory lookup failed: ${(err as Error).message}`);
      return;
    }
    for (let m = 0; m < missing.length; m++) {
      const loc = found[m];
      const j = missing[m];
      if (loc && loc.length === lengthOf(j)) {
        items[j] = this.readItem(j, objects[j], loc, keyTag(objects[j]), local, offsets[j], false);
      }
    }
  }

  /**
   * READs every item (grouped by owner, one batch per owner, owners in parallel) and validates
   * each against its slot header. Marks `ok`; returns the cached items that failed validation.
   */
  private async readAll(items: ReadItem[], ok: Uint8Array, timeoutMs?: number): Promise<ReadItem[]> {
    const byNode = new Map<string, ReadItem[]>();
    for (const it of items) {
      const list = byNode.get(it.location.nodeId);
      if (list) list.push(it);
      else byNode.set(it.location.nodeId, [it]);
    }
    const stale: ReadItem[] = [];
    await Promise.all(
      [...byNode].map(async ([nodeId, list]) => {
        if (nodeId === this.ctx.nodeId) {
          const pool = this.ctx.localPool();
          for (const it of list) {
            if (pool?.copyOut(it.key, it.location.generation, it.local.view(it.localOffset, it.location.length), 0)) ok[it.index] = 1;
            else this.noteStale(it, stale);
          }
          return;
        }
        const peer = await this.ctx.peers.resolve(nodeId, timeoutMs);
        if (!peer) {
          this.cache.dropNode(nodeId);
          return;
        }
        await this.readFromPeer(peer, list, ok, stale, timeoutMs);
      }),
    );
    return stale;
  }

  /**
   * A READ failed with its endpoint (timed out: the peer is silent; or its connection was lost):
   * the node is unreachable from here for a back-off period (exists stops reporting its pages,
   * gets miss them at once) and its cached locations are dropped.
   */
  private peerFailed(peer: Peer, err: Error): void {
    this.ctx.stats.readErrors++;
    this.cache.dropNode(peer.nodeId);
    this.ctx.peers.unreachable(peer, `a READ failed (${err.message})`);
  }

  private noteStale(it: ReadItem, stale: ReadItem[]): void {
    this.ctx.stats.staleReads++;
    if (it.fromCache) stale.push(it);
    else this.cache.delete(it.key);
  }

  private async readFromPeer(peer: Peer, list: ReadItem[], ok: Uint8Array, stale: ReadItem[], timeoutMs?: number): Promise<void> {
    // A location that is no slot of this peer's pool (a corrupt or foreign entry) is a miss.
    const headers = list.map((it) => peer.headerOffset(it.location.offset));
    if (headers.includes(-1)) {
      const keep = list.filter((it, i) => {
        if (headers[i] >= 0) return true;
        this.noteStale(it, stale);
        return false;
      });
      if (!keep.length) return;
      return this.readFromPeer(peer, keep, ok, stale, timeoutMs);
    }
    const n = list.length;
    const scratch = this.scratch.acquire(n * SLOT_CHECK_BYTES);
    const locals: LocalRegion[] = [];
    const localIndex = new Map<LocalRegion, number>();
    const ops = new OpList(2 * n);
    for (let i = 0; i < n; i++) {
      const it = list[i];
      let li = localIndex.get(it.local);
      if (li === undefined) {
        li = locals.push(it.local) - 1;
        localIndex.set(it.local, li);
      }
      ops.push(it.location.offset, li, it.localOffset, it.location.length);
    }
    const scratchIndex = locals.push(scratch) - 1;
    // After the fence: the header of every slot, read once its data has been read.
    for (let i = 0; i < n; i++) ops.push(headers[i], scratchIndex, i * SLOT_CHECK_BYTES, SLOT_CHECK_BYTES);
    const { stats, logger } = this.ctx;
    try {
      await peer.endpoint.read(peer.remote, locals, ops.ops, ops.count, { fenceAt: n, timeoutMs });
      for (let i = 0; i < n; i++) {
        const it = list[i];
        if (headerMatches(scratch.bytes, i * SLOT_CHECK_BYTES, it.location.generation, it.tag, it.location.length)) ok[it.index] = 1;
        else this.noteStale(it, stale);
      }
    } catch (err) {
      if (peer.endpoint.failure !== null) this.peerFailed(peer, err as Error);
      else {
        stats.readErrors++;
        logger.warn(`READ of ${n} objects from ${peer.nodeId} failed (they are misses): ${(err as Error).message}`);
      }
    } finally {
      this.scratch.release(scratch);
    }
  }
}

/** `p`, or a rejection naming `what` once `timeoutMs` has passed (the caller's deadline). */
function withDeadline<T>(p: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new PeercacheError('ERR_TIMEOUT', `${what}: the call's deadline passed (${Math.round(timeoutMs)} ms left when it started)`)), Math.max(0, timeoutMs));
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(err as Error);
      },
    );
  });
}
