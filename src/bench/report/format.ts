/**
 * Number formatting shared by the metric builder and the renderers. Rounding goes through
 * `toFixed`, which rounds the exact binary value (like Python's round), so JSON figures and table
 * cells agree.
 */
import type { JsonValue } from './types.js';
import { InvalidArgumentError } from '../../errors.js';

/** `x` rounded to `dp` decimals; non-finite values come back as they are. */
export function round(x: number, dp: number): number {
  if (!Number.isFinite(x)) return x;
  const r = Number(x.toFixed(dp));
  return Object.is(r, -0) ? 0 : r;
}

/** `x` rounded to `dp`, or null when x is null/undefined/NaN/±Infinity. */
export function roundOrNull(x: number | null | undefined, dp: number): number | null {
  return x === null || x === undefined || !Number.isFinite(x) ? null : round(x, dp);
}

/** 1024-based B/KB/MB/GB; an integer when exact, else 1 dp (131072 → "128KB", 1536 → "1.5KB"). */
export function humanBytes(n: number): string {
  if (!Number.isFinite(n)) return '-';
  const units = ['B', 'KB', 'MB', 'GB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return Number.isInteger(v) ? `${v}${units[i]}` : `${v.toFixed(1)}${units[i]}`;
}

/** IEC sizes for tables: 131072 → "128 KiB", 1536 → "1.5 KiB", 512 → "512 B", 1048576 → "1 MiB". */
export function iecBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return Number.isInteger(v) ? `${v} ${units[i]}` : `${v.toFixed(1)} ${units[i]}`;
}

/** 1000-based ""/K/M/G; 2 dp unless whole (500 → "500", 32000 → "32K", 1234.5 → "1.23K"). */
export function humanCount(x: number): string {
  if (!Number.isFinite(x)) return '-';
  const units = ['', 'K', 'M', 'G'];
  let v = x;
  let i = 0;
  // Move up a unit when the 2-dp text would read "1000.00" (999999.9 → "1.00M", not "1000.00K").
  while (i < units.length - 1 && Math.abs(Number(v.toFixed(2))) >= 1000) {
    v /= 1000;
    i++;
  }
  return Number.isInteger(v) ? `${v}${units[i]}` : `${v.toFixed(2)}${units[i]}`;
}

/** `dp` decimals, or "-" for null/non-finite. */
export function fixed(x: number | null | undefined, dp: number): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(dp);
}

/** Rounded integer with thousands separators ("35,165"), or "-". */
export function thousands(x: number | null | undefined): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '-';
  const s = Math.abs(Math.round(x)).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return Math.round(x) < 0 ? `-${s}` : s;
}

/** UTC ISO-8601 to the second: 2026-11-24T23:05:26Z. */
export function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** UTC %Y%m%d-%H%M%S, the artifact file-name timestamp. */
export function fileTimestamp(date: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${p(date.getUTCFullYear(), 4)}${p(date.getUTCMonth() + 1)}${p(date.getUTCDate())}-` +
    `${p(date.getUTCHours())}${p(date.getUTCMinutes())}${p(date.getUTCSeconds())}`
  );
}

/**
 * A deep copy that JSON can carry losslessly: NaN/±Infinity become null (JSON has no NaN; the
 * original wrote a bare `NaN`), bigint becomes a number, undefined/functions are dropped from
 * objects (null in arrays), and `toJSON` (e.g. Date) is honoured.
 */
export function toJsonSafe(value: unknown): JsonValue {
  return safe(value, new Set());
}

function safe(value: unknown, seen: Set<object>): JsonValue {
  switch (typeof value) {
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return Number(value);
    case 'string':
    case 'boolean':
      return value;
    case 'undefined':
    case 'function':
    case 'symbol':
      return null;
  }
  if (value === null) return null;
  const obj = value as object & { toJSON?: () => unknown };
  if (typeof obj.toJSON === 'function') return safe(obj.toJSON(), seen);
  if (seen.has(obj)) throw new InvalidArgumentError('toJsonSafe: circular structure');
  seen.add(obj);
  try {
    if (Array.isArray(obj)) return obj.map((v: unknown) => safe(v, seen));
    const out: { [key: string]: JsonValue } = {};
    for (const [k, v] of Object.entries(obj)) {
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      out[k] = safe(v, seen);
    }
    return out;
  } finally {
    seen.delete(obj);
  }
}
