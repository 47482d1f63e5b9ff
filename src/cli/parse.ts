/**
 * Value parsers for CLI flags. Each throws UsageError with a one-line message that names the flag
 * and quotes the offending text (JSON-quoted, so control characters cannot break the line).
 */
import { PeercacheError } from '../errors.js';

/** A mistake in how the command was invoked; the message is meant for the user as it is. */
export class UsageError extends PeercacheError {
  override readonly name = 'UsageError';
  constructor(message: string) {
    super('ERR_USAGE', message);
  }
}

const q = (text: string): string => JSON.stringify(text);
const fail = (flag: string, text: string, what: string): never => {
  throw new UsageError(`${flag}: ${q(text)} ${what}`);
};

const INT = /^\d+$/;
const DECIMAL = /^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

export interface IntRange {
  /** Default 1. */
  min?: number;
  /** Default Number.MAX_SAFE_INTEGER. */
  max?: number;
}

/** A decimal integer (digits only: no sign, no exponent, no fraction) within [min, max]. */
export function parsePositiveInt(flag: string, text: string, range: IntRange = {}): number {
  const min = range.min ?? 1;
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  const t = text.trim();
  if (!INT.test(t)) return fail(flag, text, min >= 1 ? 'is not a positive integer' : 'is not a non-negative integer');
  const n = Number(t);
  if (!Number.isSafeInteger(n)) return fail(flag, text, 'is too large');
  if (n < min) return fail(flag, text, min === 1 ? 'is not a positive integer' : `must be at least ${min}`);
  if (n > max) return fail(flag, text, `must be at most ${max}`);
  return n;
}

/** A finite decimal number >= 0 (e.g. 0, 2.5, 1e-3), optionally <= max. */
export function parseNonNegativeNumber(flag: string, text: string, range: { max?: number } = {}): number {
  const t = text.trim();
  const n = DECIMAL.test(t) ? Number(t) : NaN;
  if (!Number.isFinite(n)) return fail(flag, text, 'is not a non-negative number');
  if (range.max !== undefined && n > range.max) return fail(flag, text, `must be at most ${range.max}`);
  return n;
}

/** Seconds > 0: a number, optionally suffixed "s" or "ms" (10, 2.5, 10s, 500ms). */
export function parseSeconds(flag: string, text: string, range: { min?: number; max?: number } = {}): number {
  const m = /^(.*?)(ms|s)?$/i.exec(text.trim());
  const body = m?.[1] ?? '';
  const n = DECIMAL.test(body) ? Number(body) / (m?.[2]?.toLowerCase() === 'ms' ? 1000 : 1) : NaN;
  if (!Number.isFinite(n)) return fail(flag, text, 'is not a duration in seconds (e.g. 10, 2.5, 500ms)');
  if (n <= 0) return fail(flag, text, 'must be more than 0 seconds');
  if (range.max !== undefined && n > range.max) return fail(flag, text, `must be at most ${range.max} seconds`);
  if (range.min !== undefined && n < range.min) return fail(flag, text, `must be at least ${range.min < 1 ? `${range.min * 1000} ms` : `${range.min} seconds`}`);
  return n;
}

/** One of `choices` (case-insensitive); returns the choice as spelled in `choices`. */
export function parseEnum<T extends string>(flag: string, text: string, choices: readonly T[]): T {
  const t = text.trim().toLowerCase();
  const hit = choices.find((c) => c.toLowerCase() === t);
  if (hit === undefined) return fail(flag, text, `is not one of ${choices.join(', ')}`);
  return hit;
}

const SIZE = /^((?:\d+(?:\.\d*)?|\.\d+))\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i;
const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/**
 * Bytes: an integer or a number with a 1024-based suffix k/kb/m/mb/g/gb (also kib/mib/gib, b),
 * case-insensitive. A fraction is accepted only if it gives whole bytes (1.5m yes, 1.3k no). > 0.
 */
export function parseSize(flag: string, text: string): number {
  const m = SIZE.exec(text.trim());
  if (!m) return fail(flag, text, 'is not a size (bytes, or a number with k/m/g, e.g. 4096, 128k, 1.5m)');
  const unit = (m[2] ?? '').toLowerCase().charAt(0);
  const n = Number(m[1]) * SIZE_UNITS[unit === 'b' ? 'b' : unit];
  if (!Number.isFinite(n) || !Number.isInteger(n)) return fail(flag, text, 'is not a whole number of bytes');
  if (n <= 0) return fail(flag, text, 'must be more than 0 bytes');
  if (!Number.isSafeInteger(n)) return fail(flag, text, 'is too large');
  return n;
}

/** Comma-separated entries: no empty entry, no duplicate (after `key`), at most `cap` entries. */
function splitList(flag: string, text: string, what: string): string[] {
  const t = text.trim();
  if (!t) return fail(flag, text, `is empty: give a comma-separated list of ${what}`);
  const items = t.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) return fail(flag, text, `has an empty entry: give a comma-separated list of ${what}`);
  return items;
}

function noDuplicates(flag: string, text: string, values: readonly (number | string)[], show: (v: number | string) => string = String): void {
  const seen = new Set<number | string>();
  for (const v of values) {
    if (seen.has(v)) fail(flag, text, `lists ${show(v)} twice`);
    seen.add(v);
  }
}

export const MAX_LIST_ENTRIES = 1024;

/** `--block-sizes 4k,16k,64k,256k,1m`: distinct sizes (1k and 1024 count as the same). */
export function parseSizeList(flag: string, text: string): number[] {
  const items = splitList(flag, text, 'sizes (e.g. 4k,64k,1m)');
  if (items.length > MAX_LIST_ENTRIES) return fail(flag, text, `has ${items.length} entries; at most ${MAX_LIST_ENTRIES}`);
  const values = items.map((item) => {
    try {
      return parseSize(flag, item);
    } catch (e) {
      if (e instanceof UsageError) return fail(flag, text, `is not a list of sizes: ${e.message.slice(flag.length + 2)}`);
      throw e;
    }
  });
  noDuplicates(flag, text, values, (v) => `${v} bytes`);
  return values;
}

/** Comma-separated names (e.g. `--devices mlx5_0,mlx5_1`): non-empty, distinct, no whitespace. */
export function parseNameList(flag: string, text: string): string[] {
  const items = splitList(flag, text, 'names');
  const bad = items.find((s) => /\s/.test(s));
  if (bad !== undefined) return fail(flag, text, `has an entry with whitespace: ${q(bad)}`);
  if (items.length > MAX_LIST_ENTRIES) return fail(flag, text, `has ${items.length} entries; at most ${MAX_LIST_ENTRIES}`);
  noDuplicates(flag, text, items, (v) => q(String(v)));
  return items;
}

/** A file-name suffix: [A-Za-z0-9._-], 1..64 characters, not starting with "." or "-". */
export function parseTag(flag: string, text: string): string {
  const t = text.trim();
  if (!/^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$/.test(t)) {
    return fail(flag, text, 'is not a valid tag: use 1-64 of A-Z a-z 0-9 . _ - (not starting with . or -)');
  }
  return t;
}

export interface ConcurrencyLimits {
  /** Most entries after expansion; default 1024. */
  maxEntries?: number;
  /** Largest value; default 4096. */
  maxValue?: number;
}

interface Progression {
  /** "+2" or "×2" */
  label: string;
  next: (v: number) => number;
}

/** The readings the leading terms allow: arithmetic (step > 0) and/or geometric (integer ratio >= 2). */
function progressions(first: readonly number[]): Progression[] {
  const d = first[1] - first[0];
  const r = first[1] / first[0];
  const out: Progression[] = [];
  if (d > 0 && first.every((v, i) => i === 0 || v - first[i - 1] === d)) out.push({ label: `+${d}`, next: (v) => v + d });
  if (Number.isInteger(r) && r >= 2 && first.every((v, i) => i === 0 || v === first[i - 1] * r)) out.push({ label: `×${r}`, next: (v) => v * r });
  return out;
}

/** Continues `first` up to `last`; `landed` says whether `last` itself was hit. */
function run(first: readonly number[], last: number, p: Progression): { values: number[]; landed: boolean } {
  const values = [...first];
  let v = first[first.length - 1];
  while (v < last) {
    v = p.next(v);
    values.push(v);
  }
  return { values, landed: v === last };
}

/**
 * Concurrency levels: `1,2,4,8` (any order, distinct), or a progression with an ellipsis
 * (`...`, `..` or `…`) before the last term: `1,2,4,...,64` (×2), `2,4,6,...,16` (+2). The terms
 * before the ellipsis (at least 2) must be arithmetic (step > 0) or geometric (integer ratio >= 2),
 * and the progression must land exactly on the last term. With only 2 terms where both readings
 * land (`1,2,...,8`), the list is ambiguous and rejected: a third term says which.
 */
export function parseConcurrencies(flag: string, text: string, limits: ConcurrencyLimits = {}): number[] {
  const maxEntries = limits.maxEntries ?? MAX_LIST_ENTRIES;
  const maxValue = limits.maxValue ?? 4096;
  const normalized = text.replace(/\u2026/g, '...');
  const items = splitList(flag, normalized, 'positive integers (e.g. 1,2,4,8 or 1,2,4,...,64)');
  const isEllipsis = (s: string): boolean => /^\.{2,3}$/.test(s);
  const dots = items.filter(isEllipsis).length;
  if (items.some((s) => !isEllipsis(s) && !INT.test(s))) return fail(flag, text, 'is not a list of positive integers');
  const nums = (list: string[]): number[] => list.map(Number);
  const check = (values: number[]): number[] => {
    const zero = values.find((v) => v <= 0);
    if (zero !== undefined) fail(flag, text, `is not a list of positive integers (${zero} is not positive)`);
    const big = values.find((v) => v > maxValue);
    if (big !== undefined) fail(flag, text, `has ${big}; concurrency is at most ${maxValue}`);
    return values;
  };

  let values: number[];
  if (dots === 0) {
    values = check(nums(items));
  } else {
    const at = items.findIndex(isEllipsis);
    if (dots > 1 || at !== items.length - 2) {
      return fail(flag, text, 'has a misplaced "...": write it once, before the last term (e.g. 1,2,4,...,64)');
    }
    if (at < 2) return fail(flag, text, 'is ambiguous: give at least 2 terms before "..." (e.g. 1,2,4,...,64 or 1,2,3,...,8)');
    const first = check(nums(items.slice(0, at)));
    const [last] = check(nums(items.slice(at + 1)));
    const tail = first[first.length - 1];
    if (last <= tail) return fail(flag, text, `ends at ${last}, which is not beyond ${tail}`);
    const readings = progressions(first);
    if (readings.length === 0) {
      return fail(flag, text, `is not a progression: ${first.join(',')} is neither arithmetic (+step) nor geometric (×ratio)`);
    }
    const runs = readings.map((p) => ({ p, ...run(first, last, p) }));
    const landed = runs.filter((x) => x.landed);
    if (landed.length === 0) {
      const { p, values: v } = runs[0];
      const near = v.length >= 2 ? `${v[v.length - 2]},${v[v.length - 1]}` : `${v[v.length - 1]}`;
      return fail(flag, text, `is not a progression that reaches ${last} exactly (${p.label} gives ...,${near})`);
    }
    // Both readings land only with 2 leading terms (a third term separates +step from ×ratio).
    if (landed.length > 1) {
      const alts = landed.map((x) => `${x.values.slice(0, 3).join(',')},...,${last}`);
      return fail(flag, text, `is ambiguous: write a third term (${alts.join(' or ')})`);
    }
    values = landed[0].values;
  }
  if (values.length > maxEntries) return fail(flag, text, `has ${values.length} entries; at most ${maxEntries}`);
  noDuplicates(flag, text, values);
  return values;
}
