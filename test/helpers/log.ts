/** A Logger that keeps its lines (`warn: message`, ...) for a test to read. */
import type { Logger } from '../../src/log.js';

export function memoryLogger(): { lines: string[]; logger: Logger } {
  const lines: string[] = [];
  const keep = (level: string) => (message: string) => void lines.push(`${level}: ${message}`);
  return { lines, logger: { debug: keep('debug'), info: keep('info'), warn: keep('warn'), error: keep('error'), enabled: () => true } };
}
