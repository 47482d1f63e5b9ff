/**
 * PeerCacheStore: SGLang's HiCacheStorage v1 contract, a facade over the object-store core
 * (object-store.ts).
 *
 * A prefill node `batchSetV1`s pages from its host pool into its published pool and the
 * directory; a decode node `batchExists` a prefix and `batchGetV1`s pages with a one-sided READ
 * straight into its host pool. What this layer adds is the HiCache side: the host pool, page keys
 * named as objects per layout and rank (keys.ts), and SGLang's prefix semantics.
 */
import type { LocalRegion } from '../transport/types.js';
import { assertKeys, StoreConfigError, type PeerCacheStoreConfig } from './config.js';
import { HostKVPool, type HostIndices } from './host-pool.js';
import { componentSuffixes, ObjectKeyNames } from './keys.js';
import { ObjectStore, type StoreStartup } from './object-store.js';
import { PeercacheError } from '../errors.js';

export { StoreConfigError, type PeerCacheStoreConfig } from './config.js';
export type { StoreStats } from './stats.js';

export class PeerCacheStore extends ObjectStore {
  private hostPool: HostKVPool | null = null;
  private hostRegion: LocalRegion | null = null;
  private readonly suffixes: string[] = [];
  private readonly names = new ObjectKeyNames(this.suffixes);

  /** Opens the data plane, the published pool and the directory, and joins the cluster. */
  static override async open(config: PeerCacheStoreConfig, startup: StoreStartup = {}): Promise<PeerCacheStore> {
    return ObjectStore.openAs((...parts) => new PeerCacheStore(...parts), config, startup);
  }

  protected override prepare(): void {
    this.nameObjects(this.config.hostPool?.layout ?? 'mla');
    if (this.config.hostPool) this.registerHostPool(this.config.hostPool);
  }

  /** A published slot holds one page component: the host pool's page size, once there is one. */
  protected override publishedSlotBytes(): number | undefined {
    return this.hostPool?.pageBytes ?? this.config.slotBytes;
  }

  protected override layoutAttributes(): { layout: string } {
    return { layout: this.hostPool?.layout ?? '' };
  }

  protected override freeRegions(): void {
    this.hostRegion?.free();
  }

  private nameObjects(layout: HostKVPool['layout']): void {
    this.suffixes.splice(0, this.suffixes.length, ...componentSuffixes({
      layout,
      tpRank: this.config.tpRank ?? 0,
      ppRank: this.config.ppRank ?? 0,
      ppSize: this.config.ppSize ?? 1,
    }));
    this.names.reset(this.suffixes);
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
    this.reader.setHost(pool, this.hostRegion);
    this.nameObjects(pool.layout);
  }

  private requireHostPool(what: string): HostKVPool {
    if (this.closed) throw new PeercacheError('ERR_CLOSED', `${what}: the store is closed`);
    if (!this.hostPool || !this.hostRegion) throw new StoreConfigError(`${what}: no host pool registered (pass hostPool to open() or call registerMemPoolHost)`);
    return this.hostPool;
  }

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

  /** The number of leading keys whose every component is present (SGLang's prefix semantics). */
  async batchExists(keys: readonly string[]): Promise<number> {
    assertKeys(keys, 'batchExists');
    if (keys.length === 0) return 0;
    const objects = this.names.of(keys);
    const comps = this.suffixes.length;
    const locations = await this.reader.lookupOrMiss(objects, 'batchExists');
    let n = 0;
    for (; n < keys.length; n++) {
      let all = true;
      for (let c = 0; c < comps; c++) if (!locations[n * comps + c]) all = false;
      if (!all) break;
    }
    return n;
  }

  /** Loads pages into the host pool with one-sided READs; one bool per key (true = every component read and validated). */
  async batchGetV1(keys: readonly string[], hostIndices: HostIndices): Promise<boolean[]> {
    assertKeys(keys, 'batchGetV1');
    const host = this.requireHostPool('batchGetV1');
    const pages = host.pagesOf(hostIndices, keys.length);
    if (keys.length === 0) return [];
    const yielded = this.yieldSometimes();
    if (yielded) await yielded;
    return this.reader.getPages(this.names.of(keys), pages, this.suffixes.length, host);
  }
}
