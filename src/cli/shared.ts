/** What every subcommand shares: the global flags and the command result shape. */
import type { ArgsDef } from 'citty';
import { createLogger, LOG_LEVELS, type Logger, type LogLevel } from '../log.js';
import { parseEnum } from './parse.js';

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
