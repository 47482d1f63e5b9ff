/**
 * Statistics across repeated trials of one row: median, sample standard deviation, coefficient
 * of variation and a 95% confidence interval of the mean (Student's t, two-sided: with 3..10
 * trials the normal 1.96 would understate the interval 2.2x..1.1x), and for positive figures the
 * same on log values (ci95Positive: never below zero). Pure functions on plain
 * arrays; null whenever a figure is not defined (fewer than 2 samples, a zero mean).
 */
import { InvalidArgumentError } from '../../errors.js';

/** The median (the mean of the middle two for an even count); null for no sample. */
export function median(xs: readonly number[]): number | null {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function mean(xs: readonly number[]): number | null {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/** Sample standard deviation (n - 1); null below 2 samples. */
export function stdev(xs: readonly number[]): number | null {
  if (xs.length < 2) return null;
  const m = mean(xs)!;
  return Math.sqrt(xs.reduce((s, x) => s + (x - m) ** 2, 0) / (xs.length - 1));
}

/** Coefficient of variation, stdev / mean; null below 2 samples or at a zero mean. */
export function cv(xs: readonly number[]): number | null {
  const s = stdev(xs);
  const m = mean(xs);
  return s === null || m === null || m === 0 ? null : s / Math.abs(m);
}

/** Student's t, 0.975 quantile, for 1..30 degrees of freedom (then the normal 1.96 is within 4%). */
const T975 = [
  12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064,
  2.06, 2.056, 2.052, 2.048, 2.045, 2.042,
];

export function t975(df: number): number {
  if (!Number.isInteger(df) || df < 1) throw new InvalidArgumentError(`t975: degrees of freedom must be a positive integer, got ${df}`);
  return df <= T975.length ? T975[df - 1] : df <= 60 ? 2.0 : 1.96;
}

/** The 95% confidence interval of the mean, [lo, hi]; null below 2 samples. */
export function ci95(xs: readonly number[]): [number, number] | null {
  const s = stdev(xs);
  if (s === null) return null;
  const m = mean(xs)!;
  const half = (t975(xs.length - 1) * s) / Math.sqrt(xs.length);
  return [m - half, m + half];
}

/**
 * The 95% confidence interval of a positive quantity (a rate, a latency): Student's t on the
 * logarithms, mapped back, i.e. an interval of the geometric mean that is never below zero and
 * widens upwards as such figures do. The mean ± t·s interval of 3 noisy trials went negative
 * ([-2840, 23499] pages/s). A sample at or below zero (a trial that moved nothing) has no
 * logarithm: then the plain interval, clipped at zero. Null below 2 samples.
 */
export function ci95Positive(xs: readonly number[]): [number, number] | null {
  if (xs.length < 2) return null;
  if (xs.some((x) => !(x > 0))) {
    const c = ci95(xs);
    return c ? [Math.max(0, c[0]), c[1]] : null;
  }
  const logs = xs.map(Math.log);
  const c = ci95(logs)!;
  return [Math.exp(c[0]), Math.exp(c[1])];
}
