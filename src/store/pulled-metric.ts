/**
 * A Prometheus counter or gauge whose values are read when Prometheus scrapes (prom-client's
 * `collect()`), so the code it describes keeps plain integers and pays nothing per call.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** Reports one value (with its labels, when the metric has label names). */
export type Emit = (value: number, labels?: Record<string, string>) => void;

export function pulledMetric(kind: 'counter' | 'gauge', registry: Registry, name: string, help: string, labelNames: string[], read: (emit: Emit) => void): void {
  // One options object for both kinds; only how a value is reported differs (inc vs set).
  const options = <M extends Counter | Gauge>(report: (metric: M, value: number, labels?: Record<string, string>) => void) => ({
    name,
    help,
    labelNames,
    registers: [registry],
    collect(this: M) {
      this.reset();
      read((value, labels) => report(this, value, labels));
    },
  });
  if (kind === 'counter') new Counter(options<Counter>((m, v, l) => (l ? m.inc(l, v) : m.inc(v))));
  else new Gauge(options<Gauge>((m, v, l) => (l ? m.set(l, v) : m.set(v))));
}
