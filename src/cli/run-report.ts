/**
 * What every measuring subcommand does around its run: --out-dir checked before measuring;
 * Ctrl-C stops cleanly (the first one cuts the current row's window short and keeps what was
 * measured; a second one exits at once), the report is written (JSON + Markdown + plot) even when
 * rows failed, and to a temporary directory when --out-dir fails at the end, and the table goes to stdout
 * (or the JSON with --json, the table then to stderr); a live progress line while it runs; the
 * run's own errors turned into the program's.
 */
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { RunControl } from '../bench/engine/index.js';
import { type Report, type Row, plotReport, renderConsole, renderJson, artifactName, describeFsError, OutDirError, prepareOutDir, removeCreatedDirs, writeReport, type ArtifactKind, type WrittenPaths } from '../bench/report/index.js';
import type { Logger, LogLevel } from '../log.js';
import { ConfigError, PeercacheError, errorText } from '../errors.js';
import { flagFor } from './flags.js';
import { TransportError } from '../transport/types.js';
import { signalExitCode } from '../bench/child-process.js';
import { UsageError } from './parse.js';
import { colorFor, createProgress, phaseNamer } from './progress.js';
import { str, tagFromArgs, type Args, type CommandResult } from './shared.js';

export interface ReportRun {
  kind: ArtifactKind;
  /** The mode (hicache) or op (hicache-dist: two-host drive) that names the artifact. */
  mode?: string;
  /** The subcommand, for the one-line errors. */
  name?: string;
  outDir: string;
  tag?: string;
  json: boolean;
  logger: Logger;
  run(signal: AbortSignal): Promise<Report>;
  /** Where the table, the JSON and the messages go; default process.stdout / process.stderr. */
  io?: ReportIo;
  /** What the first Ctrl-C says happens (default DEFAULT_INTERRUPT). */
  interruptMessage?: string;
}

export interface ReportIo {
  out(text: string): void;
  err(text: string): void;
  /** Whether `out` is a terminal (colour). */
  outIsTty?: boolean;
}

const processIo: ReportIo = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
  get outIsTty() {
    return process.stdout.isTTY === true;
  },
};

/** What the first Ctrl-C / SIGTERM does to a run of our own rows. */
export const DEFAULT_INTERRUPT = '\ninterrupted: stopping the current row now and writing what was measured (Ctrl-C again to quit at once)\n';

/**
 * Runs `run` with Ctrl-C / SIGTERM handled: the first one prints `message` and aborts the signal
 * `run` got (`interrupted()` then names it), a second one exits at once (128 + its number: 130
 * for SIGINT, 143 for SIGTERM).
 */
export async function withInterrupts<T>(message: string, run: (signal: AbortSignal, interrupted: () => NodeJS.Signals | null) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  let first: NodeJS.Signals | null = null;
  const onSignal = (sig: NodeJS.Signals) => {
    if (first === null) {
      first = sig;
      process.stderr.write(message);
      controller.abort();
    } else {
      process.exit(signalExitCode(sig));
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await run(controller.signal, () => first);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

export async function runAndReport(r: ReportRun): Promise<CommandResult> {
  const io = r.io ?? processIo;
  const who = `peercache-bench${r.name ? ` ${r.name}` : ''}`;
  // A bad --out-dir is found before measuring, not after a six-minute suite.
  const created: string[] = [];
  try {
    await prepareOutDir(r.outDir, created);
  } catch (e) {
    if (!(e instanceof OutDirError)) throw e;
    io.err(`${who}: --out-dir ${r.outDir}: ${e.message}\n`);
    return { exitCode: 2 };
  }
  let interrupted: () => NodeJS.Signals | null = () => null;
  let report: Report;
  try {
    report = await withInterrupts(r.interruptMessage ?? DEFAULT_INTERRUPT, (s, by) => {
      interrupted = by;
      return r.run(s);
    });
  } catch (e) {
    await removeCreatedDirs(created); // nothing measured: no empty results folder left behind
    throw e;
  }
  const name = artifactName({ kind: r.kind, mode: r.mode, protocol: report.meta.protocol, tag: r.tag || undefined, date: new Date(report.created_at) });
  const svg = await plotReport(report).catch((e: unknown) => {
    r.logger.warn(`no plot: ${(e as Error).message}`);
    return undefined;
  });
  let paths: WrittenPaths | undefined;
  let writeError: unknown;
  try {
    paths = await writeReport(report, { outDir: resolve(r.outDir), name, svg });
  } catch (e) {
    writeError = e;
  }
  const table = renderConsole(report, { color: colorFor(io.outIsTty === true && !r.json) });
  if (r.json) {
    io.out(JSON.stringify(report, null, 2) + '\n');
    io.err(table + '\n');
  } else {
    io.out(table + '\n');
  }
  const failed = report.results.filter((row) => !row.ok).length;
  if (failed) r.logger.warn(`${failed} of ${report.results.length} rows failed; see their notes`);
  if (paths) {
    io.err([paths.json, paths.md, ...(paths.svg ? [paths.svg] : []), ...(paths.hlog ? [paths.hlog] : [])].map((p) => `wrote ${p}\n`).join(''));
    const by = interrupted();
    if (by) return { exitCode: signalExitCode(by) };
    return { exitCode: failed ? 1 : 0 };
  }
  // Writing failed after measuring: the run is kept somewhere and the user is told where.
  io.err(`${who}: could not write the report to ${resolve(r.outDir)}: ${describeFsError(writeError)}\n`);
  const fallback = await writeReport(report, { outDir: join(tmpdir(), 'peercache-bench-results'), name, svg }).catch(() => undefined);
  if (fallback) {
    io.err(`${who}: the report is saved instead in ${fallback.json} (and .md${fallback.svg ? ', .svg' : ''}${fallback.hlog ? ', .hlog' : ''} beside it)\n`);
  } else if (!r.json) {
    io.err(`${who}: no temporary file either; the JSON report follows on stdout\n`);
    io.out(renderJson(report));
  }
  return { exitCode: 1 };
}

/** An error class of a run's own option validation (SweepConfigError, MicroConfigError, TwoHostConfigError). */
export type ConfigErrorClass = abstract new (...args: never[]) => Error;

/**
 * Our own errors as the program's: a configuration error becomes a usage error (exit 2), a
 * protocol this host cannot run keeps its message and code (exit 1), anything else is left as is.
 */
/** An error's message with the options it names written as this CLI's flags. */
export function asFlags(err: unknown): string {
  return errorText(err, flagFor);
}

export function toProgramError(err: unknown, configError?: ConfigErrorClass): unknown {
  if (err instanceof UsageError) return err; // already a flag's message (exit 2)
  // Configuration errors (a directory open to other hosts without a token among them): the fix is a flag.
  if (err instanceof ConfigError || (configError && err instanceof configError)) return new UsageError(asFlags(err));
  if (err instanceof TransportError && err.code === 'ERR_PROTOCOL_UNAVAILABLE') {
    return Object.assign(new Error(`${err.render(flagFor)}. \`peercache-bench doctor\` shows what this host can run`), { code: err.code });
  }
  if (err instanceof PeercacheError) return Object.assign(new Error(err.render(flagFor)), { code: err.code });
  return err;
}

/** What a measuring command hands its run (the run's RunControl, all of it set): spread into the run's options. */
export type RunHooks = Required<Omit<RunControl, 'onRow'>> & { onRow: (row: Row) => void };

export interface MeasureCommand {
  /** The subcommand's name, for the recorded command line. */
  name: string;
  kind: ArtifactKind;
  mode?: string;
  /** The parsed flags: --out-dir, --tag, --json and --log-level are read here. */
  args: Args;
  logger: Logger;
  /** The run's configuration error, reported as a usage error. */
  configError?: ConfigErrorClass;
  /** What the first Ctrl-C says happens (default DEFAULT_INTERRUPT). */
  interruptMessage?: string;
  run(hooks: RunHooks, progress: { clear(): void }): Promise<Report>;
}

/** runAndReport with the progress line, the command line and the error translation of every measuring command. */
export async function runMeasureCommand(c: MeasureCommand): Promise<CommandResult> {
  const tag = tagFromArgs(c.args);
  const progress = createProgress({ phaseOf: phaseNamer(c.kind, c.mode) });
  try {
    return await runAndReport({
      kind: c.kind,
      name: c.name,
      mode: c.mode,
      outDir: str(c.args, 'out-dir'),
      tag,
      json: c.args.json === true,
      logger: c.logger,
      interruptMessage: c.interruptMessage,
      run: (signal) =>
        c.run(
          {
            command: ['peercache-bench', c.name, ...process.argv.slice(3)].join(' '),
            signal,
            logger: c.logger,
            logLevel: str(c.args, 'log-level') as LogLevel,
            onProgress: (p) => progress.update(p),
            onRow: (row) => progress.row(row),
          },
          progress,
        ),
    });
  } catch (err) {
    progress.clear();
    throw toProgramError(err, c.configError);
  }
}
