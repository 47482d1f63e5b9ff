/**
 * PEAK selection: per op group, the ok row with the highest sustained throughput. Like the
 * original there is no latency-SLO constraint (PEAK is what the closed loop sustains), ties go to
 * the first row, and rows with nothing measured never peak. Unlike the original the mark is the
 * typed `peak` field, not text appended to `note` (renderers show it).
 */
import type { Row } from './types.js';

/** The figure PEAK compares: pages/s for HiCache ops, payload GB/s for data-plane rows. */
export type PeakKey = 'pages_per_s' | 'throughput_gbps';

/**
 * get/set/exists rows (hicache-*, store paths) compare pages_per_s — exists rows move no payload,
 * so GB/s would be 0 there; read and unlabelled rows (micro, Mooncake) compare throughput_gbps.
 */
export function peakKey(row: Pick<Row, 'op'>): PeakKey {
  return row.op === 'get' || row.op === 'set' || row.op === 'exists' ? 'pages_per_s' : 'throughput_gbps';
}

/** Rows compete only within the same system, path and op. */
export function peakGroup(row: Pick<Row, 'system' | 'path' | 'op'>): string {
  return `${row.system}\u0000${row.path}\u0000${row.op}`;
}

function eligible(row: Row): boolean {
  const v = row[peakKey(row)];
  return row.ok && row.phase !== 'latency-baseline' && Number.isFinite(v) && v > 0;
}

/**
 * Returns deep copies (the input is not mutated) in the same order, with `peak` true on the
 * winner of each group and false everywhere else (any earlier mark is cleared).
 */
export function markPeak(rows: readonly Row[]): Row[] {
  const best = new Map<string, number>();
  rows.forEach((row, i) => {
    if (!eligible(row)) return;
    const g = peakGroup(row);
    const cur = best.get(g);
    // Strictly greater: a tie keeps the earlier row.
    if (cur === undefined || row[peakKey(row)] > rows[cur][peakKey(rows[cur])]) best.set(g, i);
  });
  const winners = new Set(best.values());
  return rows.map((row, i) => ({ ...structuredClone(row), peak: winners.has(i) }));
}
