/**
 * The tcp transport's memory: regions a node publishes (served to peers by its server) and local
 * regions (READ destinations / WRITE sources, nothing to register over TCP).
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { TransportError, type LocalRegion, type PublishedRegion } from '../types.js';
import { STATUS_BAD_RKEY, TOKEN_BYTES, asBuffer, encodeTcpDescriptor } from './wire.js';

/** Why a frame is refused: the response status and its one-line reason. */
export interface Refusal {
  readonly status: number;
  readonly reason: string;
}

/** What the data-plane server needs of a node: its id, and its regions by id and token. */
export interface ServedRegions {
  /** 16 hex digits; HELLO answers with it. */
  readonly nodeId: string;
  /** The published region `id` if `token` is its access token, else why not. */
  lookup(id: number, token: Buffer): TcpPublished | Refusal;
}

export class TcpPublished implements PublishedRegion {
  private whole: Uint8Array;
  /** A Buffer over the same memory, for Buffer.copy (memmove) on the serving path. */
  readonly buf: Buffer;
  freed = false;
  readonly length: number;
  /**
   * Answers the server has handed to the socket as views of this region's memory and the kernel
   * has not taken yet: free() leaves the memory attached until they are done (libuv holds raw
   * pointers into it; detaching would let it be freed under them).
   */
  private pins = 0;
  private detachPending = false;

  constructor(
    private readonly table: RegionTable,
    readonly id: number,
    length: number,
    readonly token: Buffer,
    /** Whether peers may WRITE into it (default false: the store never writes remotely). */
    readonly remoteWritable: boolean,
  ) {
    const ab = new ArrayBuffer(length);
    this.whole = new Uint8Array(ab);
    this.buf = Buffer.from(ab);
    this.length = length;
  }

  get bytes(): Uint8Array {
    return this.whole;
  }

  view(offset: number, length: number): Uint8Array {
    return this.whole.subarray(offset, offset + length);
  }

  descriptor(): Uint8Array {
    if (this.freed) throw new TransportError('ERR_CLOSED', `region ${this.id} was freed`);
    return encodeTcpDescriptor({ nodeId: this.table.nodeId, regionId: this.id, length: this.length, token: this.token });
  }

  /** @internal The server queued a view of this region on a socket. */
  pin(): void {
    this.pins++;
  }

  /** @internal The socket is done with a view of this region (written, or cancelled with its socket). */
  unpin(): void {
    if (--this.pins === 0 && this.detachPending) this.detach();
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    this.table.unpublish(this);
    if (this.pins > 0) this.detachPending = true;
    else this.detach();
  }

  private detach(): void {
    this.detachPending = false;
    // Node 20 has no ArrayBuffer.prototype.transfer; transferring through structuredClone detaches
    // the buffer all the same (no copy), so every view of it, `bytes` included, reads length 0.
    const ab = this.whole.buffer as ArrayBuffer;
    try {
      structuredClone(ab, { transfer: [ab] });
    } catch {
      // Not detachable (cannot happen for our own ArrayBuffer): the server has stopped serving it.
    }
  }
}

/** The regions one node publishes, by id; what its server serves. */
export class RegionTable implements ServedRegions {
  private readonly regions = new Map<number, TcpPublished>();
  private readonly freedIds = new Set<number>();
  private nextId = 1;

  constructor(readonly nodeId: string) {}

  allocate(bytes: number, remoteWritable: boolean): TcpPublished {
    if (this.nextId > 0xffffffff) throw new TransportError('ERR_ALLOC', 'this node ran out of region ids');
    const id = this.nextId++;
    let region: TcpPublished;
    try {
      region = new TcpPublished(this, id, bytes, randomBytes(TOKEN_BYTES), remoteWritable);
    } catch (err) {
      throw new TransportError('ERR_ALLOC', `cannot allocate a published region of ${bytes} bytes: ${(err as Error).message}`);
    }
    this.regions.set(id, region);
    return region;
  }

  lookup(id: number, token: Buffer): TcpPublished | Refusal {
    const region = this.regions.get(id);
    if (region === undefined) {
      return { status: STATUS_BAD_RKEY, reason: this.freedIds.has(id) ? `region ${id} was freed` : `no region ${id} on this node` };
    }
    if (!timingSafeEqual(region.token, token)) {
      return { status: STATUS_BAD_RKEY, reason: `access token does not match region ${id} (forged or stale descriptor)` };
    }
    return region;
  }

  /** Called by the region's free(): the server stops serving it. */
  unpublish(region: TcpPublished): void {
    this.regions.delete(region.id);
    this.freedIds.add(region.id);
  }

  freeAll(): void {
    for (const r of [...this.regions.values()]) r.free();
  }
}

export class TcpLocal implements LocalRegion {
  freed = false;
  readonly length: number;
  readonly buf: Buffer;
  /** `copyInto`: answers are copied into it from the staging buffer, never read(2) into it (RegisterOptions.mayShrink). */
  constructor(
    readonly bytes: Uint8Array,
    readonly copyInto = false,
  ) {
    this.length = bytes.byteLength;
    this.buf = asBuffer(bytes);
  }
  view(offset: number, length: number): Uint8Array {
    return this.bytes.subarray(offset, offset + length);
  }
  free(): void {
    // Nothing is registered over TCP; a freed local is refused by later batches, like UCX's.
    this.freed = true;
  }
}
