/**
 * One row from N repeated trials (`--repeat N`): each trial is a full window of its own; the row
 * reports the median of the trials and how much they disagree.
 *
 * - Rates (throughput_gbps, pages_per_s, ops_per_s, tokens_per_s): the median of the trials'.
 * - Latency percentiles and the mean: the median of the trials' (null if any trial's is null, e.g.
 *   a trial too short for its p999); lat_us_max: the largest of any trial.
 * - Counters (calls, pages, ops, bytes, errors) and duration_s: summed over the trials; the
 *   histogram: every trial's samples merged; intervals (--interval): every trial's, in run order,
 *   each with its trial number.
 * - throughput_gbps_ci95, pages_per_s_ci95, lat_us_p99_ci95: the 95% confidence interval over
 *   trials, computed on log values (Student's t; stats.ts ci95Positive: a rate's interval never
 *   goes below zero), null below 2 trials.
 * - cv: coefficient of variation of the row's PEAK measure (pages_per_s for get/set/exists, else
 *   throughput_gbps) over trials; noisy: cv above the threshold (default 5%).
 * PEAK and ratios then compare medians, since those are the row's rates.
 */
import { SharedHistogram } from '../histogram.js';
import { round } from './format.js';
import { peakKey } from './peak.js';
import { ci95Positive, cv, median } from './stats.js';
import type { Row } from './types.js';
import { InvalidArgumentError } from '../../errors.js';

/** Default CV above which a row is noisy: 5%. */
export const DEFAULT_NOISY_CV = 0.05;

type Rate = 'throughput_gbps' | 'pages_per_s' | 'ops_per_s' | 'tokens_per_s';
type Lat =
  | 'lat_us_mean' | 'lat_us_p50' | 'lat_us_p90' | 'lat_us_p95' | 'lat_us_p99' | 'lat_us_p999'
  | 'response_lat_us_p50' | 'response_lat_us_p90' | 'response_lat_us_p99' | 'response_lat_us_p999' | 'rate_achieved';
const RATE_DP: Record<Rate, number> = { throughput_gbps: 4, pages_per_s: 1, ops_per_s: 1, tokens_per_s: 1 };
const LATS: Lat[] = [
  'lat_us_mean', 'lat_us_p50', 'lat_us_p90', 'lat_us_p95', 'lat_us_p99', 'lat_us_p999',
  'response_lat_us_p50', 'response_lat_us_p90', 'response_lat_us_p99', 'response_lat_us_p999', 'rate_achieved',
];

const ciOf = (xs: number[], dp: number): [number, number] | null => {
  const c = ci95Positive(xs);
  return c ? [round(c[0], dp), round(c[1], dp)] : null;
};

/** The row's spread fields for one trial (what every single-window row carries). */
export function trialFields(row: Row, noisyCv = DEFAULT_NOISY_CV): Pick<Row, 'trials' | 'throughput_gbps_ci95' | 'pages_per_s_ci95' | 'lat_us_p99_ci95' | 'cv' | 'noisy'> {
  return combineSpread([row], noisyCv);
}

function combineSpread(trials: readonly Row[], noisyCv: number) {
  const p99s = trials.map((t) => t.lat_us_p99);
  const c = cv(trials.map((t) => t[peakKey(t)]));
  return {
    trials: trials.length,
    throughput_gbps_ci95: ciOf(trials.map((t) => t.throughput_gbps), 4),
    pages_per_s_ci95: ciOf(trials.map((t) => t.pages_per_s), 1),
    lat_us_p99_ci95: p99s.every((p): p is number => p !== null) ? ciOf(p99s, 2) : null,
    cv: c === null ? null : round(c, 4),
    noisy: c === null ? null : c > noisyCv,
  };
}

/**
 * The row of N trials (in run order). A failed trial fails the row (its note says which); an
 * aborted trial makes the row aborted (never PEAK, never in a ratio).
 */
export function combineTrials(trials: readonly Row[], noisyCv = DEFAULT_NOISY_CV): Row {
  if (!trials.length) throw new InvalidArgumentError('combineTrials: no trial');
  const n = trials.length;
  const bad = trials.findIndex((t) => !t.ok);
  if (bad >= 0) {
    const t = trials[bad];
    return { ...structuredClone(t), note: `${t.note}; trial ${bad + 1} of ${n} ${t.aborted ? 'aborted' : 'failed'}`, trials: n, throughput_gbps_ci95: null, pages_per_s_ci95: null, lat_us_p99_ci95: null, cv: null, noisy: null };
  }
  const row: Row = structuredClone(trials[0]);
  if (n === 1) return { ...row, ...combineSpread(trials, noisyCv) };
  const sum = (k: 'calls' | 'pages' | 'pages_requested' | 'ops' | 'bytes_total' | 'errors') => trials.reduce((s, t) => s + t[k], 0);
  for (const k of ['calls', 'pages', 'pages_requested', 'ops', 'bytes_total', 'errors'] as const) row[k] = sum(k);
  row.duration_s = round(trials.reduce((s, t) => s + t.duration_s, 0), 3);
  for (const k of Object.keys(RATE_DP) as Rate[]) row[k] = round(median(trials.map((t) => t[k]))!, RATE_DP[k]);
  for (const k of LATS) {
    const xs = trials.map((t) => t[k]);
    row[k] = xs.every((x): x is number => x !== null) ? round(median(xs)!, 2) : null;
  }
  const maxes = trials.map((t) => t.lat_us_max).filter((x): x is number => x !== null);
  row.lat_us_max = maxes.length ? Math.max(...maxes) : null;
  const rmax = trials.map((t) => t.response_lat_us_max).filter((x): x is number => x !== null);
  row.response_lat_us_max = rmax.length ? Math.max(...rmax) : null;
  const rh = trials.filter((t) => t.response_histogram !== null).map((t) => SharedHistogram.decode(t.response_histogram!));
  row.response_histogram = rh.length === n ? SharedHistogram.merge(rh).encode() : null;
  if (row.hit_rate !== null) row.hit_rate = row.pages_requested > 0 ? Math.min(1, row.pages / row.pages_requested) : null;
  const cpus = trials.map((t) => t.cpu_client_pct);
  row.cpu_client_pct = cpus.every((c): c is number => c !== null) ? round(median(cpus)!, 1) : null;
  const rss = trials.map((t) => t.rss_per_worker_bytes).filter((x): x is number => x !== null);
  row.rss_per_worker_bytes = rss.length ? Math.max(...rss) : null;
  row.transports = [...new Set(trials.flatMap((t) => t.transports))];
  const hists = trials.filter((t) => t.histogram !== null).map((t) => SharedHistogram.decode(t.histogram!));
  row.histogram = hists.length === n ? SharedHistogram.merge(hists).encode() : null;
  row.aborted = trials.some((t) => t.aborted);
  row.intervals = trials.every((t) => t.intervals === null) ? null : trials.flatMap((t, i) => (t.intervals ?? []).map((iv) => ({ ...iv, trial: i + 1 })));
  const opt = (k: 'pages_verified' | 'wrong_pages') => (trials.every((t) => t[k] !== null) ? trials.reduce((s, t) => s + t[k]!, 0) : null);
  row.pages_verified = opt('pages_verified');
  row.wrong_pages = opt('wrong_pages');
  Object.assign(row, combineSpread(trials, noisyCv));
  const spread = row.cv === null ? '' : ` (cv ${(row.cv * 100).toFixed(1)}%${row.noisy ? ', NOISY' : ''})`;
  row.note = [trials[0].note, `median of ${n} trials${spread}`].filter(Boolean).join('; ');
  return row;
}
