/**
 * A bounded cache of key locations for the read path. Safe by construction: every READ is
 * validated against the slot's generation, so a stale entry costs one more lookup and a retry,
 * never wrong bytes.
 */
import { keyTag } from './published-pool.js';
import type { Location } from './types.js';

/**
 * A cached location and the key tag its slot header must carry (computed once, not per READ).
 * A class, so every entry has one hidden class: entries spread from wire objects took several
 * (Smi and double fields), which left the read path's property loads megamorphic.
 */
export class CachedLocation implements Location {
  readonly nodeId: string;
  readonly offset: number;
  readonly length: number;
  readonly generation: number;
  readonly tag: number;
  constructor(location: Location, tag: number) {
    this.nodeId = location.nodeId;
    this.offset = location.offset;
    this.length = location.length;
    this.generation = location.generation;
    this.tag = tag;
  }
}

export class LocationCache {
  private readonly map = new Map<string, CachedLocation>();

  constructor(readonly maxEntries: number) {}

  get size(): number {
    return this.map.size;
  }

  get(key: string): CachedLocation | undefined {
    return this.map.get(key);
  }

  set(key: string, location: Location): void {
    if (this.maxEntries <= 0) return;
    this.map.delete(key);
    if (this.map.size >= this.maxEntries) {
      // Oldest insertion first: cheap, and good enough for a cache whose misses are safe.
      const oldest = this.map.keys().next().value as string;
      this.map.delete(oldest);
    }
    this.map.set(key, new CachedLocation(location, keyTag(key)));
  }

  delete(key: string): void {
    this.map.delete(key);
  }

  /** Forgets every location on a node (it left, or its endpoint failed). */
  dropNode(nodeId: string): void {
    for (const [key, loc] of this.map) if (loc.nodeId === nodeId) this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
  }
}
