/**
 * ObjectStore: the object-store core every face of peercache stands on. A node publishes named
 * objects from any memory into its published pool and the directory, looks names up, and READs
 * objects one-sidedly from peers into memory it names (a registered region). Every READ is
 * validated against the slot generation (see published-pool.ts), so a reader never gets another
 * object's bytes: at worst a miss.
 *
 * The sidecar (`peercache node`) serves SGLang's ranks with it directly: the adapter names the
 * objects. PeerCacheStore (peer-cache-store.ts) is the HiCache facade over it: page keys, layouts,
 * a host pool and SGLang's v1 calls.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { openTransport } from '../transport/index.js';
import { DEFAULT_BATCH_TIMEOUT_MS, type AllocateProgress, type LocalRegion, type Protocol, type TransportNode, type WindowedMapping } from '../transport/types.js';
import { checkSegmentFits } from '../transport/segment-budget.js';
import { removeStaleShm } from '../transport/shm-ledger.js';
import { silentLogger, type Logger } from '../log.js';
import { assertKeys, DEFAULT_MAX_BYTES, StoreConfigError, validateConfig, type PeerCacheStoreConfig } from './config.js';
import { isRedisUrl, openConfiguredDirectory } from './directory/url.js';
import { PageReader } from './page-reader.js';
import { PeerSet, POOL_DATA_BASE, POOL_STRIDE } from './peers.js';
import { PublishedPool, type SlotEntry } from './published-pool.js';
import { newStoreStats, type StoreStats } from './stats.js';
import type { Directory, DirectoryEntry, NodeInfo, RemovalEntry } from './types.js';
import { InvalidArgumentError, PeercacheError } from '../errors.js';

export { StoreConfigError } from './config.js';
export type { StoreStats } from './stats.js';

/** What the core takes: the store's options less the HiCache facade's (host pool, ranks). */
export type ObjectStoreConfig = Omit<PeerCacheStoreConfig, 'hostPool' | 'tpRank' | 'ppRank' | 'ppSize'>;

/** What a store is built from, once open() has opened them. */
type StoreParts = [config: PeerCacheStoreConfig, transport: TransportNode, directory: Directory, closeDirectory: () => Promise<void>, logger: Logger];

/** How open() reports and stops a slow start (a big published pool takes seconds per GiB on shm). */
export interface StoreStartup {
  /** Aborting it stops an allocation in progress (its shared memory is unlinked); open() rejects with ERR_ABORTED. */
  signal?: AbortSignal;
  onProgress?: (progress: AllocateProgress) => void;
}

export class ObjectStore {
  readonly nodeId: string;
  readonly protocol: Protocol;
  readonly stats: StoreStats = newStoreStats();
  protected pool: PublishedPool | null = null;
  protected readonly reader: PageReader;
  private readonly peers: PeerSet;
  protected closed = false;
  private lastYield = performance.now();
  private unsubscribe: () => void = () => {};
  private readonly directory: Directory;
  private readonly untrackMetrics: () => void;

  protected constructor(
    protected readonly config: PeerCacheStoreConfig,
    readonly transport: TransportNode,
    directory: Directory,
    private readonly closeDirectory: () => Promise<void>,
    protected readonly logger: Logger,
  ) {
    this.nodeId = config.nodeId ?? `${config.localHost ?? hostname()}-${randomBytes(4).toString('hex')}`;
    this.protocol = config.protocol;
    // Metrics: the directory is timed; every other counter is read from `stats` when scraped.
    this.directory = config.metrics ? config.metrics.instrumentDirectory(directory, this.nodeId) : directory;
    this.untrackMetrics = config.metrics ? config.metrics.track(this) : () => {};
    this.peers = new PeerSet(transport, this.directory, logger);
    this.reader = new PageReader({
      nodeId: this.nodeId,
      transport,
      directory: this.directory,
      peers: this.peers,
      stats: this.stats,
      logger,
      cacheEntries: config.locationCache === false ? 0 : (config.locationCacheEntries ?? 65_536),
      timeoutMs: config.timeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS,
      localPool: () => this.pool,
    });
  }

  /** Opens the data plane, the published pool and the directory, and joins the cluster. */
  static async open(config: ObjectStoreConfig, startup: StoreStartup = {}): Promise<ObjectStore> {
    return ObjectStore.openAs((...parts) => new ObjectStore(...parts), config, startup);
  }

  /**
   * Opens a store that `make` builds (this core, or a facade over it): the data plane, the
   * directory, then the store's own preparation (prepare()), the published pool, and the join.
   */
  protected static async openAs<T extends ObjectStore>(make: (...parts: StoreParts) => T, config: PeerCacheStoreConfig, startup: StoreStartup = {}): Promise<T> {
    validateConfig(config);
    const logger = config.logger ?? silentLogger;
    const hostBytes = config.hostPool?.byteLength ?? 0;
    const segment = config.globalSegmentBytes ?? 0;
    const maxBytes = config.maxBytes ?? DEFAULT_MAX_BYTES;
    if (hostBytes + segment > maxBytes) {
      throw new StoreConfigError(`host pool (${hostBytes} B) + published pool (${segment} B) exceed maxBytes (${maxBytes} B): lower them or raise maxBytes`);
    }
    if (segment > 0) {
      // A killed node's shared memory first (it counts against what is free), then the budget.
      if (config.protocol !== 'tcp') {
        for (const r of removeStaleShm()) logger.warn(`removed ${r.file} (${r.bytes} B of shared memory) left by peercache process ${r.pid}, which is gone`);
      }
      checkSegmentFits(segment, config.protocol);
    }
    const transport = await openTransport({
      protocol: config.protocol,
      devices: config.devices ?? (config.deviceName ? [config.deviceName] : []),
      ibPort: config.ibPort,
      gidIndex: config.gidIndex,
      host: config.localHost,
      timeoutMs: config.timeoutMs,
      tcpTls: config.tcpTls,
      logger,
    });
    let directory: Directory;
    let closeDirectory: () => Promise<void>;
    try {
      if (config.directory) {
        directory = config.directory;
        closeDirectory = () => directory.close();
      } else {
        const opened = await openConfiguredDirectory({
          directory: config.directoryUrl,
          discoveryAddr: config.discoveryAddr,
          authToken: config.authToken,
          tls: config.directoryTls,
          insecure: config.insecure,
          logger,
          connectTimeoutMs: config.directoryTimeoutMs,
          requestTimeoutMs: config.directoryTimeoutMs,
          server: config.directoryServer,
          replica: config.directoryReplica === true ? {} : config.directoryReplica || undefined,
        });
        directory = opened.directory;
        // Closing the directory also closes an embedded server this process hosts.
        closeDirectory = () => opened.directory.close();
      }
    } catch (err) {
      await transport.close();
      throw err;
    }
    const store = make(config, transport, directory, closeDirectory, logger);
    try {
      store.prepare();
      if (segment > 0) await store.allocatePublishedPool(startup);
      await store.join();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** A facade's own set-up, after the data plane and directory are open and before the join. */
  protected prepare(): void {}

  /** The published pool's slot size: `slotBytes` here; a facade may derive it (a host pool's page). */
  protected publishedSlotBytes(): number | undefined {
    return this.config.slotBytes;
  }

  /** What this node tells others about its objects' layout (a facade's host pool). */
  protected layoutAttributes(): { layout: string } {
    return { layout: '' };
  }

  /** The published pool at open: off the event loop, with progress, interruptible. */
  private async allocatePublishedPool(startup: StoreStartup): Promise<void> {
    if (this.pool) return;
    const slotBytes = this.publishedSlotBytes();
    if (!slotBytes) return; // created when the host pool is registered
    const region = await this.transport.allocateAsync(this.config.globalSegmentBytes!, { signal: startup.signal, onProgress: startup.onProgress });
    this.pool = new PublishedPool(region, slotBytes);
  }

  protected ensurePublishedPool(): void {
    if (this.pool) return;
    const slotBytes = this.publishedSlotBytes();
    if (!slotBytes) return; // created when the host pool is registered
    checkSegmentFits(this.config.globalSegmentBytes!, this.protocol);
    const region = this.transport.allocate(this.config.globalSegmentBytes!);
    this.pool = new PublishedPool(region, slotBytes);
  }

  private nodeInfo(): NodeInfo {
    return {
      nodeId: this.nodeId,
      protocol: this.protocol,
      host: this.config.localHost ?? '127.0.0.1',
      transportAddress: Buffer.from(this.transport.address()).toString('base64'),
      regionDescriptor: this.pool ? Buffer.from(this.pool.region.descriptor()).toString('base64') : null,
      attributes: {
        ...(this.config.attributes ?? {}),
        ...this.layoutAttributes(),
        pageBytes: this.pool?.slotDataBytes ?? 0,
        // Readers find a slot's header from its data offset with these (published-pool.ts).
        [POOL_DATA_BASE]: this.pool?.dataBase ?? 0,
        [POOL_STRIDE]: this.pool?.slotStride ?? 0,
      },
    };
  }

  private async join(): Promise<void> {
    this.unsubscribe = this.directory.subscribe((event) => {
      if (event.type === 'node-left') {
        this.reader.forgetNode(event.nodeId);
        this.peers.drop(event.nodeId, event.reason);
      }
      // A node that left or joined again is another process: its past failures do not count.
      this.peers.forget(event.type === 'node-left' ? event.nodeId : event.node.nodeId);
    });
    await this.directory.join(this.nodeInfo());
  }

  /** The members of the cluster this node sees. */
  members(): Promise<NodeInfo[]> {
    return this.directory.members();
  }

  /** Transports that actually carried data (UCX lanes), for reports. */
  lanes(): string[] {
    return this.peers.lanes();
  }

  get publishedSlots(): number {
    return this.pool?.slots ?? 0;
  }

  get publishedCount(): number {
    return this.pool?.size ?? 0;
  }

  /**
   * On shm, READs complete in place and cached lookups need no I/O, so a tight loop of calls would
   * never give the event loop a turn: membership events (a node left) would never arrive. Every
   * few milliseconds a call yields once (a promise to await), otherwise nothing to wait for.
   */
  protected yieldSometimes(): Promise<void> | undefined {
    const now = performance.now();
    if (now - this.lastYield < 5) return undefined;
    this.lastYield = now;
    return new Promise<void>((resolve) => setImmediate(resolve));
  }

  // ------------------------------------------------------------------ publish

  /** Publishes named objects from `sources` (write-once: a name already published is a success). One bool per object. */
  protected async publishObjects(objects: readonly string[], sources: readonly Uint8Array[]): Promise<boolean[]> {
    const pool = this.pool!;
    const ok = new Array<boolean>(objects.length).fill(false);
    const fresh = new Map<string, { index: number[]; entry: SlotEntry }>();
    const evicted = new Map<string, SlotEntry>();
    for (let j = 0; j < objects.length; j++) {
      const key = objects[j];
      const existing = pool.get(key);
      if (existing && !fresh.has(key)) {
        // Write-once, like SGLang's backends: what this node already publishes is a success.
        pool.touch(existing);
        ok[j] = true;
        continue;
      }
      if (fresh.has(key)) {
        fresh.get(key)!.index.push(j);
        continue;
      }
      const { entry, evicted: out } = pool.publish(key, sources[j]);
      for (const e of out) {
        const wasFresh = fresh.get(e.key);
        if (wasFresh && wasFresh.entry.generation === e.generation) {
          // Evicted by a later object of this same batch: never announce it.
          fresh.delete(e.key);
        } else {
          evicted.set(`${e.key}\0${e.generation}`, e);
        }
      }
      this.stats.evictions += out.length;
      fresh.set(key, { index: [j], entry });
    }
    const entries: DirectoryEntry[] = [...fresh.values()].map(({ entry }) => ({
      key: entry.key,
      location: { nodeId: this.nodeId, offset: pool.dataOffset(entry.slot), length: entry.length, generation: entry.generation },
    }));
    const removals: RemovalEntry[] = [...evicted.values()].map((e) => ({ key: e.key, nodeId: this.nodeId, generation: e.generation }));
    try {
      // Both requests go out back to back: one round trip.
      const [applied] = await Promise.all([
        entries.length ? this.directory.publish(entries) : Promise.resolve([] as boolean[]),
        removals.length ? this.directory.remove(removals) : Promise.resolve(),
      ]);
      let n = 0;
      for (const { index, entry } of fresh.values()) {
        if (!applied[n++]) {
          // Another node already publishes this key: the key exists, our copy is not needed.
          pool.remove(entry.key);
        } else {
          this.stats.objectsPublished++;
          this.stats.bytesPublished += entry.length;
        }
        for (const j of index) ok[j] = true;
      }
    } catch (err) {
      this.stats.directoryErrors++;
      this.logger.error(`publish: directory update failed: ${(err as Error).message}`);
      for (const { entry } of fresh.values()) pool.remove(entry.key);
    }
    return ok;
  }

  // ------------------------------------------------------------------ objects in foreign memory

  /**
   * Registers memory this node does not own (another process's host pool, mapped by the sidecar)
   * as a destination of READs; free() the region when that process goes away.
   */
  registerRegion(view: Uint8Array | WindowedMapping): LocalRegion {
    if (this.closed) throw new PeercacheError('ERR_CLOSED', 'registerRegion: the store is closed');
    return this.transport.register(view, { mayShrink: true });
  }

  /**
   * READs whole objects (already named: page key + component suffix) into `region`: object j into
   * `offsets[j]`, a hit only if it was published with exactly `lengths[j]` bytes and its slot still
   * holds it (the generation check every READ gets). One bool per object. Ranges must lie in
   * the region (checked here). `timeoutMs` (a caller's deadline, e.g. an SGLang rank's) can only
   * shorten the store's own `timeoutMs`: the whole call ends within the smaller one, its READs
   * done or cut off (nothing lands in the region later), unreachable objects as misses.
   */
  async getObjectsInto(objects: readonly string[], region: LocalRegion, offsets: ArrayLike<number>, lengths: ArrayLike<number>, timeoutMs?: number): Promise<boolean[]> {
    assertKeys(objects, 'getObjectsInto');
    if (this.closed) throw new PeercacheError('ERR_CLOSED', 'getObjectsInto: the store is closed');
    if (offsets.length !== objects.length || lengths.length !== objects.length) throw new InvalidArgumentError('getObjectsInto: one offset and one length per object');
    for (let j = 0; j < objects.length; j++) {
      const o = offsets[j];
      const l = lengths[j];
      if (!Number.isSafeInteger(o) || !Number.isSafeInteger(l) || o < 0 || l <= 0 || o + l > region.length) {
        throw new InvalidArgumentError(`getObjectsInto: object ${j} (offset ${o}, length ${l}) is outside the region of ${region.length} bytes`);
      }
    }
    if (objects.length === 0) return [];
    const yielded = this.yieldSometimes();
    if (yielded) await yielded;
    if (timeoutMs !== undefined && !(timeoutMs > 0)) throw new InvalidArgumentError('getObjectsInto: timeoutMs must be > 0');
    const own = this.config.timeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS;
    const ok = await this.reader.getObjects(objects, region, offsets, lengths, timeoutMs === undefined ? own : Math.min(own, timeoutMs));
    const out = new Array<boolean>(objects.length);
    let hits = 0;
    for (let j = 0; j < objects.length; j++) {
      out[j] = ok[j] === 1;
      if (out[j]) {
        hits++;
        this.stats.bytesRead += lengths[j];
      }
    }
    this.stats.getPages += objects.length;
    this.stats.getHits += hits;
    return out;
  }

  /**
   * Publishes whole objects (already named) from views of any memory: the one copy into this
   * node's published pool. Write-once: an object this node or another already publishes is a
   * success. One bool per object.
   */
  async setObjectsFrom(objects: readonly string[], sources: readonly Uint8Array[]): Promise<boolean[]> {
    assertKeys(objects, 'setObjectsFrom');
    if (this.closed) throw new PeercacheError('ERR_CLOSED', 'setObjectsFrom: the store is closed');
    if (!Array.isArray(sources) || sources.length !== objects.length) throw new InvalidArgumentError('setObjectsFrom: one source view per object');
    if (!this.pool) throw new StoreConfigError('setObjectsFrom: this node has no published pool (globalSegmentBytes is 0)');
    for (let j = 0; j < sources.length; j++) {
      if (sources[j].byteLength > this.pool.slotDataBytes) throw new InvalidArgumentError(`setObjectsFrom: object ${j} is ${sources[j].byteLength} bytes; slots hold at most ${this.pool.slotDataBytes}`);
    }
    if (objects.length === 0) return [];
    const yielded = this.yieldSometimes();
    if (yielded) await yielded;
    const ok = await this.publishObjects(objects, sources);
    this.stats.setPages += objects.length;
    return ok;
  }

  /**
   * Which named objects the directory knows on nodes this one can reach (one round trip; a
   * directory that cannot answer gives misses). `timeoutMs`: the caller's deadline; past it, the
   * answer is all misses (the directory's own deadline applies too).
   */
  async existsObjects(objects: readonly string[], timeoutMs?: number): Promise<boolean[]> {
    assertKeys(objects, 'existsObjects');
    if (objects.length === 0) return [];
    return (await this.reader.lookupOrMiss(objects, 'existsObjects', timeoutMs)).map((l) => l !== null);
  }

  /** Bytes of the largest object the published pool holds (0: no published pool). */
  get slotBytes(): number {
    return this.pool?.slotDataBytes ?? 0;
  }

  // ------------------------------------------------------------------ legacy API (raw keys)

  /** Legacy: publishes values under raw keys (no page/component suffix). True if every key was stored. */
  async batchSet(keys: readonly string[], values: readonly Uint8Array[]): Promise<boolean> {
    assertKeys(keys, 'batchSet');
    if (!Array.isArray(values) || values.length !== keys.length) throw new InvalidArgumentError('batchSet: values must be an array with one Uint8Array per key');
    if (this.closed) throw new PeercacheError('ERR_CLOSED', 'batchSet: the store is closed');
    if (!this.pool) throw new StoreConfigError('batchSet: this node has no published pool (globalSegmentBytes is 0)');
    if (keys.length === 0) return true;
    const ok = await this.publishObjects(keys, values);
    return ok.every(Boolean);
  }

  async set(key: string, value: Uint8Array): Promise<boolean> {
    return this.batchSet([key], [value]);
  }

  /** Legacy: reads raw keys into `targets`; each element is the target on a hit, else null. */
  async batchGet(keys: readonly string[], targets: readonly Uint8Array[]): Promise<(Uint8Array | null)[]> {
    assertKeys(keys, 'batchGet');
    if (!Array.isArray(targets) || targets.length !== keys.length) throw new InvalidArgumentError('batchGet: targets must be an array with one Uint8Array per key');
    if (this.closed) throw new PeercacheError('ERR_CLOSED', 'batchGet: the store is closed');
    if (keys.length === 0) return [];
    return this.reader.getRaw(keys, targets);
  }

  async get(key: string, target: Uint8Array): Promise<Uint8Array | null> {
    return (await this.batchGet([key], [target]))[0];
  }

  /** Legacy: is this raw key present? */
  async exists(key: string): Promise<boolean> {
    assertKeys([key], 'exists');
    return (await this.reader.lookupOrMiss([key], 'exists'))[0] !== null;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Unpublishes everything this node published (directory entries removed, slots invalidated). */
  async clear(): Promise<void> {
    this.reader.forgetAll();
    if (!this.pool) return;
    const all = this.pool.clear();
    if (all.length) await this.directory.remove(all.map((e) => ({ key: e.key, nodeId: this.nodeId, generation: e.generation })));
  }

  /** A facade's own regions, freed at close() before the data plane closes. */
  protected freeRegions(): void {}

  /** Leaves the cluster (this node's keys become misses elsewhere) and frees everything. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.untrackMetrics();
    this.peers.closeAll();
    try {
      await this.closeDirectory();
    } catch (err) {
      this.logger.debug(`directory close: ${(err as Error).message}`);
    }
    this.reader.close();
    this.freeRegions();
    this.pool?.region.free();
    await this.transport.close();
  }
}
