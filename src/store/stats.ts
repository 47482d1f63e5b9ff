/** The counters a PeerCacheStore keeps in plain integers (metrics.ts reads them when scraped). */
export interface StoreStats {
  getPages: number;
  getHits: number;
  /** Objects whose READ completed but whose slot had been reused or invalidated: safe misses. */
  staleReads: number;
  cacheHits: number;
  directoryLookups: number;
  /** Lookups answered by the directory's local replica or in-process entries (no round trip). */
  replicaLookups: number;
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

export function newStoreStats(): StoreStats {
  return {
    getPages: 0, getHits: 0, staleReads: 0, cacheHits: 0, directoryLookups: 0, replicaLookups: 0, setPages: 0, evictions: 0, readErrors: 0, directoryErrors: 0,
    objectsPublished: 0, bytesPublished: 0, bytesRead: 0,
  };
}
