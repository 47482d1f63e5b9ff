/**
 * The op list a batch takes (`Endpoint.read`/`write`): per op its remote offset, the index of its
 * local region, the offset there and the length, OP_FIELDS numbers each. One place writes that
 * layout; callers say what each op is. Reusable: `clear()` and fill again.
 */
import { OP_FIELDS } from './types.js';

export class OpList {
  readonly ops: Float64Array;
  /** Ops written so far (what a batch call takes as its count). */
  count = 0;

  constructor(readonly capacity: number) {
    this.ops = new Float64Array(capacity * OP_FIELDS);
  }

  clear(): this {
    this.count = 0;
    return this;
  }

  /** Writes op `index` (0-based; the list grows to cover it). */
  set(index: number, remoteOffset: number, localIndex: number, localOffset: number, length: number): void {
    const o = index * OP_FIELDS;
    const ops = this.ops;
    ops[o] = remoteOffset;
    ops[o + 1] = localIndex;
    ops[o + 2] = localOffset;
    ops[o + 3] = length;
    if (index >= this.count) this.count = index + 1;
  }

  /** Appends an op; returns its index. */
  push(remoteOffset: number, localIndex: number, localOffset: number, length: number): number {
    const index = this.count;
    this.set(index, remoteOffset, localIndex, localOffset, length);
    return index;
  }
}
