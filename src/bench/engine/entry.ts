/**
 * Where the engine's other entry points live (the worker module, the producer process), whether
 * peercache runs built (dist/*.js) or from its TypeScript sources through tsx.
 */
import { fileURLToPath } from 'node:url';

const fromSources = import.meta.url.endsWith('.ts');
const ext = fromSources ? '.ts' : '.js';

/** Absolute path of a sibling module of this directory, e.g. moduleFile('worker'). */
export function moduleFile(name: string): string {
  return fileURLToPath(new URL(`./${name}${ext}`, import.meta.url));
}

/** Node flags a child process needs to run our modules. */
export function childExecArgv(): string[] {
  return fromSources ? ['--import', import.meta.resolve('tsx')] : [];
}

/** The piscina `filename` and `workerData` that load one of our worker modules. */
export function workerEntry(name: string): { filename: string; workerData: Record<string, string> | undefined } {
  if (!fromSources) return { filename: moduleFile(name), workerData: undefined };
  return {
    filename: fileURLToPath(new URL('./tsx-bootstrap.mjs', import.meta.url)),
    workerData: { tsxApi: import.meta.resolve('tsx/esm/api'), entry: new URL(`./${name}.ts`, import.meta.url).href },
  };
}
