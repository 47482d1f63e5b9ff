/**
 * A Prometheus counter or gauge whose values are read when Prometheus scrapes (prom-client's
 * `collect()`), so the code it describes keeps plain integers and pays nothing per call.
 */
import { Counter, Gauge, type Registry } from 'prom-client';

/** Reports one value (with its labels, when the metric has label names). */
export type Emit = (value: number, labels?: Record<string, string>) => void;

export function pulledMetric(kind: 'counter' | 'gauge', registry: Registry, name: string, help: string, labelNames: string[], read: (emit: Emit) => void): void {
  const registers = [registry];
  if (kind === 'counter') {
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        read((value, labels) => (labels ? this.inc(labels, value) : this.inc(value)));
      },
    });
  } else {
    new Gauge({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        read((value, labels) => (labels ? this.set(labels, value) : this.set(value)));
      },
    });
  }
}
