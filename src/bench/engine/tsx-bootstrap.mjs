// Loads a TypeScript worker module when peercache runs from its sources (tests, development):
// Node 20 does not hand `--import tsx` on to worker threads. The built package never uses this.
import { workerData } from 'node:worker_threads';

const { register } = await import(workerData.tsxApi);
register();
const mod = await import(workerData.entry);
export default mod.default;
