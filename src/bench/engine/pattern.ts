/**
 * The bytes a publisher writes into a working-set page, so readers can verify what they read.
 * A page's words are a function of its seed, and the seed of (key index, component, generation):
 * a page of another key, another component or a stale generation differs in (almost) every word.
 */
export function pageSeed(page: number, component: number, generation = 1): number {
  return (Math.imul(page + 1, 0x9e3779b1) ^ Math.imul(component + 1, 0x85ebca6b) ^ Math.imul(generation, 0xc2b2ae35)) >>> 0;
}

const word = (i: number, seed: number) => (Math.imul(i, 2654435761) ^ seed) >>> 0;

export function fillPage(bytes: Uint8Array, seed: number): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = word(i, seed);
}

/** Every word (the `full` verify mode: ~1 GB/s per core in JS). */
export function verifyPage(bytes: Uint8Array, seed: number): boolean {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== word(i, seed)) return false;
  return true;
}

/**
 * Words checked per page by the `sample` verify mode: one per 4 KiB (each OS page of the
 * destination), plus the first and last word. Each sampled word is a cache miss when the copy
 * that filled the page bypassed the cache (non-temporal stores): at one per 1 KiB (129 words of a
 * 128 KiB page) that cost 1.6 µs of CPU per page, 0.86 of get throughput; one per 4 KiB costs
 * ~0.6 µs, 0.95 (bench-results/verify-cost-shm-20261203.md).
 */
export const SAMPLE_STRIDE_WORDS = 1024;

/**
 * The `sample` verify mode: the first and last word and one word per 4 KiB (a 128 KiB page: 33
 * words). Catches a page of the wrong key or component, a stale generation, a page not written
 * or cut short; a single flipped byte between two samples is left to `full`.
 */
export function verifyPageSampled(bytes: Uint8Array, seed: number): boolean {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  const n = words.length;
  if (n === 0) return true;
  for (let i = 0; i < n; i += SAMPLE_STRIDE_WORDS) if (words[i] !== word(i, seed)) return false;
  return words[n - 1] === word(n - 1, seed);
}

export type VerifyMode = 'sample' | 'full';
export const VERIFY_MODES: readonly VerifyMode[] = ['sample', 'full'];
