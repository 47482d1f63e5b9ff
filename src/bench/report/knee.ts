/**
 * The knee of a sweep and the SLO peak, model-free.
 *
 * Knee rule (Kleinrock's "power", throughput / latency): walking the sweep in order of
 * concurrency, the knee is the last point before the first step where throughput grows by a
 * smaller factor than latency does, T[i+1]/T[i] <= L[i+1]/L[i] — i.e. the first local maximum of
 * T/L. Before it, more concurrency buys more throughput than it costs in latency; after it, it
 * buys latency. L is the row's median latency (lat_us_p50: robust, and defined from 2 calls). A
 * sweep whose power still grows at its last point has no knee in range (none is marked); a sweep
 * needs at least 3 measured points for a knee to be a turn rather than an end point.
 *
 * SLO peak: the eligible row (ok, not aborted, not a baseline) with the highest PEAK measure
 * whose p99 meets the SLO (lat_us_p99 <= --slo-p99); a row whose p99 is null (too few calls) does
 * not qualify.
 */
import { peakEligible, peakGroup, peakKey } from './peak.js';
import type { Row } from './types.js';

export interface CurvePoint {
  throughput: number;
  latency: number | null;
}

/** The knee's index in `points` (ordered by concurrency), or null when there is none in range. */
export function kneeIndex(points: readonly CurvePoint[]): number | null {
  if (points.length < 3) return null;
  for (let i = 0; i + 1 < points.length; i++) {
    const a = points[i];
    const b = points[i + 1];
    if (a.latency === null || b.latency === null || !(a.latency > 0) || !(a.throughput > 0)) return null;
    if (b.throughput / a.throughput <= b.latency / a.latency) return i;
  }
  return null;
}

/**
 * Returns copies with `knee` and `slo_peak` set on the rows of a sweep (phase 'sweep'): knee
 * true/false per the rule above (null outside sweeps); slo_peak true/false when an SLO is given,
 * else null.
 */
export function markKneeAndSlo(rows: readonly Row[], sloP99Us: number | null): Row[] {
  const out = rows.map((r) => ({ ...structuredClone(r), knee: r.phase === 'sweep' ? false : null, slo_peak: sloP99Us === null ? null : false }));
  const groups = new Map<string, number[]>();
  out.forEach((r, i) => {
    if (r.phase !== 'sweep' || !peakEligible(r)) return;
    const g = peakGroup(r);
    groups.set(g, [...(groups.get(g) ?? []), i]);
  });
  for (const idx of groups.values()) {
    // A closed-loop sweep in order of concurrency; an open-loop one (--rate-sweep) of offered rate.
    const x = (r: Row) => r.rate_offered ?? r.threads;
    const sorted = [...idx].sort((a, b) => x(out[a]) - x(out[b]));
    const k = kneeIndex(sorted.map((i) => ({ throughput: out[i][peakKey(out[i])], latency: out[i].lat_us_p50 })));
    if (k !== null) out[sorted[k]].knee = true;
  }
  if (sloP99Us !== null) {
    const best = new Map<string, number>();
    out.forEach((r, i) => {
      if (!peakEligible(r) || r.lat_us_p99 === null || r.lat_us_p99 > sloP99Us) return;
      const g = peakGroup(r);
      const cur = best.get(g);
      if (cur === undefined || r[peakKey(r)] > out[cur][peakKey(out[cur])]) best.set(g, i);
    });
    for (const i of best.values()) out[i].slo_peak = true;
  }
  return out;
}
