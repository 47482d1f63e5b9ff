/**
 * What every speed-check script shares: its flags (`--name value`), and its Markdown report,
 * printed line by line as it is measured and written to `--out` at the end.
 */
import { writeFileSync } from 'node:fs';

/** The script's own arguments. */
export const args = process.argv.slice(2);

/** The value after `name` on the command line, or `fallback`. */
export function flag(name: string, fallback: string): string {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : fallback;
}

/** A bad flag: one line on stderr, exit 2 (no stack trace). */
export function usage(message: string): never {
  console.error(message);
  process.exit(2);
}

/** `f()`, or its error's message as a usage error (a flag value that a parser refused). */
export function orUsage<T>(f: () => T): T {
  try {
    return f();
  } catch (err) {
    return usage((err as Error).message);
  }
}

/** A positive integer flag, or a usage error naming it. */
export function positiveInt(name: string, fallback: string): number {
  const raw = flag(name, fallback);
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) usage(`${name} must be a positive integer, got '${raw}'`);
  return n;
}

export interface ReportLog {
  /** Prints one line and keeps it. */
  log(line?: string): void;
  /** Writes the kept lines to `path`; nothing when `path` is empty. */
  save(path: string): void;
}

export function reportLog(): ReportLog {
  const lines: string[] = [];
  return {
    log(line = '') {
      console.log(line);
      lines.push(line);
    },
    save(path) {
      if (path) writeFileSync(path, lines.join('\n') + '\n');
    },
  };
}
