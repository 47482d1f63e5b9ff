/** RFC 4180 CSV of flat records (the `--format csv` of `peercache-bench report`). */
import type { Report, Row } from './types.js';

type Cell = string | number | boolean | null | undefined;

function csvCell(v: Cell): string {
  if (v === null || v === undefined) return '';
  const s = String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function renderCsv(records: readonly Record<string, Cell>[]): string {
  if (!records.length) return '';
  const headers = [...new Set(records.flatMap((r) => Object.keys(r)))];
  return [headers.join(','), ...records.map((r) => headers.map((h) => csvCell(r[h])).join(','))].join('\r\n') + '\r\n';
}

/** A report's rows as flat records: every scalar field, layout from meta, transports joined, extra spread, no histogram, no intervals. */
export function rowRecords(report: Report): Record<string, Cell>[] {
  return report.results.map((row: Row) => {
    const out: Record<string, Cell> = { layout: typeof report.meta.layout === 'string' ? report.meta.layout : null };
    for (const [k, v] of Object.entries(row)) {
      // The interval series is a table of its own (JSON `intervals`, the .hlog), not a cell.
      if (k === 'histogram' || k === 'extra' || k === 'intervals') continue;
      if (Array.isArray(v)) out[k] = v.join(' ');
      else if (v === null || ['string', 'number', 'boolean'].includes(typeof v)) out[k] = v as Cell;
      else out[k] = JSON.stringify(v);
    }
    for (const [k, v] of Object.entries(row.extra ?? {})) out[`extra.${k}`] = v;
    return out;
  });
}
