// The hash of everything the addon is built from, recorded beside the prebuild so CI can tell a
// prebuild that was not built from the committed sources.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = fileURLToPath(new URL('..', import.meta.url));

export function nativeSourceFiles() {
  const files = readdirSync(join(root, 'native'))
    .filter((f) => /\.(cc|h)$/.test(f))
    .sort()
    .map((f) => `native/${f}`);
  return ['binding.gyp', ...files];
}

export function nativeSourceHash() {
  const hash = createHash('sha256');
  for (const file of nativeSourceFiles()) {
    hash.update(file + '\0');
    // Line endings normalised: a checkout with CRLF must not look stale.
    hash.update(readFileSync(join(root, file), 'utf8').replace(/\r\n/g, '\n'));
    hash.update('\0');
  }
  return hash.digest('hex');
}
