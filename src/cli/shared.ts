/** What every subcommand shares: the global flags, reading flag values, and the command result shape. */
import type { ArgsDef } from 'citty';
import { createLogger, LOG_LEVELS, type Logger, type LogLevel } from '../log.js';
import { parseEnum, parseTag } from './parse.js';

/** citty's parsed flags. */
export type Args = Record<string, unknown>;

/** A flag's value as text ('' when absent). */
export const str = (args: Args, name: string): string => String(args[name] ?? '');

export const globalArgs = {
  'log-level': { type: 'string', description: `Log level: ${LOG_LEVELS.join(', ')} (logs go to stderr)`, default: 'warning', valueHint: 'level' },
  'log-file': { type: 'string', description: 'Also append log lines to this file', default: '', valueHint: 'path' },
} as const satisfies ArgsDef;

/** What a command's run() returns to the program (never process.exit inside a command). */
export interface CommandResult {
  exitCode: number;
}

export function loggerFromArgs(args: Record<string, unknown>): Logger {
  const level = parseEnum('--log-level', String(args['log-level'] ?? 'warning'), LOG_LEVELS) as LogLevel;
  const file = String(args['log-file'] ?? '');
  return createLogger({ level, file: file || undefined, name: 'peercache-bench' });
}

/** --tag: a file-name suffix, or undefined when empty. */
export function tagFromArgs(args: Args): string | undefined {
  return str(args, 'tag').trim() ? parseTag('--tag', str(args, 'tag')) : undefined;
}
