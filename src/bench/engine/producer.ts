/** Starts and stops the producer (prefill) node process the get/exists sweeps read from. */
import { ChildProc } from '../child-process.js';
import type { LogLevel, Logger } from '../../log.js';
import type { Layout } from '../../store/host-pool.js';
import type { StoreConfig } from './connection.js';
import { childExecArgv, moduleFile } from './entry.js';
import type { RawRegion } from './protocol.js';
import { PeercacheError } from '../../errors.js';

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

/**
 * What producer-main tells its parent, one JSON line on stdout: `ready` once every working set is
 * published (and the raw region allocated), or `error` when it could not start.
 */
export type ProducerMessage =
  | { t: 'ready'; nodeId: string; pid: number; published: number; transports: string; raw: RawRegion | null }
  | { t: 'error'; message: string };

export function encodeProducerMessage(m: ProducerMessage): string {
  return `${JSON.stringify(m)}\n`;
}

/** A producer's stdout line as a message, or null (stray output). */
export function parseProducerMessage(line: string): ProducerMessage | null {
  try {
    const v = JSON.parse(line) as { t?: unknown } | null;
    return v && typeof v === 'object' && (v.t === 'ready' || v.t === 'error') ? (v as ProducerMessage) : null;
  } catch {
    return null;
  }
}

export interface ProducerHandle {
  nodeId: string;
  pid: number;
  transports: string;
  raw: RawRegion | null;
  stop(): Promise<void>;
}

/** Starts producer-main and waits for its `ready` (it exits when its stdin closes, also when we die). */
export async function startProducer(cfg: ProducerConfig, logger: Logger, timeoutMs = 120_000): Promise<ProducerHandle> {
  const child = new ChildProc<ProducerMessage>({
    label: 'producer',
    command: process.execPath,
    args: [...childExecArgv(), moduleFile('producer-main'), JSON.stringify(cfg)],
    lifetime: 'stdin',
    parseMessage: parseProducerMessage,
    logger,
  });
  const stop = () => child.stop({ via: 'stdin', graceMs: 5000 });
  try {
    const m = await child.next(() => true, timeoutMs, 'ready message from the producer process');
    if (m.t === 'error') throw new PeercacheError('ERR_CHILD_PROCESS', `the producer process could not start: ${m.message}`);
    return { nodeId: m.nodeId, pid: m.pid, transports: m.transports, raw: m.raw, stop };
  } catch (err) {
    const msg = (err as Error).message;
    await stop();
    if (msg.startsWith('exited')) throw new PeercacheError('ERR_CHILD_PROCESS', `the producer process ${msg.replace(/ early$/, '')} before it was ready: ${child.tail(3)}`);
    if (msg.startsWith('no ready')) throw new PeercacheError('ERR_CHILD_PROCESS', `the producer process did not become ready within ${timeoutMs / 1000} s`);
    throw err;
  }
}
