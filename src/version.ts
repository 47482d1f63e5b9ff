/** The package's version, for banners, `--version`, doctor and reports. */
import { readFileSync } from 'node:fs';

let cachedVersion: string | undefined;

/**
 * The version in package.json, found relative to this file: ../package.json is the package root
 * from both src/ (tsx) and dist/ (built). "unknown" if unreadable, so a report is still written.
 */
export function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    const v = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    cachedVersion = typeof v === 'string' && v ? v : 'unknown';
  } catch {
    cachedVersion = 'unknown';
  }
  return cachedVersion;
}
