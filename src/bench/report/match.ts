/** Which rows of two runs measured the same thing: matched on op, threads, batch, page and layout. */
import type { Report, Row } from './types.js';

export interface RowKey {
  system: string;
  /** The op, or the path for rows without one. */
  op: string;
  threads: number;
  batch: number;
  page: number;
  layout: string;
  phase: string;
}

export function rowKey(row: Row, report: Pick<Report, 'meta'>): RowKey {
  return {
    system: row.system,
    op: row.op || row.path,
    threads: row.threads,
    batch: row.batch_size,
    page: row.block_size,
    layout: typeof report.meta.layout === 'string' ? report.meta.layout : '-',
    phase: row.phase,
  };
}

export const keyText = (k: RowKey): string => `${k.system}/${k.op}/t${k.threads}/b${k.batch}/p${k.page}/${k.layout}/${k.phase}`;

/** The rows of a report by key text (the first row of a duplicated key wins). */
export function rowsByKey(report: Report): Map<string, { key: RowKey; row: Row }> {
  const out = new Map<string, { key: RowKey; row: Row }>();
  for (const row of report.results) {
    const key = rowKey(row, report);
    const t = keyText(key);
    if (!out.has(t)) out.set(t, { key, row });
  }
  return out;
}

/** Fields of meta that decide whether two runs' rows are the same measurement. */
export const CONFIG_FIELDS = ['mode', 'op', 'protocol', 'layout', 'page_size', 'batch_size', 'tokens_per_page', 'concurrencies', 'working_set', 'duration_s'] as const;
