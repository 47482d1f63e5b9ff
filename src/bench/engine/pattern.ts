/**
 * The one fill/verify byte pattern (the producer, the drivers' --verify, serve, and every test and
 * fixture use it): 32-bit word w of the pattern for `seed` is `w × 2654435761 ^ seed`. It depends
 * on the position, so a page read from the wrong place (or with another seed) never verifies.
 * Offsets are byte offsets into the pattern; unaligned ones work byte by byte.
 */

/**
 * The seed of a working-set page, so readers can verify what they read: a function of (key index,
 * component, generation), so a page of another key, another component or a stale generation
 * differs in (almost) every word.
 */
export function pageSeed(page: number, component: number, generation = 1): number {
  return (Math.imul(page + 1, 0x9e3779b1) ^ Math.imul(component + 1, 0x85ebca6b) ^ Math.imul(generation, 0xc2b2ae35)) >>> 0;
}

/** The seed of a page named by its key (FNV-style over its characters): fixtures that publish by key. */
export function keySeed(key: string): number {
  let h = 17;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Word w of the pattern for `seed`. */
export function patternWord(w: number, seed: number): number {
  return (Math.imul(w, 2654435761) ^ seed) >>> 0;
}

function patternByte(i: number, seed: number): number {
  return (patternWord(Math.floor(i / 4), seed) >>> ((i % 4) * 8)) & 0xff;
}

function aligned(view: Uint8Array, viewOffset: number, patternOffset: number, length: number): boolean {
  return (view.byteOffset + viewOffset) % 4 === 0 && patternOffset % 4 === 0 && length % 4 === 0;
}

/** Fills view[viewOffset, +length) with pattern bytes [patternOffset, +length); default the whole view from pattern byte 0. */
export function fillPattern(view: Uint8Array, seed: number, patternOffset = 0, viewOffset = 0, length = view.byteLength - viewOffset): void {
  if (aligned(view, viewOffset, patternOffset, length)) {
    const words = new Uint32Array(view.buffer, view.byteOffset + viewOffset, length / 4);
    const w0 = patternOffset / 4;
    for (let i = 0; i < words.length; i++) words[i] = patternWord(w0 + i, seed);
    return;
  }
  for (let i = 0; i < length; i++) view[viewOffset + i] = patternByte(patternOffset + i, seed);
}

/** The first byte (relative to viewOffset) where the view differs from pattern bytes [patternOffset, +length), or -1. */
export function findMismatch(view: Uint8Array, seed: number, patternOffset = 0, viewOffset = 0, length = view.byteLength - viewOffset): number {
  if (aligned(view, viewOffset, patternOffset, length)) {
    const words = new Uint32Array(view.buffer, view.byteOffset + viewOffset, length / 4);
    const w0 = patternOffset / 4;
    for (let i = 0; i < words.length; i++) {
      if (words[i] !== patternWord(w0 + i, seed)) {
        for (let b = i * 4; b < i * 4 + 4; b++) if (view[viewOffset + b] !== patternByte(patternOffset + b, seed)) return b;
      }
    }
    return -1;
  }
  for (let i = 0; i < length; i++) if (view[viewOffset + i] !== patternByte(patternOffset + i, seed)) return i;
  return -1;
}

/** Index of the first 32-bit word of `bytes` that differs from the pattern at byte `patternOffset`, or -1. */
export function checkPattern(bytes: Uint8Array, seed: number, patternOffset = 0): number {
  const bad = findMismatch(bytes, seed, patternOffset, 0, bytes.byteLength - (bytes.byteLength % 4));
  return bad < 0 ? -1 : bad >>> 2;
}

/** Fills a page with the pattern for `seed` (whole words). */
export function fillPage(bytes: Uint8Array, seed: number): void {
  fillPattern(bytes, seed, 0, 0, bytes.byteLength - (bytes.byteLength % 4));
}

/** True when the page holds the pattern for `seed`. */
export function verifyPage(bytes: Uint8Array, seed: number): boolean {
  return checkPattern(bytes, seed, 0) === -1;
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
  for (let i = 0; i < n; i += SAMPLE_STRIDE_WORDS) if (words[i] !== patternWord(i, seed)) return false;
  return words[n - 1] === patternWord(n - 1, seed);
}

export type VerifyMode = 'sample' | 'full';
export const VERIFY_MODES: readonly VerifyMode[] = ['sample', 'full'];
