/**
 * `peercache-bench report --merge x.json y.json …`: runs that measured the same configuration at
 * the same time (e.g. drive processes on several hosts against one serve node) become one report.
 * Each row is merged exactly: counters added, the embedded HDR histograms merged (percentiles of
 * the union of samples, not averaged percentiles), the rate over the longest window (the runs'
 * own start times are not in the artifacts), threads added. The same merge as --processes N
 * (mergeProcessRows).
 */
import { mergeProcessRows } from '../two-host/merge.js';
import { differingFields, ReportInputError } from './load.js';
import { CONFIG_FIELDS, rowsByKey } from './match.js';
import { collectManifest } from './manifest.js';
import { markPeakFor } from './peak.js';
import type { Report, Row } from './types.js';

export interface NamedReport {
  name: string;
  report: Report;
}

function tokensPerPage(report: Report, row: Row): number {
  if (typeof report.meta.tokens_per_page === 'number') return report.meta.tokens_per_page;
  return row.pages_per_s > 0 ? Math.round(row.tokens_per_s / row.pages_per_s) : 0;
}

function components(report: Report, row: Row): number {
  if (row.pages > 0 && row.op !== 'exists') return Math.max(1, Math.round(row.ops / row.pages));
  return report.meta.layout === 'mha' ? 2 : 1;
}

/** The shared part of a row's note (the row notes of the inputs may add per-run parts). */
function baseNote(row: Row): string {
  return row.note.split('; ')[0] ?? '';
}

export function mergeReports(inputs: readonly NamedReport[]): Report {
  if (inputs.length < 2) throw new ReportInputError('--merge needs at least two reports');
  const [first, ...rest] = inputs;
  for (const other of rest) {
    const differs = differingFields(first.report.meta, other.report.meta, CONFIG_FIELDS);
    if (differs.length) throw new ReportInputError(`cannot merge ${first.name} and ${other.name}: they differ in ${differs.join(', ')}`);
  }
  const keyed = inputs.map((i) => rowsByKey(i.report));
  const firstKeys = [...keyed[0].keys()];
  inputs.forEach((input, i) => {
    const keys = [...keyed[i].keys()];
    const missing = firstKeys.filter((k) => !keyed[i].has(k));
    const extra = keys.filter((k) => !keyed[0].has(k));
    if (missing.length || extra.length) {
      throw new ReportInputError(
        `cannot merge ${first.name} and ${input.name}: rows differ (${[...missing.map((k) => `only in ${first.name}: ${k}`), ...extra.map((k) => `only in ${input.name}: ${k}`)].slice(0, 3).join('; ')})`,
      );
    }
    for (const k of keys) {
      const row = keyed[i].get(k)!.row;
      if (row.ok && row.histogram === null) throw new ReportInputError(`cannot merge exactly: row ${k} of ${input.name} has no histogram`);
    }
  });
  const results = firstKeys.map((k) => {
    const rows = keyed.map((m) => m.get(k)!.row);
    const r0 = rows[0];
    const merged = mergeProcessRows(
      rows.map((row, i) => ({ process: i, row, startedAtMs: null })),
      {
        path: r0.path,
        rowOp: r0.op,
        batchSize: r0.batch_size,
        components: components(first.report, r0),
        tokensPerPage: tokensPerPage(first.report, r0),
        phase: r0.phase,
        latUnit: r0.lat_unit,
        note: baseNote(r0),
        protocol: r0.protocol,
        blockSize: r0.block_size,
        threads: r0.threads,
      },
    );
    const note = merged.note
      .replace(` x${rows.length}proc`, ` merged ${rows.length} runs`)
      .replace('window starts unknown', 'histograms merged, rate over the longest window')
      .replace(/p(\d+): /g, (_m, n: string) => `${inputs[Number(n) - 1]?.name ?? `run ${n}`}: `);
    return { ...merged, system: r0.system, note };
  });
  const hosts = [...new Set(inputs.map((i) => i.report.host.hostname))];
  const created = inputs.map((i) => i.report.created_at).sort()[0];
  const command = `peercache-bench report --merge ${inputs.map((i) => i.name).join(' ')}`;
  const marked = markPeakFor(first.report.meta.mode, results);
  const transports = [...new Set(inputs.flatMap((i) => i.report.meta.transports))];
  return {
    ...first.report,
    created_at: created,
    command,
    // The merge's own manifest; each input's (if it had one) is in its own file.
    manifest: { ...collectManifest({ command, host: first.report.host, transports, rows: marked }), loadavg_before: first.report.manifest?.loadavg_before ?? null },
    meta: {
      ...first.report.meta,
      transports: [...new Set(inputs.flatMap((i) => i.report.meta.transports))],
      merged_from: inputs.map((i) => i.name),
      merged_hosts: hosts,
      smoke: inputs.some((i) => i.report.meta.smoke),
      publishable: inputs.every((i) => i.report.meta.publishable),
    },
    results: marked,
    notes: [
      `merged ${inputs.length} runs of one configuration (${inputs.map((i) => i.name).join(', ')}): threads, counters and histograms added; the host block is ${first.name}'s (hosts: ${hosts.join(', ')})`,
      ...inputs.flatMap((i) => i.report.notes.map((n) => `${i.name}: ${n}`)),
    ],
  };
}

