/** Deterministic, position-dependent byte patterns: a misplaced page never verifies. */
export function fillPattern(bytes: Uint8Array, seed: number, startOffset = 0): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  const base = startOffset >>> 2;
  for (let i = 0; i < words.length; i++) words[i] = (Math.imul(base + i, 2654435761) ^ seed) >>> 0;
}

/** Index of the first word that differs from the pattern at `startOffset`, or -1. */
export function checkPattern(bytes: Uint8Array, seed: number, startOffset: number): number {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  const base = startOffset >>> 2;
  for (let i = 0; i < words.length; i++) {
    if (words[i] !== (Math.imul(base + i, 2654435761) ^ seed) >>> 0) return i;
  }
  return -1;
}
