/** A worker_threads Worker running a TypeScript file: registers tsx inside the thread first (Node 20 does not hand `--import tsx` to workers reliably). */
import { Worker, type WorkerOptions } from 'node:worker_threads';

const tsxApi = import.meta.resolve('tsx/esm/api');

export function tsWorker(file: URL, options: WorkerOptions = {}): Worker {
  const code = `(async () => { const { register } = await import(${JSON.stringify(tsxApi)}); register(); await import(${JSON.stringify(file.href)}); })().catch((e) => { console.error(e); process.exit(1); });`;
  return new Worker(code, { ...options, eval: true });
}
