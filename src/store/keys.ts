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

/** Object keys of a batch of page keys, page-major: [k0, v0, k1, v1, ...] for mha. */
export function objectKeys(keys: readonly string[], suffixes: readonly string[]): string[] {
  const out = new Array<string>(keys.length * suffixes.length);
  let j = 0;
  for (const key of keys) for (const s of suffixes) out[j++] = key + s;
  return out;
}
