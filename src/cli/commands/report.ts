/**
 * `peercache-bench report`: saved JSON reports again, without measuring.
 *   report a.json            re-render (Markdown, CSV or JSON; --write puts .md and .svg beside it)
 *   report a.json b.json     diff row by row: B/A ratios of throughput and p50/p99, noise marker
 *   report --merge x.json …  one exact report from runs of one configuration (histograms merged)
 */
import { realpath, writeFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { defineCommand } from 'citty';
import { renderCsv, rowRecords, diffRecords, diffReports, renderDiffMarkdown, loadReport, ReportInputError, mergeReports, plotReport, renderJson, renderMarkdown, type Report, describeFsError, writeReport, renderHlog } from '../../bench/report/index.js';
import { parseEnum, UsageError } from '../parse.js';
import { globalArgs, loggerFromArgs, str, type CommandResult } from '../shared.js';

const FORMATS = ['md', 'csv', 'json'] as const;
type OutFormat = (typeof FORMATS)[number];

/** The plot, or undefined with a warning when it cannot be drawn: the JSON and Markdown are written all the same. */
const plotOrWarn = (report: Report): Promise<string | undefined> =>
  plotReport(report).catch((e: unknown) => {
    process.stderr.write(`no plot: ${(e as Error).message}\n`);
    return undefined;
  });

const stem = (path: string): string => basename(path).replace(/\.json$/i, '');

function renderReport(report: Report, format: OutFormat, plotFile?: string): string {
  if (format === 'json') return renderJson(report);
  if (format === 'csv') return renderCsv(rowRecords(report));
  return renderMarkdown(report, { plotFile });
}

async function run(files: string[], args: Record<string, unknown>): Promise<CommandResult> {
  const format = parseEnum('--format', str(args, 'format'), FORMATS);
  const noisePct = Number(str(args, 'noise'));
  if (!Number.isFinite(noisePct) || noisePct < 0 || noisePct > 100) throw new UsageError(`--noise: ${str(args, 'noise')} is not a percentage (0 to 100)`);
  const merge = args.merge === true;
  if (files.length === 0) throw new UsageError('give one JSON report (re-render), two (diff), or --merge and two or more');
  if (!merge && files.length > 2) throw new UsageError(`${files.length} reports: give one (re-render) or two (diff), or add --merge`);
  if (args.write === true && (merge || files.length !== 1)) throw new UsageError('--write re-renders one report beside its JSON; with --merge use --out-dir');
  if (str(args, 'out-dir') && !merge) throw new UsageError('--out-dir writes a merged report: use it with --merge (--write re-renders one report in place)');
  const reports = await Promise.all(files.map((f) => loadReport(f)));

  if (merge) {
    // The same run twice would double every count: refused, by path and by content.
    const seen = new Map<string, string>();
    for (const [i, f] of files.entries()) {
      const real = await realpath(f).catch(() => resolve(f));
      const key = `${reports[i].created_at}\u0000${reports[i].command}\u0000${reports[i].host.hostname}`;
      for (const k of [`path:${real}`, `run:${key}`]) {
        const first = seen.get(k);
        if (first !== undefined) throw new UsageError(`--merge: ${f} is ${k.startsWith('path:') ? 'the same file as' : 'the same run as'} ${first}; merging it twice would double its counts`);
        seen.set(k, f);
      }
    }
    const merged = mergeReports(files.map((f, i) => ({ name: basename(f), report: reports[i] })));
    const outDir = str(args, 'out-dir');
    if (outDir) {
      const svg = await plotOrWarn(merged);
      const paths = await writeReport(merged, { outDir, name: `${stem(files[0])}-merged`, svg });
      process.stderr.write([paths.json, paths.md, ...(paths.svg ? [paths.svg] : [])].map((p) => `wrote ${p}\n`).join(''));
    }
    process.stdout.write(renderReport(merged, format));
    return { exitCode: 0 };
  }

  if (files.length === 2) {
    const diff = diffReports(reports[0], reports[1], { a: files[0], b: files[1] }, { threshold: noisePct / 100 });
    const text =
      format === 'md' ? renderDiffMarkdown(diff) : format === 'csv' ? renderCsv(diffRecords(diff)) : `${JSON.stringify({ ...diff, rows: diffRecords(diff) }, null, 2)}\n`;
    process.stdout.write(text);
    return { exitCode: 0 };
  }

  const [file] = files;
  const [report] = reports;
  let plotFile: string | undefined;
  if (args.write === true) {
    // The .md, .svg and .hlog (--interval) are derived from the JSON: re-rendering replaces them; the JSON is untouched.
    const base = join(dirname(file), stem(file));
    const svg = await plotOrWarn(report);
    const hlog = renderHlog(report);
    try {
      if (svg) {
        await writeFile(`${base}.svg`, svg);
        plotFile = `${stem(file)}.svg`;
      }
      await writeFile(`${base}.md`, renderMarkdown(report, { plotFile }));
      if (hlog !== null) await writeFile(`${base}.hlog`, hlog);
    } catch (e) {
      process.stderr.write(`peercache-bench report: cannot write beside ${file}: ${describeFsError(e)}\n`);
      return { exitCode: 1 };
    }
    process.stderr.write(`wrote ${base}.md\n${svg ? `wrote ${base}.svg\n` : ''}${hlog !== null ? `wrote ${base}.hlog\n` : ''}`);
  }
  process.stdout.write(renderReport(report, format, plotFile));
  return { exitCode: 0 };
}

export default defineCommand({
  meta: {
    name: 'report',
    description: 'render, compare or merge saved JSON reports: report a.json | report a.json b.json | report --merge x.json y.json ...',
  },
  args: {
    format: { type: 'string', description: 'Output: md (Markdown), csv or json', default: 'md', valueHint: 'md|csv|json' },
    merge: { type: 'boolean', description: 'Merge runs of one configuration (e.g. drive processes on several hosts) into one report: histograms merged exactly', default: false },
    write: { type: 'boolean', description: 'With one report: write its .md, .svg plot and (with intervals) .hlog beside the JSON (replacing them)', default: false },
    'out-dir': { type: 'string', description: 'With --merge: also write the merged report (JSON, Markdown, plot) here', default: '', valueHint: 'dir' },
    noise: { type: 'string', description: 'Diff: a throughput ratio within ±this % counts as noise when the runs have no confidence intervals', default: '5', valueHint: 'pct' },
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    loggerFromArgs(args);
    const files = (args._ as string[] | undefined) ?? [];
    try {
      return await run(files, args);
    } catch (e) {
      if (e instanceof ReportInputError) {
        process.stderr.write(`peercache-bench report: ${e.message}\n`);
        return { exitCode: 2 };
      }
      throw e;
    }
  },
});
