/** Starts and stops the producer (prefill) node process the get/exists sweeps read from. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { LogLevel, Logger } from '../../log.js';
import type { Layout } from '../../store/host-pool.js';
import type { StoreConfig } from './connection.js';
import { childExecArgv, moduleFile } from './entry.js';
import type { RawRegion } from './protocol.js';

/** The producer's store is opened with its own default timeout: `timeoutMs` is the workers'. */
export interface ProducerConfig extends Omit<StoreConfig, 'timeoutMs'> {
  layout: Layout;
  pageBytes: number;
  tokensPerPage: number;
  /** Working sets to publish: keys `<prefix>/0 .. <prefix>/<count-1>`. */
  sets: { prefix: string; count: number }[];
  /** Fill pages with the verification pattern (else they hold zeros). */
  fill: boolean;
  /** The generation written into every page's pattern (default 1). */
  generation?: number;
  /** Test fault: working-set page indices written with the previous generation (a stale copy). */
  stalePages?: number[];
  /** Bytes of a raw region to publish for bare data-plane READs (micro); 0 for none. */
  rawBytes?: number;
  nodeId: string;
  logLevel: LogLevel;
}

export interface ProducerHandle {
  nodeId: string;
  pid: number;
  transports: string;
  raw: RawRegion | null;
  stop(): Promise<void>;
}

export async function startProducer(cfg: ProducerConfig, logger: Logger, timeoutMs = 120_000): Promise<ProducerHandle> {
  const child: ChildProcess = spawn(process.execPath, [...childExecArgv(), moduleFile('producer-main'), JSON.stringify(cfg)], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (stderr.length > 64 * 1024) stderr = stderr.slice(-32 * 1024);
    for (const line of d.toString().split('\n')) if (line.trim()) logger.debug(`producer: ${line}`);
  });
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.stdin!.end();
      const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
      kill.unref();
    });
  const ready = await new Promise<{ nodeId: string; pid: number; transports: string; raw: RawRegion | null }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the producer process did not become ready within ${timeoutMs / 1000} s`)), timeoutMs);
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const msg = JSON.parse(line) as { ready?: boolean; nodeId: string; pid: number; transports: string; raw: RawRegion | null };
        if (msg.ready) {
          clearTimeout(timer);
          resolve(msg);
        }
      } catch {
        logger.debug(`producer: ${line}`);
      }
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the producer process exited (${code ?? signal}) before it was ready: ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no output'}`));
    });
  }).catch(async (err: unknown) => {
    await stop();
    throw err;
  });
  return { ...ready, stop };
}
