/**
 * Object keys per page, named as the original (and Mooncake) name them, so a cluster mixing
 * implementations sees the same keys: mla one object `<key>__k` (no TP rank: every rank writes the
 * same page), mha two objects `<key>_<tp>_k`, `<key>_<tp>_v`; with pipeline parallelism the pp
 * rank joins the suffix.
 */
import type { Layout } from './host-pool.js';

export interface KeyNaming {
  layout: Layout;
  tpRank: number;
  ppRank: number;
  ppSize: number;
}

export function componentSuffixes(n: KeyNaming): string[] {
  if (n.layout === 'mla') return [n.ppSize > 1 ? `_${n.ppRank}_k` : '__k'];
  const rank = n.ppSize > 1 ? `${n.tpRank}_${n.ppRank}` : `${n.tpRank}`;
  return [`_${rank}_k`, `_${rank}_v`];
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
