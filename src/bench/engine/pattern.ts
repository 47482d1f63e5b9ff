/** The bytes the producer writes into working-set page i (component c), so readers can verify hits. */
export function pageSeed(page: number, component: number): number {
  return (Math.imul(page + 1, 0x9e3779b1) ^ (component * 0x85ebca6b)) >>> 0;
}

export function fillPage(bytes: Uint8Array, seed: number): void {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) words[i] = (Math.imul(i, 2654435761) ^ seed) >>> 0;
}

export function verifyPage(bytes: Uint8Array, seed: number): boolean {
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >>> 2);
  for (let i = 0; i < words.length; i++) if (words[i] !== (Math.imul(i, 2654435761) ^ seed) >>> 0) return false;
  return true;
}
