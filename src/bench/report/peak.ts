/**
 * PEAK selection: per group (system, path, op, block size and the measure compared), the ok row
 * with the highest sustained throughput. There is no latency-SLO constraint (PEAK is what the
 * closed loop sustains), ties go to the first row, and rows with nothing measured, failed rows,
 * aborted rows and latency-baseline rows never peak. Only sweeps (and compare's per-block-size
 * points) are marked: the latency and throughput modes call nothing here. The mark is the typed
 * `peak` field, not text appended to `note` (renderers show it).
 */
import type { Row } from './types.js';

/** The figure PEAK compares: pages/s for HiCache ops, payload GB/s for data-plane rows. */
export type PeakKey = 'pages_per_s' | 'throughput_gbps';

/**
 * get/set/exists rows (hicache-*, store paths) compare pages_per_s — exists rows move no payload,
 * so GB/s would be 0 there; read and unlabelled rows (micro, Mooncake) compare throughput_gbps.
 */
export function peakKey(row: Pick<Row, 'op'>): PeakKey {
  return row.op === 'get' || row.op === 'set' || row.op === 'exists' || row.op === 'prefetch' ? 'pages_per_s' : 'throughput_gbps';
}

/**
 * Rows compete only within the same system, path, op, block size and measure: a PEAK never picks
 * between two block sizes, nor between a GB/s and a pages/s figure.
 */
export function peakGroup(row: Pick<Row, 'system' | 'path' | 'op' | 'block_size'>): string {
  return [row.system, row.path, row.op, row.block_size, peakKey(row)].join('\u0000');
}

/** A row that may be PEAK: ok, fully measured (not aborted), not a latency baseline, a positive figure. */
export function peakEligible(row: Row): boolean {
  const v = row[peakKey(row)];
  return row.ok && row.aborted !== true && row.phase !== 'latency-baseline' && Number.isFinite(v) && v > 0;
}

/** Modes whose rows are single points, not a sweep: they have no PEAK. */
export const MODES_WITHOUT_PEAK: readonly string[] = ['latency', 'throughput'];

/** markPeak for a run of `mode`: rows unmarked (peak false) in latency and throughput modes. */
export function markPeakFor(mode: string, rows: readonly Row[]): Row[] {
  return MODES_WITHOUT_PEAK.includes(mode) ? rows.map((row) => ({ ...structuredClone(row), peak: false })) : markPeak(rows);
}

/**
 * Returns deep copies (the input is not mutated) in the same order, with `peak` true on the
 * winner of each group and false everywhere else (any earlier mark is cleared).
 */
export function markPeak(rows: readonly Row[]): Row[] {
  const best = new Map<string, number>();
  rows.forEach((row, i) => {
    if (!peakEligible(row)) return;
    const g = peakGroup(row);
    const cur = best.get(g);
    // Strictly greater: a tie keeps the earlier row.
    if (cur === undefined || row[peakKey(row)] > rows[cur][peakKey(rows[cur])]) best.set(g, i);
  });
  const winners = new Set(best.values());
  return rows.map((row, i) => ({ ...structuredClone(row), peak: winners.has(i) }));
}

/** The 95% CI of a row's PEAK measure, when it has one (repeated trials). */
export function peakInterval(row: Row): [number, number] | null {
  return peakKey(row) === 'pages_per_s' ? row.pages_per_s_ci95 : row.throughput_gbps_ci95;
}

/**
 * For each PEAK row whose 95% CI overlaps that of another eligible row of its group: those rows,
 * by concurrency ("x4 ≈ x2, x8 within noise"). The PEAK is then the highest median, but the run
 * cannot tell it from them. Rows without intervals (one trial) are not compared.
 */
export function peakTies(rows: readonly Row[]): Map<Row, Row[]> {
  const out = new Map<Row, Row[]>();
  for (const peak of rows) {
    if (!peak.peak) continue;
    const pi = peakInterval(peak);
    if (!pi) continue;
    const ties = rows.filter((r) => {
      if (r === peak || !peakEligible(r) || peakGroup(r) !== peakGroup(peak) || r.phase !== peak.phase) return false;
      const ri = peakInterval(r);
      return ri !== null && ri[0] <= pi[1] && pi[0] <= ri[1];
    });
    if (ties.length) out.set(peak, ties);
  }
  return out;
}

/** "x4 ≈ x2, x8 within noise": a PEAK and the rows its interval overlaps, by concurrency. */
export function peakTieText(peak: Row, ties: readonly Row[]): string {
  return `x${peak.threads} ≈ ${ties.map((r) => `x${r.threads}`).join(', ')} within noise`;
}
