/**
 * The rows of a drive sweep: one per concurrency, the same plan in the drive process
 * (--processes 1) and in every child process (--processes N). JSON-serialisable, so a child gets
 * it on its command line.
 */
import type { LogLevel } from '../../log.js';
import type { RowPlan } from '../engine/row.js';
import type { DriverNodeConfig } from './driver-node.js';

export type DriveOp = 'get' | 'exists';

export interface DriveRowsConfig {
  node: DriverNodeConfig;
  op: DriveOp;
  batchSize: number;
  /** Per process. */
  concurrencies: number[];
  warmupS: number;
  durationS: number;
  verify: boolean;
  /** The prefix serve published the working set under (read from its attributes). */
  keyPrefix: string;
  /** Deadline for a row's workers to connect. */
  readyTimeoutMs: number;
  /** The row note: `dist batch_<op> <layout> ws=<ws> remote=<addr>`. */
  note: string;
  logLevel: LogLevel;
}

export function rowPlan(cfg: DriveRowsConfig, index: number): RowPlan {
  const a = cfg.node.agreement;
  return {
    op: cfg.op,
    path: `hicache-${cfg.op}`,
    rowOp: cfg.op,
    threads: cfg.concurrencies[index],
    batchSize: cfg.batchSize,
    phase: 'sweep',
    components: a.layout === 'mla' ? 1 : 2,
    tokensPerPage: cfg.node.tokensPerPage,
    warmupS: cfg.warmupS,
    durationS: cfg.durationS,
    note: cfg.note,
    task: {
      store: cfg.node.store,
      layout: a.layout,
      pageBytes: a.pageBytes,
      tokensPerPage: cfg.node.tokensPerPage,
      keyPrefix: cfg.keyPrefix,
      workingSet: a.workingSet,
      publishBytes: 0,
      verify: cfg.verify,
      raw: null,
      connectTimeoutMs: cfg.readyTimeoutMs,
    },
  };
}
