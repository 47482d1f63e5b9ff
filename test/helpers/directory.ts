/** What the directory tests share: node infos, locations, and waiting for (or on) async outcomes. */
import type { Location, NodeInfo } from '../../src/store/types.js';

export function nodeInfo(nodeId: string): NodeInfo {
  return {
    nodeId,
    protocol: 'tcp',
    host: '127.0.0.1',
    transportAddress: Buffer.from(`addr-${nodeId}`).toString('base64'),
    regionDescriptor: Buffer.from(`region-${nodeId}`).toString('base64'),
    attributes: { pageSize: 4096, layout: 'mha', mla: false },
  };
}

export function loc(nodeId: string, offset: number, generation: number, length = 4096): Location {
  return { nodeId, offset, length, generation };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` every 5 ms until it returns something other than undefined or false. */
export async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 3000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** The error `p` rejects with; throws if it resolves. */
export async function rejection(p: Promise<unknown>): Promise<Error & { code?: string }> {
  try {
    await p;
  } catch (err) {
    return err as Error & { code?: string };
  }
  throw new Error('expected a rejection');
}
