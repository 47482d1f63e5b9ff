/**
 * Object keys per page, named as the original (and Mooncake) name them, so a cluster mixing
 * implementations sees the same keys: mla one object `<key>__k` (no TP rank: every rank writes the
 * same page), mha two objects `<key>_<tp>_k`, `<key>_<tp>_v`; with pipeline parallelism the pp
 * rank joins the suffix, with attention context parallelism `cp<rank>_<size>` (each CP rank holds
 * its own slice of a page, so its own objects: as the SGLang adapter names them, where Mooncake's
 * names would let CP ranks overwrite each other's slices). schema/object-names.json holds the
 * vectors this and python/peercache_sglang/naming.py are both checked against.
 */
import type { Layout } from './host-pool.js';

export interface KeyNaming {
  layout: Layout;
  tpRank: number;
  ppRank: number;
  ppSize: number;
  /** Attention context-parallel rank and size (default 0 of 1: no CP part). */
  cpRank?: number;
  cpSize?: number;
}

export function componentSuffixes(n: KeyNaming): string[] {
  const rank = n.layout === 'mla' ? [] : [`${n.tpRank}`];
  if (n.ppSize > 1) rank.push(`${n.ppRank}`);
  const cpSize = n.cpSize ?? 1;
  if (cpSize > 1) rank.push(`cp${n.cpRank ?? 0}_${cpSize}`);
  const part = rank.join('_');
  return n.layout === 'mla' ? [`_${part}_k`] : [`_${part}_k`, `_${part}_v`];
}


/**
 * Object keys of page keys, remembered per page key (bounded): a hot read path sees the same page
 * keys again and again, and building and hashing fresh strings per call costs more than the
 * 4 KiB READs themselves.
 */
export class ObjectKeyNames {
  private memo = new Map<string, string[]>();

  constructor(private suffixes: readonly string[], private readonly maxEntries = 65_536) {}

  /** Switches the naming (when the host pool's layout becomes known); forgets remembered names. */
  reset(suffixes: readonly string[]): void {
    this.suffixes = suffixes;
    this.memo.clear();
  }

  of(keys: readonly string[]): string[] {
    const n = this.suffixes.length;
    const out = new Array<string>(keys.length * n);
    for (let i = 0; i < keys.length; i++) {
      const key = keys[i];
      let names = this.memo.get(key);
      if (names === undefined) {
        names = this.suffixes.map((s) => key + s);
        if (this.memo.size >= this.maxEntries) this.memo.clear();
        this.memo.set(key, names);
      }
      for (let c = 0; c < n; c++) out[i * n + c] = names[c];
    }
    return out;
  }
}
