/**
 * One driver process of `drive --processes N` (see child-protocol.ts). It is a node of its own
 * (its own directory connection, its own workers per row) and runs the rows its parent asks for,
 * starting each row's warmup at the common time the parent sends, so every process measures the
 * same window.
 */
import { createInterface } from 'node:readline';
import { createLogger } from '../../log.js';
import { runRow } from '../engine/row.js';
import { outcomeToRow } from '../report/outcome.js';
import { encode, parseParentMessage, wallNow, type ChildMessage } from './child-protocol.js';
import { DriverNode } from './driver-node.js';
import { rowPlan, type DriveRowsConfig } from './plan.js';
import { PeercacheError } from '../../errors.js';

const send = (msg: ChildMessage) => process.stdout.write(encode(msg));

interface PendingGo {
  row: number;
  resolve: (startedAtMs: number) => void;
  reject: (err: Error) => void;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as DriveRowsConfig;
  const logger = createLogger({ level: cfg.logLevel, name: `peercache-drive[${cfg.node.nodeId}]` });
  const controller = new AbortController();
  // Ctrl-C reaches the whole process group: the parent decides (it sends `stop`).
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => controller.abort());
  let node: DriverNode;
  try {
    node = await DriverNode.open(cfg.node, logger);
  } catch (err) {
    send({ t: 'error', message: (err as Error).message });
    process.exitCode = 1;
    return;
  }
  send({ t: 'hello', nodeId: cfg.node.nodeId, pid: process.pid });
  let pendingGo: PendingGo | null = null;
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  const closed = new Promise<void>((resolve) => lines.once('close', resolve));
  lines.on('line', (line) => {
    const msg = parseParentMessage(line);
    if (!msg) return;
    switch (msg.t) {
      case 'run':
        queue = queue.then(() => runOne(msg.row));
        return;
      case 'go': {
        const p = pendingGo;
        if (!p || p.row !== msg.row) return;
        pendingGo = null;
        // Sleep until the common start; the last few ms are not worth spinning for.
        setTimeout(() => p.resolve(wallNow()), Math.max(0, msg.at - wallNow()));
        return;
      }
      case 'abort':
        if (pendingGo && pendingGo.row === msg.row) {
          pendingGo.reject(new PeercacheError('ERR_ABORTED', `aborted: ${msg.reason}`));
          pendingGo = null;
        }
        return;
      case 'stop':
        controller.abort();
        pendingGo?.reject(new PeercacheError('ERR_ABORTED', 'aborted by the user'));
        pendingGo = null;
        return;
    }
  });

  async function runOne(index: number): Promise<void> {
    let startedAtMs: number | null = null;
    const outcome = await runRow(rowPlan(cfg, index), {
      index,
      rows: cfg.concurrencies.length,
      signal: controller.signal,
      logger,
      readyTimeoutMs: cfg.readyTimeoutMs,
      onProgress: (p) => send({ t: 'progress', row: index, p }),
      beforeStart: () =>
        new Promise<void>((resolve, reject) => {
          // The parent answers within its own deadline; this one only guards against a lost parent.
          const timer = setTimeout(() => {
            if (pendingGo?.row === index) pendingGo = null;
            reject(new PeercacheError('ERR_TIMEOUT', `no start signal from the drive parent within ${(cfg.readyTimeoutMs + 30_000) / 1000} s`));
          }, cfg.readyTimeoutMs + 30_000);
          pendingGo = {
            row: index,
            resolve: (at) => {
              clearTimeout(timer);
              startedAtMs = at;
              resolve();
            },
            reject: (err) => {
              clearTimeout(timer);
              reject(err);
            },
          };
          send({ t: 'ready', row: index });
        }),
    });
    send({ t: 'result', row: index, result: outcomeToRow(outcome), startedAtMs });
  }

  await closed;
  controller.abort();
  await queue;
  await node.close().catch(() => {});
}

main()
  .catch((err: unknown) => {
    process.stderr.write(`drive child failed: ${(err as Error)?.stack ?? String(err)}\n`);
    process.exitCode = 1;
  })
  .finally(() => {
    // Worker pools and sockets are closed; do not let a stray handle keep a child around.
    setTimeout(() => process.exit(), 2000).unref();
  });
