/**
 * What every measuring subcommand does around its run: Ctrl-C stops cleanly (the first one
 * finishes the current row's window and keeps what was measured; a second one exits at once),
 * the report is written (JSON + Markdown) even when rows failed, and the table goes to stdout
 * (or the JSON with --json, the table then to stderr).
 */
import { resolve } from 'node:path';
import type { Report } from '../bench/report/types.js';
import { renderConsole } from '../bench/report/render.js';
import { writeReport, artifactName, type ArtifactKind } from '../bench/report/write.js';
import type { Logger } from '../log.js';
import type { CommandResult } from './shared.js';

export interface ReportRun {
  kind: ArtifactKind;
  /** The mode (hicache) or op (dist) that names the artifact. */
  mode?: string;
  outDir: string;
  tag?: string;
  json: boolean;
  logger: Logger;
  run(signal: AbortSignal): Promise<Report>;
}

export async function runAndReport(r: ReportRun): Promise<CommandResult> {
  const controller = new AbortController();
  let interrupts = 0;
  const onSigint = () => {
    interrupts++;
    if (interrupts === 1) {
      process.stderr.write('\ninterrupted: finishing the current row and writing what was measured (Ctrl-C again to quit now)\n');
      controller.abort();
    } else {
      process.exit(130);
    }
  };
  process.on('SIGINT', onSigint);
  process.on('SIGTERM', onSigint);
  let report: Report;
  try {
    report = await r.run(controller.signal);
  } finally {
    process.off('SIGINT', onSigint);
    process.off('SIGTERM', onSigint);
  }
  const name = artifactName({ kind: r.kind, mode: r.mode, protocol: report.meta.protocol, tag: r.tag || undefined, date: new Date(report.created_at) });
  const paths = await writeReport(report, { outDir: resolve(r.outDir), name });
  const table = renderConsole(report, { color: process.stdout.isTTY === true && !r.json });
  if (r.json) {
    process.stdout.write(JSON.stringify(report, null, 2) + '\n');
    process.stderr.write(table + '\n');
  } else {
    process.stdout.write(table + '\n');
  }
  process.stderr.write(`wrote ${paths.json}\nwrote ${paths.md}\n`);
  const failed = report.results.filter((row) => !row.ok).length;
  if (failed) r.logger.warn(`${failed} of ${report.results.length} rows failed; see their notes`);
  if (controller.signal.aborted) return { exitCode: 130 };
  return { exitCode: failed ? 1 : 0 };
}
