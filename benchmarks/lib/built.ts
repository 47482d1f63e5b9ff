/**
 * Loads a module of the built package (dist/), for benchmarks: run from the TypeScript sources,
 * every worker thread would load tsx (an esbuild service per thread), which distorts a sweep of
 * many workers. Users run the built package; so do the speed checks.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export async function built<T>(relative: string): Promise<T> {
  const url = new URL(`../../dist/${relative}`, import.meta.url);
  if (!existsSync(fileURLToPath(url))) throw new Error(`dist/${relative} is missing: run \`npm run build\` first`);
  return (await import(url.href)) as T;
}
