/**
 * PeerCacheStore: SGLang's HiCacheStorage v1 contract over the one-sided data plane.
 *
 * A prefill node `batchSetV1`s pages from its host pool into its published pool and the
 * directory; a decode node `batchExists` a prefix and `batchGetV1`s pages with a one-sided READ
 * straight into its host pool. Every READ is validated against the slot generation (see
 * published-pool.ts), so a reader never gets another key's bytes: at worst a miss.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { openTransport, UcxEndpoint } from '../transport/index.js';
import { OP_FIELDS, type LocalRegion, type Protocol, type TransportNode } from '../transport/types.js';
import { silentLogger, type Logger } from '../log.js';
import { isRedisUrl, openConfiguredDirectory, parseDirectoryChoice } from './directory-url.js';
import { HostKVPool, type HostIndices } from './host-pool.js';
import { componentSuffixes, ObjectKeyNames } from './keys.js';
import { LocationCache, type CachedLocation } from './location-cache.js';
import { PeerSet, type Peer } from './peers.js';
import { PublishedPool, SLOT_CHECK_BYTES, headerMatches, keyTag, type SlotEntry } from './published-pool.js';
import { POOL_DATA_BASE, POOL_STRIDE } from './peers.js';
import type { Directory, DirectoryEntry, Location, NodeInfo, RemovalEntry } from './types.js';
import type { StoreMetricsSink } from './metrics.js';
import type { LogHook } from './wire.js';

export interface PeerCacheStoreConfig {
  /** host:port of the embedded discovery/directory service; the first node there serves it. Not needed with a Redis directoryUrl. */
  discoveryAddr?: string;
  /**
   * Which directory: 'embedded' (default, at discoveryAddr) or a Redis/Valkey URL,
   * redis://[user:password@]host:port[/db][?prefix=&ttl_ms=&poll_ms=] or rediss://… (see directory-url.ts).
   */
  directoryUrl?: string;
  protocol: Protocol;
  /** The host this node advertises and binds its tcp transport to (default 127.0.0.1). */
  localHost?: string;
  /** RDMA device, e.g. mlx5_0. */
  deviceName?: string;
  /** RDMA devices (rails); overrides deviceName. */
  devices?: readonly string[];
  ibPort?: number;
  gidIndex?: number;
  /** The host KV pool: the source of sets and the destination of gets (can also be registered later). */
  hostPool?: HostKVPool;
  /** Bytes of the published pool this node serves reads from; 0 = this node publishes nothing. */
  globalSegmentBytes?: number;
  /** Bytes per published slot when no host pool gives the page size (legacy set/get only). */
  slotBytes?: number;
  /** Guard: host pool + published pool may not exceed this (default 8 GiB). */
  maxBytes?: number;
  nodeId?: string;
  authToken?: string;
  tpRank?: number;
  ppRank?: number;
  ppSize?: number;
  /** Cache key locations for batchGetV1 (default on; safe: READs are validated). */
  locationCache?: boolean;
  locationCacheEntries?: number;
  /** Deadline of one data-plane batch (default 10 s). */
  timeoutMs?: number;
  /** Deadline of a directory connect or request (default 5 s to connect, 10 s per request). */
  directoryTimeoutMs?: number;
  /** Attributes published with this node (dist runs check layout/page size/working set at join). */
  attributes?: Record<string, string | number | boolean>;
  /** A directory to use instead of the embedded one (e.g. Redis). */
  directory?: Directory;
  /** Prometheus metrics (metrics.ts createStoreMetrics()); counters are read at scrape time. */
  metrics?: StoreMetricsSink;
  logger?: Logger;
}

const CONFIG_KEYS = new Set<string>([
  'discoveryAddr', 'protocol', 'localHost', 'deviceName', 'devices', 'ibPort', 'gidIndex', 'hostPool', 'globalSegmentBytes',
  'slotBytes', 'maxBytes', 'nodeId', 'authToken', 'tpRank', 'ppRank', 'ppSize', 'locationCache', 'locationCacheEntries',
  'timeoutMs', 'directoryTimeoutMs', 'attributes', 'directory', 'logger', 'directoryUrl', 'metrics',
]);

export class StoreConfigError extends Error {
  override readonly name = 'StoreConfigError';
}

export interface StoreStats {
  getPages: number;
  getHits: number;
  /** Objects whose READ completed but whose slot had been reused or invalidated: safe misses. */
  staleReads: number;
  cacheHits: number;
  directoryLookups: number;
  setPages: number;
  evictions: number;
  readErrors: number;
  directoryErrors: number;
  /** Objects newly published to the directory, and their bytes. */
  objectsPublished: number;
  bytesPublished: number;
  /** Bytes read into the host pool / targets (validated hits). */
  bytesRead: number;
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
  dest: Uint8Array;
  fromCache: boolean;
}

const DEFAULT_MAX_BYTES = 8 * 2 ** 30;

function checkInt(name: string, v: unknown, min: number): void {
  if (v !== undefined && (!Number.isSafeInteger(v) || (v as number) < min)) {
    throw new StoreConfigError(`${name} must be an integer >= ${min}, got ${String(v)}`);
  }
}

function validateConfig(config: PeerCacheStoreConfig): void {
  if (config === null || typeof config !== 'object') throw new StoreConfigError('PeerCacheStore.open(config): config must be an object');
  const unknown = Object.keys(config).filter((k) => !CONFIG_KEYS.has(k));
  if (unknown.length) throw new StoreConfigError(`unknown config key(s): ${unknown.join(', ')} (known: ${[...CONFIG_KEYS].join(', ')})`);
  if (!['rdma', 'shm', 'tcp'].includes(config.protocol)) throw new StoreConfigError(`protocol must be rdma, shm or tcp, got ${String(config.protocol)}`);
  let redis = false;
  try {
    redis = parseDirectoryChoice(config.directoryUrl).kind === 'redis';
  } catch (err) {
    throw new StoreConfigError((err as Error).message);
  }
  if (!config.directory && !redis && typeof config.discoveryAddr !== 'string') throw new StoreConfigError('discoveryAddr (host:port) is required (or a redis:// directoryUrl)');
  checkInt('globalSegmentBytes', config.globalSegmentBytes, 0);
  checkInt('slotBytes', config.slotBytes, 1);
  checkInt('maxBytes', config.maxBytes, 1);
  checkInt('tpRank', config.tpRank, 0);
  checkInt('ppRank', config.ppRank, 0);
  checkInt('ppSize', config.ppSize, 1);
  checkInt('locationCacheEntries', config.locationCacheEntries, 0);
  checkInt('ibPort', config.ibPort, 1);
  if (config.hostPool !== undefined && !(config.hostPool instanceof HostKVPool)) throw new StoreConfigError('hostPool must be a HostKVPool');
  if (config.timeoutMs !== undefined && !(config.timeoutMs > 0)) throw new StoreConfigError('timeoutMs must be > 0');
  if (config.directoryTimeoutMs !== undefined && !(config.directoryTimeoutMs > 0)) throw new StoreConfigError('directoryTimeoutMs must be > 0');
}

function assertKeys(keys: readonly string[], what: string): void {
  if (!Array.isArray(keys)) throw new TypeError(`${what}: keys must be an array of strings`);
  for (let i = 0; i < keys.length; i++) {
    if (typeof keys[i] !== 'string' || keys[i].length === 0) throw new TypeError(`${what}: keys[${i}] must be a non-empty string`);
  }
}

/** What the read fast path reuses from call to call: the op list, the header scratch, the locals. */
interface FastReadBuffers {
  ops: Float64Array;
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

export class PeerCacheStore {
  readonly nodeId: string;
  readonly protocol: Protocol;
  readonly stats: StoreStats = {
    getPages: 0, getHits: 0, staleReads: 0, cacheHits: 0, directoryLookups: 0, setPages: 0, evictions: 0, readErrors: 0, directoryErrors: 0,
    objectsPublished: 0, bytesPublished: 0, bytesRead: 0,
  };
  private hostPool: HostKVPool | null = null;
  private hostRegion: LocalRegion | null = null;
  private pool: PublishedPool | null = null;
  private readonly cache: LocationCache;
  private readonly scratch: ScratchPool;
  private readonly peers: PeerSet;
  private readonly suffixes: string[];
  private readonly names: ObjectKeyNames;
  private closed = false;
  /** Reused buffers of the read fast path; null while a call uses them (concurrent calls take the general path). */
  private fast: FastReadBuffers | null = null;
  private fastInUse = false;
  private lastYield = performance.now();
  private unsubscribe: () => void = () => {};
  private readonly directory: Directory;
  private readonly untrackMetrics: () => void;

  private constructor(
    private readonly config: PeerCacheStoreConfig,
    readonly transport: TransportNode,
    directory: Directory,
    private readonly closeDirectory: () => Promise<void>,
    private readonly logger: Logger,
  ) {
    this.nodeId = config.nodeId ?? `${config.localHost ?? hostname()}-${randomBytes(4).toString('hex')}`;
    this.protocol = config.protocol;
    // Metrics: the directory is timed; every other counter is read from `stats` when scraped.
    this.directory = config.metrics ? config.metrics.instrumentDirectory(directory, this.nodeId) : directory;
    this.untrackMetrics = config.metrics ? config.metrics.track(this) : () => {};
    this.cache = new LocationCache(config.locationCache === false ? 0 : (config.locationCacheEntries ?? 65_536));
    this.scratch = new ScratchPool(transport);
    this.peers = new PeerSet(transport, this.directory, logger);
    this.suffixes = componentSuffixes({
      layout: config.hostPool?.layout ?? 'mla',
      tpRank: config.tpRank ?? 0,
      ppRank: config.ppRank ?? 0,
      ppSize: config.ppSize ?? 1,
    });
    this.names = new ObjectKeyNames(this.suffixes);
  }

  /** Opens the data plane, the published pool and the directory, and joins the cluster. */
  static async open(config: PeerCacheStoreConfig): Promise<PeerCacheStore> {
    validateConfig(config);
    const logger = config.logger ?? silentLogger;
    const hostBytes = config.hostPool?.byteLength ?? 0;
    const segment = config.globalSegmentBytes ?? 0;
    const maxBytes = config.maxBytes ?? DEFAULT_MAX_BYTES;
    if (hostBytes + segment > maxBytes) {
      throw new StoreConfigError(`host pool (${hostBytes} B) + published pool (${segment} B) exceed maxBytes (${maxBytes} B): lower them or raise maxBytes`);
    }
    const transport = await openTransport({
      protocol: config.protocol,
      devices: config.devices ?? (config.deviceName ? [config.deviceName] : []),
      ibPort: config.ibPort,
      gidIndex: config.gidIndex,
      host: config.localHost,
      timeoutMs: config.timeoutMs,
    });
    let directory: Directory;
    let closeDirectory: () => Promise<void>;
    try {
      if (config.directory) {
        directory = config.directory;
        closeDirectory = () => directory.close();
      } else {
        // Redis reconnects and re-joins are worth a log line; the embedded path stays as it was.
        const onLog: LogHook | undefined = isRedisUrl(config.directoryUrl) ? (level, message) => logger[level](message) : undefined;
        const opened = await openConfiguredDirectory({
          directory: config.directoryUrl,
          discoveryAddr: config.discoveryAddr,
          authToken: config.authToken,
          onLog,
          connectTimeoutMs: config.directoryTimeoutMs,
          requestTimeoutMs: config.directoryTimeoutMs,
        });
        directory = opened.directory;
        // Closing the directory also closes an embedded server this process hosts.
        closeDirectory = () => opened.directory.close();
      }
    } catch (err) {
      await transport.close();
      throw err;
    }
    const store = new PeerCacheStore(config, transport, directory, closeDirectory, logger);
    try {
      if (config.hostPool) store.registerHostPool(config.hostPool);
      if (segment > 0) store.ensurePublishedPool();
      await store.join();
    } catch (err) {
      await store.close();
      throw err;
    }
    return store;
  }

  /** SGLang's register_mem_pool_host: registers the host pool (READ destination, publish source). */
  registerMemPoolHost(pool: HostKVPool): void {
    this.registerHostPool(pool);
    if ((this.config.globalSegmentBytes ?? 0) > 0) this.ensurePublishedPool();
  }

  private registerHostPool(pool: HostKVPool): void {
    if (this.hostPool) throw new StoreConfigError('a host pool is already registered');
    this.hostPool = pool;
    this.hostRegion = this.transport.register(pool.buffer);
    this.suffixes.splice(0, this.suffixes.length, ...componentSuffixes({
      layout: pool.layout,
      tpRank: this.config.tpRank ?? 0,
      ppRank: this.config.ppRank ?? 0,
      ppSize: this.config.ppSize ?? 1,
    }));
    this.names.reset(this.suffixes);
  }

  private ensurePublishedPool(): void {
    if (this.pool) return;
    const slotBytes = this.hostPool?.pageBytes ?? this.config.slotBytes;
    if (!slotBytes) return; // created when the host pool is registered
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
        layout: this.hostPool?.layout ?? '',
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
        this.cache.dropNode(event.nodeId);
        this.peers.drop(event.nodeId, event.reason);
      }
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
  private yieldSometimes(): Promise<void> | undefined {
    const now = performance.now();
    if (now - this.lastYield < 5) return undefined;
    this.lastYield = now;
    return new Promise<void>((resolve) => setImmediate(resolve));
  }

  private requireHostPool(what: string): HostKVPool {
    if (this.closed) throw new Error(`${what}: the store is closed`);
    if (!this.hostPool || !this.hostRegion) throw new StoreConfigError(`${what}: no host pool registered (pass hostPool to open() or call registerMemPoolHost)`);
    return this.hostPool;
  }

  // ------------------------------------------------------------------ set

  /** Publishes pages from the host pool; one bool per key (true also when the key already exists). */
  async batchSetV1(keys: readonly string[], hostIndices: HostIndices): Promise<boolean[]> {
    assertKeys(keys, 'batchSetV1');
    const host = this.requireHostPool('batchSetV1');
    const pages = host.pagesOf(hostIndices, keys.length);
    if (keys.length === 0) return [];
    if (!this.pool) throw new StoreConfigError('batchSetV1: this node has no published pool (globalSegmentBytes is 0)');
    const yielded = this.yieldSometimes();
    if (yielded) await yielded;
    const objects = this.names.of(keys);
    const comps = this.suffixes.length;
    const sources = objects.map((_, j) => host.pageView(pages[Math.floor(j / comps)], j % comps));
    const ok = await this.publishObjects(objects, sources);
    this.stats.setPages += keys.length;
    return keys.map((_, i) => {
      for (let c = 0; c < comps; c++) if (!ok[i * comps + c]) return false;
      return true;
    });
  }

  private async publishObjects(objects: readonly string[], sources: readonly Uint8Array[]): Promise<boolean[]> {
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
      this.logger.error(`batchSetV1: directory update failed: ${(err as Error).message}`);
      for (const { entry } of fresh.values()) pool.remove(entry.key);
    }
    return ok;
  }

  // ------------------------------------------------------------------ exists

  /** The number of leading keys whose every component is present (SGLang's prefix semantics). */
  async batchExists(keys: readonly string[]): Promise<number> {
    assertKeys(keys, 'batchExists');
    if (keys.length === 0) return 0;
    const objects = this.names.of(keys);
    const comps = this.suffixes.length;
    const locations = await this.lookupOrMiss(objects, 'batchExists');
    let n = 0;
    for (; n < keys.length; n++) {
      let all = true;
      for (let c = 0; c < comps; c++) if (!locations[n * comps + c]) all = false;
      if (!all) break;
    }
    return n;
  }

  /** A directory that cannot answer (down, reconnecting) makes misses, not errors, as on the get path. */
  private async lookupOrMiss(keys: readonly string[], what: string): Promise<(Location | null)[]> {
    try {
      return await this.lookup(keys);
    } catch (err) {
      this.stats.directoryErrors++;
      this.logger.error(`${what}: directory lookup failed (the keys are misses): ${(err as Error).message}`);
      return new Array<Location | null>(keys.length).fill(null);
    }
  }

  private async lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    this.stats.directoryLookups++;
    const found = await this.directory.lookup(keys);
    for (let i = 0; i < keys.length; i++) {
      const loc = found[i];
      if (loc) this.cache.set(keys[i], loc);
      else this.cache.delete(keys[i]);
    }
    return found;
  }

  // ------------------------------------------------------------------ get

  /** Loads pages into the host pool with one-sided READs; one bool per key (true = every component read and validated). */
  async batchGetV1(keys: readonly string[], hostIndices: HostIndices): Promise<boolean[]> {
    assertKeys(keys, 'batchGetV1');
    const host = this.requireHostPool('batchGetV1');
    const pages = host.pagesOf(hostIndices, keys.length);
    if (keys.length === 0) return [];
    const yielded = this.yieldSometimes();
    if (yielded) await yielded;
    const objects = this.names.of(keys);
    const comps = this.suffixes.length;
    const attempt = this.tryFastGet(objects, pages, host);
    if (attempt === true || (attempt !== false && (await attempt))) {
      this.stats.cacheHits += objects.length;
      this.stats.getPages += keys.length;
      this.stats.getHits += keys.length;
      this.stats.bytesRead += objects.length * host.pageBytes;
      return new Array<boolean>(keys.length).fill(true);
    }
    const ok = new Uint8Array(objects.length);
    const items: (ReadItem | null)[] = new Array(objects.length).fill(null);
    const missing: number[] = [];
    for (let j = 0; j < objects.length; j++) {
      const loc = this.cache.get(objects[j]);
      if (loc) {
        this.stats.cacheHits++;
        items[j] = this.readItem(j, objects[j], loc, loc.tag, host.objectOffset(pages[Math.floor(j / comps)], j % comps), true);
      } else {
        missing.push(j);
      }
    }
    await this.resolveMissing(objects, missing, items, pages, comps, host);
    const retry = await this.readAll(items.filter((x): x is ReadItem => x !== null), ok);
    if (retry.length) {
      // Stale cached locations: one directory lookup for those keys, then one more READ.
      const again = retry.map((it) => it.index);
      for (const j of again) items[j] = null;
      for (const it of retry) this.cache.delete(it.key);
      await this.resolveMissing(objects, again, items, pages, comps, host);
      await this.readAll(again.map((j) => items[j]).filter((x): x is ReadItem => x !== null), ok);
    }
    const result = keys.map((_, i) => {
      for (let c = 0; c < comps; c++) if (!ok[i * comps + c]) return false;
      return true;
    });
    this.stats.getPages += keys.length;
    let hits = 0;
    for (const r of result) if (r) hits++;
    this.stats.getHits += hits;
    this.stats.bytesRead += hits * comps * host.pageBytes;
    return result;
  }

  /**
   * The steady-state read: every object's location is cached and on one remote peer. One op list
   * (data READs, a fence, header READs) built straight into reused buffers, one native call, one
   * validation loop: no per-object allocation. Returns false when it does not apply or any object
   * failed validation; the general path then does the whole batch (and its retries) again.
   */
  private tryFastGet(objects: readonly string[], pages: readonly number[], host: HostKVPool): boolean | Promise<boolean> {
    if (this.fastInUse || this.cache.maxEntries <= 0) return false;
    const n = objects.length;
    const comps = this.suffixes.length;
    const first = this.cache.get(objects[0]);
    if (!first || first.nodeId === this.nodeId) return false;
    const peer = this.peers.connected(first.nodeId);
    if (!peer) return false;
    const f = this.fastBuffers(n);
    const { ops, locations } = f;
    const pageBytes = host.pageBytes;
    const stride = host.pageStride;
    for (let j = 0; j < n; j++) {
      const loc = j === 0 ? first : this.cache.get(objects[j]);
      if (!loc || loc.nodeId !== first.nodeId || loc.length !== pageBytes) return false;
      const header = peer.headerOffset(loc.offset);
      if (header < 0) return false;
      locations[j] = loc;
      const o = j * OP_FIELDS;
      ops[o] = loc.offset;
      ops[o + 1] = 0;
      ops[o + 2] = pages[(j / comps) | 0] * stride + (j % comps) * pageBytes;
      ops[o + 3] = pageBytes;
      const h = (n + j) * OP_FIELDS;
      ops[h] = header;
      ops[h + 1] = 1;
      ops[h + 2] = j * SLOT_CHECK_BYTES;
      ops[h + 3] = SLOT_CHECK_BYTES;
    }
    const endpoint = peer.endpoint;
    if (this.protocol === 'shm' && endpoint instanceof UcxEndpoint) {
      // Over shared memory a READ is a copy that completes inside the call either way: the
      // blocking form skips the Promise round trips.
      try {
        endpoint.readSync(peer.remote, f.locals, ops, 2 * n, { fenceAt: n });
      } catch {
        return false; // the general path reads again, logs and counts the error
      }
      return this.fastValidate(f, n);
    }
    this.fastInUse = true;
    return endpoint.read(peer.remote, f.locals, ops, 2 * n, { fenceAt: n }).then(
      () => {
        this.fastInUse = false;
        return this.fastValidate(f, n);
      },
      () => {
        this.fastInUse = false;
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
    const scratch = this.transport.register(new Uint8Array(capacity * SLOT_CHECK_BYTES));
    this.fast = {
      ops: new Float64Array(2 * capacity * OP_FIELDS),
      scratch,
      locals: [this.hostRegion!, scratch],
      locations: new Array<CachedLocation>(capacity),
      capacity,
    };
    return this.fast;
  }

  private readItem(index: number, key: string, location: Location, tag: number, hostOffset: number, fromCache: boolean): ReadItem {
    return { index, key, location, tag, local: this.hostRegion!, localOffset: hostOffset, dest: this.hostPool!.buffer, fromCache };
  }

  private async resolveMissing(objects: readonly string[], missing: number[], items: (ReadItem | null)[], pages: number[], comps: number, host: HostKVPool): Promise<void> {
    if (!missing.length) return;
    let found: (Location | null)[];
    try {
      found = await this.lookup(missing.map((j) => objects[j]));
    } catch (err) {
      this.stats.directoryErrors++;
      this.logger.error(`batchGetV1: directory lookup failed: ${(err as Error).message}`);
      return;
    }
    for (let m = 0; m < missing.length; m++) {
      const loc = found[m];
      const j = missing[m];
      if (loc && loc.length === host.pageBytes) {
        items[j] = this.readItem(j, objects[j], loc, keyTag(objects[j]), host.objectOffset(pages[Math.floor(j / comps)], j % comps), false);
      }
    }
  }

  /**
   * READs every item (grouped by owner, one batch per owner, owners in parallel) and validates
   * each against its slot header. Marks `ok`; returns the cached items that failed validation.
   */
  private async readAll(items: ReadItem[], ok: Uint8Array): Promise<ReadItem[]> {
    const byNode = new Map<string, ReadItem[]>();
    for (const it of items) {
      const list = byNode.get(it.location.nodeId);
      if (list) list.push(it);
      else byNode.set(it.location.nodeId, [it]);
    }
    const stale: ReadItem[] = [];
    await Promise.all(
      [...byNode].map(async ([nodeId, list]) => {
        if (nodeId === this.nodeId) {
          for (const it of list) {
            if (this.pool?.copyOut(it.key, it.location.generation, it.dest, it.localOffset)) ok[it.index] = 1;
            else this.noteStale(it, stale);
          }
          return;
        }
        const peer = await this.peers.resolve(nodeId);
        if (!peer) {
          this.cache.dropNode(nodeId);
          return;
        }
        await this.readFromPeer(peer, list, ok, stale);
      }),
    );
    return stale;
  }

  private noteStale(it: ReadItem, stale: ReadItem[]): void {
    this.stats.staleReads++;
    if (it.fromCache) stale.push(it);
    else this.cache.delete(it.key);
  }

  private async readFromPeer(peer: Peer, list: ReadItem[], ok: Uint8Array, stale: ReadItem[]): Promise<void> {
    // A location that is no slot of this peer's pool (a corrupt or foreign entry) is a miss.
    const headers = list.map((it) => peer.headerOffset(it.location.offset));
    if (headers.includes(-1)) {
      const keep = list.filter((it, i) => {
        if (headers[i] >= 0) return true;
        this.noteStale(it, stale);
        return false;
      });
      if (!keep.length) return;
      return this.readFromPeer(peer, keep, ok, stale);
    }
    const n = list.length;
    const scratch = this.scratch.acquire(n * SLOT_CHECK_BYTES);
    const locals: LocalRegion[] = [];
    const localIndex = new Map<LocalRegion, number>();
    const ops = new Float64Array(2 * n * OP_FIELDS);
    for (let i = 0; i < n; i++) {
      const it = list[i];
      let li = localIndex.get(it.local);
      if (li === undefined) {
        li = locals.push(it.local) - 1;
        localIndex.set(it.local, li);
      }
      const o = i * OP_FIELDS;
      ops[o] = it.location.offset;
      ops[o + 1] = li;
      ops[o + 2] = it.localOffset;
      ops[o + 3] = it.location.length;
    }
    const scratchIndex = locals.push(scratch) - 1;
    for (let i = 0; i < n; i++) {
      // After the fence: the header of every slot, read once its data has been read.
      const o = (n + i) * OP_FIELDS;
      ops[o] = headers[i];
      ops[o + 1] = scratchIndex;
      ops[o + 2] = i * SLOT_CHECK_BYTES;
      ops[o + 3] = SLOT_CHECK_BYTES;
    }
    try {
      await peer.endpoint.read(peer.remote, locals, ops, 2 * n, { fenceAt: n });
      for (let i = 0; i < n; i++) {
        const it = list[i];
        if (headerMatches(scratch.bytes, i * SLOT_CHECK_BYTES, it.location.generation, it.tag, it.location.length)) ok[it.index] = 1;
        else this.noteStale(it, stale);
      }
    } catch (err) {
      this.stats.readErrors++;
      this.logger.warn(`READ of ${n} objects from ${peer.nodeId} failed (they are misses): ${(err as Error).message}`);
      if (peer.endpoint.failure !== null) {
        this.peers.drop(peer.nodeId, peer.endpoint.failure);
        this.cache.dropNode(peer.nodeId);
      }
    } finally {
      this.scratch.release(scratch);
    }
  }

  // ------------------------------------------------------------------ legacy API (raw keys)

  /** Legacy: publishes values under raw keys (no page/component suffix). True if every key was stored. */
  async batchSet(keys: readonly string[], values: readonly Uint8Array[]): Promise<boolean> {
    assertKeys(keys, 'batchSet');
    if (!Array.isArray(values) || values.length !== keys.length) throw new TypeError('batchSet: values must be an array with one Uint8Array per key');
    if (this.closed) throw new Error('batchSet: the store is closed');
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
    if (!Array.isArray(targets) || targets.length !== keys.length) throw new TypeError('batchGet: targets must be an array with one Uint8Array per key');
    if (this.closed) throw new Error('batchGet: the store is closed');
    if (keys.length === 0) return [];
    const locations = await this.lookupOrMiss(keys, 'batchGet');
    const total = locations.reduce((s, l, i) => s + (l && l.length <= targets[i].byteLength ? l.length : 0), 0);
    const staging = this.scratch.acquire(Math.max(total, 1));
    const ok = new Uint8Array(keys.length);
    const items: ReadItem[] = [];
    let offset = 0;
    for (let i = 0; i < keys.length; i++) {
      const loc = locations[i];
      if (!loc || loc.length > targets[i].byteLength) continue;
      items.push({ index: i, key: keys[i], location: loc, tag: keyTag(keys[i]), local: staging, localOffset: offset, dest: staging.bytes, fromCache: false });
      offset += loc.length;
    }
    try {
      await this.readAll(items, ok);
      return keys.map((_, i) => {
        if (!ok[i]) return null;
        const it = items.find((x) => x.index === i)!;
        targets[i].set(staging.bytes.subarray(it.localOffset, it.localOffset + it.location.length));
        this.stats.bytesRead += it.location.length;
        return targets[i];
      });
    } finally {
      this.scratch.release(staging);
    }
  }

  async get(key: string, target: Uint8Array): Promise<Uint8Array | null> {
    return (await this.batchGet([key], [target]))[0];
  }

  /** Legacy: is this raw key present? */
  async exists(key: string): Promise<boolean> {
    assertKeys([key], 'exists');
    return (await this.lookupOrMiss([key], 'exists'))[0] !== null;
  }

  // ------------------------------------------------------------------ lifecycle

  /** Unpublishes everything this node published (directory entries removed, slots invalidated). */
  async clear(): Promise<void> {
    this.cache.clear();
    if (!this.pool) return;
    const all = this.pool.clear();
    if (all.length) await this.directory.remove(all.map((e) => ({ key: e.key, nodeId: this.nodeId, generation: e.generation })));
  }

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
    this.scratch.freeAll();
    this.fast?.scratch.free();
    this.fast = null;
    this.hostRegion?.free();
    this.pool?.region.free();
    await this.transport.close();
  }
}
