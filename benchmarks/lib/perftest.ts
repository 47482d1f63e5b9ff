/**
 * `ucx_perftest -t ucp_get` across two processes on this host, the reference the data-plane speed
 * checks compare with: a server and a client under the same UCX shared-memory transports.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ChildProc, childOutput } from '../../src/bench/child-process.js';

export const SHM_TLS = 'posix,sysv,cma,self';
const GB = 1e9;

export interface PerftestRun {
  /** Bytes per READ. */
  size: number;
  /** READs in flight (`-O`), the batch of the figure it is compared with. */
  outstanding: number;
  /** About how long the run should take. */
  seconds: number;
  /** The rate (B/s) that sizes the iteration count for `seconds`. */
  bytesPerS: number;
  /** Most iterations (at least 2000 are run). */
  maxIterations: number;
}

/** One ucx_perftest ucp_get run; its overall bandwidth in GB/s (10^9 B/s). */
export async function perftest(r: PerftestRun): Promise<number> {
  const port = String(13000 + Math.floor(Math.random() * 2000));
  const env = { ...process.env, UCX_TLS: SHM_TLS, UCX_PROTO_ENABLE: 'n' };
  const server = new ChildProc({ label: 'ucx_perftest server', command: 'ucx_perftest', args: ['-p', port], env, lifetime: 'supervised' });
  try {
    await sleep(500);
    const iterations = Math.max(2000, Math.min(r.maxIterations, Math.floor((r.seconds * r.bytesPerS) / r.size)));
    const text = await childOutput({ label: 'ucx_perftest client', command: 'ucx_perftest', args: ['127.0.0.1', '-p', port, '-t', 'ucp_get', '-s', String(r.size), '-O', String(r.outstanding), '-n', String(iterations), '-w', String(Math.floor(iterations / 10))], env, lifetime: 'supervised' });
    const final = text.split('\n').find((l) => l.startsWith('Final:'));
    if (!final) throw new Error(`ucx_perftest printed no Final line:\n${text}`);
    // Final: iterations, lat p50, lat avg, lat overall, bw avg (MB/s = 2^20 B/s), bw overall, ...
    return (Number(final.trim().split(/\s+/)[6]) * 2 ** 20) / GB;
  } finally {
    await server.stop({ via: 'SIGKILL' });
  }
}

/** The UCX version `ucx_info -v` reports. */
export async function ucxVersion(): Promise<string | undefined> {
  return (await childOutput({ label: 'ucx_info -v', command: 'ucx_info', args: ['-v'], lifetime: 'supervised' })).match(/Version ([\d.]+)/)?.[1];
}
