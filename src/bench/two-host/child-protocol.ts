/**
 * The drive parent <-> child protocol for `--processes N`: one JSON object per line, parent to
 * child on stdin, child to parent on stdout (child logs go to stderr).
 *
 *   child  -> hello                       its node joined and checked serve; ready for rows
 *   parent -> run {row}                   start row `row` (connect its workers)
 *   child  -> ready {row}                 every worker connected; waiting for the start time
 *   parent -> go {row, at}                all children are ready: start the warmup at wall time `at` (ms)
 *   parent -> abort {row, reason}         another child failed: give up this row
 *   child  -> progress {row, p}           live progress (throttled by the row engine)
 *   child  -> result {row, result, startedAtMs}   the row, and the wall time its warmup started
 *   parent -> stop                        Ctrl-C: end the current window early, keep what was measured
 *   child  -> error {message}             the child could not start (its node failed to open)
 * stdin closing means: close the node and exit.
 */
import type { RowProgress } from '../engine/row.js';
import type { Row } from '../report/types.js';

export type ParentMessage =
  | { t: 'run'; row: number }
  | { t: 'go'; row: number; at: number }
  | { t: 'abort'; row: number; reason: string }
  | { t: 'stop' };

export type ChildMessage =
  | { t: 'hello'; nodeId: string; pid: number }
  | { t: 'ready'; row: number }
  | { t: 'progress'; row: number; p: RowProgress }
  | { t: 'result'; row: number; result: Row; startedAtMs: number | null }
  | { t: 'error'; message: string };

const CHILD_TYPES = new Set(['hello', 'ready', 'progress', 'result', 'error']);
const PARENT_TYPES = new Set(['run', 'go', 'abort', 'stop']);

function parse(line: string, types: Set<string>): Record<string, unknown> | null {
  try {
    const v: unknown = JSON.parse(line);
    if (typeof v !== 'object' || v === null || !types.has(String((v as { t?: unknown }).t))) return null;
    return v as Record<string, unknown>;
  } catch {
    return null;
  }
}

/** A child's line as a message, or null if it is not one (stray output). */
export function parseChildMessage(line: string): ChildMessage | null {
  return parse(line, CHILD_TYPES) as ChildMessage | null;
}

export function parseParentMessage(line: string): ParentMessage | null {
  return parse(line, PARENT_TYPES) as ParentMessage | null;
}

export function encode(msg: ParentMessage | ChildMessage): string {
  return `${JSON.stringify(msg)}\n`;
}

/** Wall-clock ms with sub-ms precision (all processes of one host share the clock). */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}
