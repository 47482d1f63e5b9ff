/**
 * Host memory for data-plane buffers, aligned to a page: the copy into a destination that is not
 * 64-byte aligned (V8's large ArrayBuffers start 16 bytes into a page) measured ~10% slower here
 * at 128 KiB, and SGLang's own host pool is page-aligned pinned memory.
 */
import { loadNative } from './native.js';

const PAGE = 4096;

/** `bytes` bytes starting on a 4 KiB boundary (when the addon is there to tell the address). */
export function alignedBytes(bytes: number, shared = true): Uint8Array {
  const backing = shared ? new SharedArrayBuffer(bytes + PAGE) : new ArrayBuffer(bytes + PAGE);
  const whole = new Uint8Array(backing);
  const load = loadNative();
  if (!load.ok) return whole.subarray(0, bytes);
  const misalign = load.binding.addressOf(whole) % PAGE;
  const start = misalign === 0 ? 0 : PAGE - misalign;
  return whole.subarray(start, start + bytes);
}
