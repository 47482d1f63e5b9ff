/**
 * The published pool: fixed-size slots in a region peers READ one-sidedly, with LRU eviction and a
 * generation stamped in every slot, so a reader can never report another key's bytes as a hit.
 *
 * Region layout: a header table (one 64-byte header per slot, its own cache line), then the slot
 * data, each slot starting on a 4 KiB boundary (64 B for slots under 4 KiB) so the READ into a
 * page-aligned host buffer copies aligned memory:
 *   [header 0 | header 1 | ... ][pad to 4 KiB][slot 0 data][slot 1 data] ...
 *   header = u64 generation | u32 key tag | u32 length | padding
 * Readers learn the geometry (data base, stride) from the node's attributes (`poolGeometry`).
 * Writer protocol: stamp generation 0 (invalid), copy the data, write tag and length, stamp the
 * new generation. Generations never repeat within a pool. A reader READs the data, then (after a
 * fence) the header, and accepts the bytes only if the header still holds the generation, tag and
 * length the directory gave it: a slot rewritten at any point since the lookup fails that check,
 * because its generation was invalidated before its data was touched.
 */
import { MAX_VIEW_BYTES, type PublishedRegion } from '../transport/types.js';
import { InvalidArgumentError } from '../errors.js';

export const SLOT_HEADER_BYTES = 64;
/** Bytes of the header a reader fetches to validate a READ. */
export const SLOT_CHECK_BYTES = 16;
const PAGE = 4096;

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

/** Where slots live in a published region; published to readers as node attributes. */
export interface PoolGeometry {
  /** Byte offset of slot 0's data. */
  dataBase: number;
  /** Bytes from one slot's data to the next. */
  stride: number;
  slots: number;
}

/** Bytes between slot data starts: 4 KiB aligned for page-sized slots. */
export function slotStride(slotDataBytes: number): number {
  return slotDataBytes >= PAGE ? roundUp(slotDataBytes, PAGE) : roundUp(slotDataBytes, 64);
}

function dataBaseFor(slots: number): number {
  return roundUp(slots * SLOT_HEADER_BYTES, PAGE);
}

/** The region size that holds exactly `slots` slots of `slotDataBytes`. */
export function publishedPoolBytes(slots: number, slotDataBytes: number): number {
  return dataBaseFor(slots) + slots * slotStride(slotDataBytes);
}

/** The most slots of `slotDataBytes` a region of `regionBytes` holds, and where they are. */
export function poolGeometry(regionBytes: number, slotDataBytes: number): PoolGeometry {
  const stride = slotStride(slotDataBytes);
  let slots = Math.floor(regionBytes / (stride + SLOT_HEADER_BYTES));
  while (slots > 0 && publishedPoolBytes(slots, slotDataBytes) > regionBytes) slots--;
  return { dataBase: dataBaseFor(slots), stride, slots };
}

/** A reader's view of a peer's pool: the header offset of the slot whose data is at `dataOffset`, or -1 if that is no slot. */
export function headerOffsetFor(geometry: Pick<PoolGeometry, 'dataBase' | 'stride'>, dataOffset: number): number {
  const rel = dataOffset - geometry.dataBase;
  if (rel < 0 || rel % geometry.stride !== 0) return -1;
  return (rel / geometry.stride) * SLOT_HEADER_BYTES;
}

export interface SlotEntry {
  key: string;
  slot: number;
  generation: number;
  length: number;
}

/** FNV-1a over the key's UTF-16 code units: a cheap second check beside the generation. */
export function keyTag(key: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Checks a fetched slot header (16 bytes at `offset` of `bytes`) against what the directory said. */
export function headerMatches(bytes: Uint8Array, offset: number, generation: number, tag: number, length: number): boolean {
  const b = bytes;
  const o = offset;
  const lo = (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
  const hi = (b[o + 4] | (b[o + 5] << 8) | (b[o + 6] << 16) | (b[o + 7] << 24)) >>> 0;
  if (hi * 0x1_0000_0000 + lo !== generation) return false;
  const t = (b[o + 8] | (b[o + 9] << 8) | (b[o + 10] << 16) | (b[o + 11] << 24)) >>> 0;
  const l = (b[o + 12] | (b[o + 13] << 8) | (b[o + 14] << 16) | (b[o + 15] << 24)) >>> 0;
  return t === tag && l === length;
}

export class PublishedPool {
  readonly slotDataBytes: number;
  readonly slotStride: number;
  readonly dataBase: number;
  readonly slots: number;
  private readonly gen64: BigInt64Array;
  private readonly u32: Uint32Array;
  /** key -> entry; Map order is the LRU order (oldest first). */
  private readonly entries = new Map<string, SlotEntry>();
  private readonly free: number[] = [];
  /**
   * Per slot, how many bytes of an unpublished object it still holds. Anyone holding the region's
   * descriptor can READ any byte of it, headers or not: a slot freed by remove() or clear() is zeroed
   * at once, and one that is about to be overwritten (replaced or evicted) has only what the new
   * object does not cover zeroed, when it is written.
   */
  private readonly stale: Uint32Array;
  private nextGeneration: number;

  constructor(readonly region: PublishedRegion, slotDataBytes: number) {
    if (!Number.isSafeInteger(slotDataBytes) || slotDataBytes <= 0) throw new InvalidArgumentError('slotDataBytes must be a positive integer');
    this.slotDataBytes = slotDataBytes;
    const geometry = poolGeometry(region.length, slotDataBytes);
    this.slotStride = geometry.stride;
    this.dataBase = geometry.dataBase;
    this.slots = geometry.slots;
    if (this.slots < 1) {
      throw new InvalidArgumentError(`a published pool of ${region.length} bytes holds no ${slotDataBytes}-byte slot (${publishedPoolBytes(1, slotDataBytes)} bytes with its header)`);
    }
    // The headers, all at the start of the region (data goes through view(): a region over 4 GiB
    // reaches JavaScript as windows, and any one slot lies inside one of them).
    if (this.dataBase > MAX_VIEW_BYTES || this.slotStride > MAX_VIEW_BYTES) {
      throw new InvalidArgumentError(`a published pool of ${region.length} bytes in ${slotDataBytes}-byte slots: its headers and each slot must fit in ${MAX_VIEW_BYTES} bytes`);
    }
    const head = region.view(0, this.dataBase);
    this.gen64 = new BigInt64Array(head.buffer as ArrayBuffer, head.byteOffset, Math.floor(head.byteLength / 8));
    this.u32 = new Uint32Array(head.buffer as ArrayBuffer, head.byteOffset, Math.floor(head.byteLength / 4));
    this.stale = new Uint32Array(this.slots);
    for (let s = this.slots - 1; s >= 0; s--) {
      this.stamp(s, 0);
      this.free.push(s);
    }
    // A random start: a restarted node's slots never repeat a generation a cached reader holds.
    this.nextGeneration = 1 + Math.floor(Math.random() * 2 ** 40);
  }

  get size(): number {
    return this.entries.size;
  }

  get bytesUsed(): number {
    return this.entries.size * this.slotDataBytes;
  }

  get geometry(): PoolGeometry {
    return { dataBase: this.dataBase, stride: this.slotStride, slots: this.slots };
  }

  headerOffset(slot: number): number {
    return slot * SLOT_HEADER_BYTES;
  }

  dataOffset(slot: number): number {
    return this.dataBase + slot * this.slotStride;
  }

  get(key: string): SlotEntry | undefined {
    return this.entries.get(key);
  }

  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** Moves a key to the most-recently-used end. */
  touch(entry: SlotEntry): void {
    this.entries.delete(entry.key);
    this.entries.set(entry.key, entry);
  }

  /**
   * Copies `data` into a slot and publishes it under `key` (replacing this node's previous copy).
   * Returns the new entry and any entries evicted to make room (already invalidated: their
   * directory entries must be removed, conditionally, by the caller).
   */
  publish(key: string, data: Uint8Array): { entry: SlotEntry; evicted: SlotEntry[] } {
    if (data.byteLength > this.slotDataBytes) {
      throw new InvalidArgumentError(`object ${key} is ${data.byteLength} bytes; slots hold at most ${this.slotDataBytes}`);
    }
    const evicted: SlotEntry[] = [];
    const previous = this.entries.get(key);
    if (previous) {
      this.release(previous, false); // its slot is the next one popped: overwritten below
      evicted.push(previous);
    }
    let slot = this.free.pop();
    if (slot === undefined) {
      const oldest = this.entries.values().next().value as SlotEntry;
      this.release(oldest, false);
      evicted.push(oldest);
      slot = this.free.pop()!;
    }
    const generation = this.nextGeneration++;
    const header = this.headerOffset(slot);
    this.stamp(slot, 0);
    const dest = this.region.view(this.dataOffset(slot), this.slotDataBytes);
    dest.set(data, 0);
    if (this.stale[slot] > data.byteLength) dest.fill(0, data.byteLength, this.stale[slot]);
    this.stale[slot] = 0;
    this.u32[(header + 8) >>> 2] = keyTag(key);
    this.u32[(header + 12) >>> 2] = data.byteLength;
    this.stamp(slot, generation);
    const entry: SlotEntry = { key, slot, generation, length: data.byteLength };
    this.entries.set(key, entry);
    return { entry, evicted };
  }

  /** Unpublishes a key: its slot is invalidated at once, zeroed and freed. */
  remove(key: string): SlotEntry | undefined {
    const entry = this.entries.get(key);
    if (entry) this.release(entry, true);
    return entry;
  }

  /** Unpublishes everything (slots zeroed); returns what was published. */
  clear(): SlotEntry[] {
    const all = [...this.entries.values()];
    for (const e of all) this.release(e, true);
    return all;
  }

  /** Reads a local object into `dest` if it is still published with this generation (the local path of a get). */
  copyOut(key: string, generation: number, dest: Uint8Array, destOffset: number): boolean {
    const entry = this.entries.get(key);
    if (!entry || entry.generation !== generation || entry.length > dest.byteLength - destOffset) return false;
    dest.set(this.region.view(this.dataOffset(entry.slot), entry.length), destOffset);
    return true;
  }

  /** Invalidates and frees a slot; `scrub`: zero its bytes now (else when it is next written). */
  private release(entry: SlotEntry, scrub: boolean): void {
    this.stamp(entry.slot, 0);
    this.entries.delete(entry.key);
    if (scrub) {
      this.region.view(this.dataOffset(entry.slot), Math.max(entry.length, this.stale[entry.slot])).fill(0);
      const header = this.headerOffset(entry.slot);
      this.u32[(header + 8) >>> 2] = 0;
      this.u32[(header + 12) >>> 2] = 0;
      this.stale[entry.slot] = 0;
    } else {
      this.stale[entry.slot] = Math.max(entry.length, this.stale[entry.slot]);
    }
    this.free.push(entry.slot);
  }

  private stamp(slot: number, generation: number): void {
    // A 64-bit atomic store: readers on other CPUs never see half a generation, and the stores
    // around it are not reordered across it.
    Atomics.store(this.gen64, this.headerOffset(slot) >>> 3, BigInt(generation));
  }
}
