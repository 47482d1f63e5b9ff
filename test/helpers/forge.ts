/**
 * Blobs as a hostile peer forges them: a descriptor whose base is moved or whose rkey is cut short,
 * a garbage or foreign worker address — each with its checksum recomputed, so only the checks that
 * look at the content (not the checksum) can refuse it.
 */
export type ForgedDescriptorKind = 'base-moved' | 'short-rkey' | 'segment-id';
export type ForgedAddressKind = 'garbage-address' | 'address-version' | 'ucx-version';

const ADDRESS_ENVELOPE_MAGIC = 0x41574350; // 'PCWA'

function fnv(h: number, bytes: Uint8Array): number {
  for (const b of bytes) h = Math.imul(h ^ b, 16777619) >>> 0;
  return h >>> 0;
}

/** Recomputes a descriptor's checksum as its own version defines it (v1: the rkey; v2: header and rkey). */
function resum(d: Buffer): Buffer {
  const v = d.readUInt16LE(4);
  const rkey = d.subarray(32);
  d.writeUInt32LE(v === 1 ? fnv(2166136261, rkey) : fnv(fnv(2166136261, d.subarray(0, 28)), rkey), 28);
  return d;
}

export function forgeDescriptor(descriptor: Buffer, kind: ForgedDescriptorKind): Buffer {
  const d = Buffer.from(descriptor);
  if (kind === 'base-moved') {
    d.writeBigUInt64LE(d.readBigUInt64LE(8) + (1n << 40n), 8);
    return resum(d);
  }
  if (kind === 'segment-id') {
    // The sysv domain's key (12 bytes) starts with its segment id: one that names no segment, as a
    // peer that lies (or restarted) would give. Packed rkey: u64 domain map, u8 memory type, then
    // per domain a size byte and its key.
    const rkey = d.subarray(32);
    const map = rkey.readBigUInt64LE(0);
    let off = 9;
    for (let bit = 0n; bit < 64n; bit++) {
      if (!((map >> bit) & 1n)) continue;
      const size = rkey[off];
      if (size === 12) {
        rkey.writeUInt32LE(0x7ffffff0, off + 1);
        return resum(d);
      }
      off += 1 + size;
    }
    throw new Error('no 12-byte (sysv) key in this rkey');
  }
  const out = Buffer.concat([d.subarray(0, 32), Buffer.from([0x0b, 0, 0, 0])]);
  out.writeUInt32LE(4, 24);
  return resum(out);
}

export function forgeAddress(address: Buffer, kind: ForgedAddressKind): Buffer {
  if (kind === 'garbage-address') return Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 37 + 11) & 0xff));
  const a = Buffer.from(address);
  const isEnvelope = a.readUInt32LE(0) === ADDRESS_ENVELOPE_MAGIC;
  if (kind === 'address-version') a[isEnvelope ? 32 : 0] ^= 0x07;
  if (kind === 'ucx-version' && isEnvelope) a.write('9.99.0\0', 8, 'latin1');
  if (isEnvelope) a.writeUInt32LE(fnv(fnv(2166136261, a.subarray(0, 28)), a.subarray(32)), 28);
  return a;
}

export const FORGED_ADDRESS_KINDS: readonly ForgedAddressKind[] = ['garbage-address', 'address-version', 'ucx-version'];
