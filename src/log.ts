/** A small levelled logger shared by every layer: messages go to stderr (stdout stays for --json) and optionally to a file. */
import { appendFileSync } from 'node:fs';

export type LogLevel = 'debug' | 'info' | 'warning' | 'error' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warning', 'error', 'silent'];
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warning: 30, error: 40, silent: 100 };

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** True if messages of this level are written (to skip building expensive ones). */
  enabled(level: LogLevel): boolean;
}

export interface LoggerOptions {
  level?: LogLevel;
  file?: string;
  /** Where messages go (default: process.stderr). */
  write?: (line: string) => void;
  name?: string;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = rank[options.level ?? 'warning'];
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const name = options.name ?? 'peercache';
  const emit = (level: LogLevel, label: string, message: string) => {
    if (rank[level] < threshold) return;
    const line = `${new Date().toISOString()} ${label} ${name}: ${message}\n`;
    write(line);
    if (options.file) {
      try {
        appendFileSync(options.file, line);
      } catch {
        /* a log file that cannot be written must not stop a benchmark */
      }
    }
  };
  return {
    debug: (m) => emit('debug', 'DEBUG', m),
    info: (m) => emit('info', 'INFO', m),
    warn: (m) => emit('warning', 'WARNING', m),
    error: (m) => emit('error', 'ERROR', m),
    enabled: (level) => rank[level] >= threshold,
  };
}

export const silentLogger: Logger = createLogger({ level: 'silent' });
