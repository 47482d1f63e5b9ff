/**
 * HostKVPool: the stand-in for SGLang's host KV pool. One buffer of `pages` pages; a page is one
 * object (`mla`) or two, k then v (`mha`), of `pageBytes` each. SGLang addresses pages by token
 * indices: page i of a batch starts at token slot `hostIndices[i * tokensPerPage]`, which is
 * page-aligned (its controller frees and allocates whole pages).
 */

import { alignedBytes } from '../transport/memory.js';
import { InvalidArgumentError } from '../errors.js';

export type Layout = 'mla' | 'mha';

export interface HostKVPoolOptions {
  layout: Layout;
  /** Bytes per object (one component: the page for mla, k or v for mha). */
  pageBytes: number;
  pages: number;
  tokensPerPage: number;
  /** Back the pool with a SharedArrayBuffer (default true) so other threads can see it. The pool starts on a 4 KiB boundary. */
  shared?: boolean;
  /**
   * Use this memory instead of allocating (at least pages x pageBytes x components bytes), e.g.
   * one pool a benchmark row's worker threads share (a view of a SharedArrayBuffer).
   */
  buffer?: Uint8Array;
}

export type HostIndices = Int32Array | readonly number[];

export class HostKVPool {
  readonly layout: Layout;
  readonly pageBytes: number;
  readonly pages: number;
  readonly tokensPerPage: number;
  /** Objects per page: 1 (mla) or 2 (mha: k, v). */
  readonly components: 1 | 2;
  /** Bytes from one page to the next. */
  readonly pageStride: number;
  readonly buffer: Uint8Array;

  constructor(options: HostKVPoolOptions) {
    const { layout, pageBytes, pages, tokensPerPage } = options;
    if (layout !== 'mla' && layout !== 'mha') throw new InvalidArgumentError(`HostKVPool: layout must be 'mla' or 'mha', got ${String(layout)}`);
    for (const [name, v] of [['pageBytes', pageBytes], ['pages', pages], ['tokensPerPage', tokensPerPage]] as const) {
      if (!Number.isSafeInteger(v) || v <= 0) throw new InvalidArgumentError(`HostKVPool: ${name} must be a positive integer, got ${String(v)}`);
    }
    this.layout = layout;
    this.pageBytes = pageBytes;
    this.pages = pages;
    this.tokensPerPage = tokensPerPage;
    this.components = layout === 'mla' ? 1 : 2;
    this.pageStride = pageBytes * this.components;
    const total = this.pageStride * pages;
    if (total > 2 ** 47) throw new InvalidArgumentError(`HostKVPool: ${total} bytes is too large`);
    if (options.buffer !== undefined) {
      if (!(options.buffer instanceof Uint8Array) || options.buffer.byteLength < total) {
        throw new InvalidArgumentError(`HostKVPool: the buffer given must be a Uint8Array of at least ${total} bytes`);
      }
      this.buffer = options.buffer.subarray(0, total);
    } else {
      this.buffer = alignedBytes(total, options.shared !== false);
    }
  }

  get byteLength(): number {
    return this.buffer.byteLength;
  }

  /** Byte offset of one object of a page in `buffer`. */
  objectOffset(pageIndex: number, component = 0): number {
    if (!Number.isInteger(pageIndex) || pageIndex < 0 || pageIndex >= this.pages) {
      throw new InvalidArgumentError(`page ${pageIndex} is outside the host pool (0..${this.pages - 1})`);
    }
    if (component !== 0 && component !== this.components - 1) {
      throw new InvalidArgumentError(`component ${component} does not exist in layout ${this.layout}`);
    }
    return pageIndex * this.pageStride + component * this.pageBytes;
  }

  /** A view of one object of a page (component 0 = k, 1 = v for mha). */
  pageView(pageIndex: number, component = 0): Uint8Array {
    const offset = this.objectOffset(pageIndex, component);
    return this.buffer.subarray(offset, offset + this.pageBytes);
  }

  /**
   * Page indices of a batch of `pageCount` pages from SGLang token indices. Throws a clear error
   * when the lengths disagree or a page is outside the pool or not page-aligned.
   */
  pagesOf(hostIndices: HostIndices, pageCount: number): number[] {
    const expected = pageCount * this.tokensPerPage;
    if (hostIndices.length !== expected) {
      throw new InvalidArgumentError(
        `hostIndices has ${hostIndices.length} token slots for ${pageCount} keys; expected ${expected} (keys x tokensPerPage ${this.tokensPerPage})`,
      );
    }
    const out = new Array<number>(pageCount);
    for (let i = 0; i < pageCount; i++) {
      const slot = hostIndices[i * this.tokensPerPage];
      if (!Number.isInteger(slot) || slot < 0 || slot % this.tokensPerPage !== 0) {
        throw new InvalidArgumentError(`hostIndices[${i * this.tokensPerPage}] = ${slot} is not the first token slot of a page (multiple of ${this.tokensPerPage})`);
      }
      const page = slot / this.tokensPerPage;
      if (page >= this.pages) {
        throw new InvalidArgumentError(`hostIndices[${i * this.tokensPerPage}] = ${slot} is page ${page}, outside the host pool of ${this.pages} pages`);
      }
      out[i] = page;
    }
    return out;
  }

  /** Token indices for a list of page indices (what SGLang would pass). */
  tokenIndices(pageIndices: readonly number[]): Int32Array {
    const out = new Int32Array(pageIndices.length * this.tokensPerPage);
    for (let i = 0; i < pageIndices.length; i++) {
      const first = pageIndices[i] * this.tokensPerPage;
      for (let t = 0; t < this.tokensPerPage; t++) out[i * this.tokensPerPage + t] = first + t;
    }
    return out;
  }
}
