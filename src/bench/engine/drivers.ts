/**
 * One batch call per op, as SGLang's HiCache drives the store. A driver is the per-worker loop
 * body: the engine times each call; open-loop pacing or verified reads slot in here later.
 */
import type { HostKVPool } from '../../store/host-pool.js';
import type { PeerCacheStore } from '../../store/peer-cache-store.js';
import type { BenchOp } from './protocol.js';
import { pageSeed, verifyPage } from './pattern.js';

export interface CallOutcome {
  pagesRequested: number;
  /** get: pages read and validated; set: pages written; exists: pages probed. */
  pages: number;
  /** Hit pages whose bytes did not match their key (only counted with verify on). */
  wrongBytes: number;
}

export interface Driver {
  call(): Promise<CallOutcome>;
}

export interface DriverOptions {
  op: BenchOp;
  store: PeerCacheStore;
  host: HostKVPool;
  batchSize: number;
  /** Distinct, stable index of this worker (spreads key windows like the original: tid * 7919). */
  index: number;
  row: number;
  keyPrefix: string;
  workingSet: number;
  verify: boolean;
}

/** The key names the producer publishes: `<prefix>/<i>`. */
export function workingSetKeys(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}/${i}`);
}

export function makeDriver(o: DriverOptions): Driver {
  const bs = o.batchSize;
  const indices = o.host.tokenIndices(Array.from({ length: bs }, (_, i) => i));
  const keys = new Array<string>(bs);
  const slots = new Int32Array(bs);
  let r = 0;
  if (o.op === 'set') {
    // Fresh keys on every call, so each call really publishes (a set of an existing key is a no-op).
    const prefix = `pcbench/set/${process.pid}/${o.row}/${o.index}/`;
    return {
      async call() {
        for (let j = 0; j < bs; j++) keys[j] = `${prefix}${r}/${j}`;
        r++;
        const ok = await o.store.batchSetV1(keys, indices);
        let pages = 0;
        for (const x of ok) if (x) pages++;
        return { pagesRequested: bs, pages, wrongBytes: 0 };
      },
    };
  }
  const all = workingSetKeys(o.keyPrefix, o.workingSet);
  const window = () => {
    const base = o.index * 7919 + r * bs;
    for (let j = 0; j < bs; j++) {
      slots[j] = (base + j) % o.workingSet;
      keys[j] = all[slots[j]];
    }
    r++;
  };
  if (o.op === 'exists') {
    return {
      async call() {
        window();
        await o.store.batchExists(keys);
        return { pagesRequested: bs, pages: bs, wrongBytes: 0 };
      },
    };
  }
  return {
    async call() {
      window();
      const ok = await o.store.batchGetV1(keys, indices);
      let pages = 0;
      let wrongBytes = 0;
      for (let j = 0; j < bs; j++) {
        if (!ok[j]) continue;
        pages++;
        if (o.verify) {
          for (let c = 0; c < o.host.components; c++) {
            if (!verifyPage(o.host.pageView(j, c), pageSeed(slots[j], c))) {
              wrongBytes++;
              break;
            }
          }
        }
      }
      return { pagesRequested: bs, pages, wrongBytes };
    },
  };
}
