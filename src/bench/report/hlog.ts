/**
 * The run's interval series (--interval) as an HdrHistogram interval log (format 1.3, written by
 * hdr-histogram-js's HistogramLogWriter): one interval line per interval of every row, tagged
 * `row=<index>-<op>-c<threads>-b<batch>` (its warmup intervals `…-warmup`), values in µs. What
 * HdrHistogram's HistogramLogAnalyzer reads, and HistogramLogProcessor turns into the .hgrm
 * percentile files hdr-plot plots. Built from the
 * report alone (each interval's histogram is in the JSON), so it never disagrees with it.
 */
import hdr from 'hdr-histogram-js';
import { SharedHistogram } from '../histogram.js';
import type { Report, Row } from './types.js';

/** Values in the log are µs (the report's latency unit): the ns histograms divided by this. */
export const HLOG_UNIT_NS = 1000;

/** The tag of a row's measured intervals (index: the row's position in results). */
export function rowTag(row: Pick<Row, 'op' | 'path' | 'threads' | 'batch_size'>, index: number): string {
  const op = (row.op || row.path).replace(/[^A-Za-z0-9._-]+/g, '-');
  return `row=${index}-${op}-c${row.threads}-b${row.batch_size}`;
}

/** The log's text, or null when no row has intervals. */
export function renderHlog(report: Report): string | null {
  if (!report.results.some((r) => r.intervals?.length)) return null;
  let out = '';
  const writer = new hdr.HistogramLogWriter((text) => {
    out += text;
  });
  const startMs = Date.parse(report.created_at);
  const startS = (startMs / 1000).toFixed(3);
  writer.outputComment(`[Logged with ${report.tool.name} ${report.tool.version}: ${report.command.replace(/\r?\n/g, ' ')}]`);
  writer.outputLogFormatVersion();
  // Written here rather than with outputStartTime(), which adds a blank line some readers trip on.
  writer.outputComment(`[StartTime: ${startS} (seconds since epoch), ${new Date(startMs).toISOString()}]`);
  writer.outputComment(`[BaseTime: ${startS} (seconds since epoch)]`);
  writer.outputComment('[Values in microseconds (us); Interval_Max in milliseconds; timestamps in seconds since BaseTime (the report created_at)]');
  writer.outputComment('[Tags: row=<index in results>-<op>-c<threads>-b<batch>; "-warmup" tags the warmup intervals, outside the row\'s figures]');
  writer.outputComment('[Latency: service latency closed loop; response latency (from the intended start) open loop (--rate)]');
  writer.outputLegend();
  report.results.forEach((row, index) => {
    const tag = rowTag(row, index);
    for (const iv of row.intervals ?? []) {
      const h = (iv.histogram ? SharedHistogram.decode(iv.histogram) : SharedHistogram.create()).toHdr(HLOG_UNIT_NS);
      h.tag = iv.phase === 'warmup' ? `${tag}-warmup` : tag;
      writer.outputIntervalHistogram(h, iv.start_s, iv.start_s + iv.duration_s, 1000);
    }
  });
  return out;
}
