/**
 * One batch call per loop iteration, as SGLang's HiCache drives the store (get/set/exists), or
 * the bare data plane (read), or nothing (noop, the engine's own cost). A session owns what its
 * driver needs (a store client, or a transport endpoint) for one worker and one row; open-loop
 * pacing or other workloads slot in here.
 */
import { randomBytes } from 'node:crypto';
import { HostKVPool } from '../../store/host-pool.js';
import { PeerCacheStore } from '../../store/peer-cache-store.js';
import { openTransport } from '../../transport/index.js';
import { alignedBytes } from '../../transport/memory.js';
import { OP_FIELDS } from '../../transport/types.js';
import { pageSeed, verifyPage, verifyPageSampled } from './pattern.js';
import type { WorkerTask } from './protocol.js';
import { PeercacheError } from '../../errors.js';

/**
 * This worker thread's part of its node ids and set keys. The pid alone is not enough: two runs in
 * one process (runSweep twice at once) or on two hosts may share a directory (one Redis).
 */
const THREAD_TAG = randomBytes(3).toString('hex');

export interface CallOutcome {
  pagesRequested: number;
  /** get: pages read and validated; set: pages written; exists: pages probed; read: blocks read. */
  pages: number;
  /** Hit pages checked against what their publisher wrote (verify on). */
  verified: number;
  /** Hit pages whose bytes did not match their key and generation (verify on). */
  wrongPages: number;
}

export interface Driver {
  call(): Promise<CallOutcome>;
  /**
   * Calls that read every page this driver's window will read once (0: its window reads nothing
   * from a peer). The worker makes them before it reports ready: a peer's shm segment is mapped
   * per endpoint and its page tables are populated on the first READ of each 2 MiB chunk (the
   * lazy attach), ~90 ms of CPU per 512 MiB mapped against ~37 ms to copy it, so a window that
   * starts before that measures the set-up, not the steady state (x64/PEAK fell from 0.72 to 0.18).
   */
  passCalls: number;
}

export interface Session {
  driver: Driver;
  /** Transports (lanes) that carried data. */
  lanes(): string[];
  close(): Promise<void>;
}

/** The key names the producer publishes: `<prefix>/<i>`. */
export function workingSetKeys(prefix: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => `${prefix}/${i}`);
}

export async function openSession(task: WorkerTask): Promise<Session> {
  if (task.op === 'noop') return noopSession(task.batchSize);
  if (task.op === 'read') return readSession(task);
  return storeSession(task);
}

function noopSession(bs: number): Session {
  const out: CallOutcome = { pagesRequested: bs, pages: bs, verified: 0, wrongPages: 0 };
  return { driver: { call: async () => out, passCalls: 0 }, lanes: () => [], close: async () => {} };
}

/** micro's transport path: READ `batchSize` blocks per call from the producer's raw region. */
async function readSession(task: WorkerTask): Promise<Session> {
  if (!task.raw) throw new PeercacheError('ERR_CONFIG', 'a read row needs the producer raw region');
  const bs = task.batchSize;
  const block = task.pageBytes;
  const hot = task.readPattern === 'hot';
  const blocks = hot ? 1 : Math.floor(task.raw.bytes / block);
  const node = await openTransport({ protocol: task.store.protocol, devices: task.store.devices, ibPort: task.store.ibPort, gidIndex: task.store.gidIndex, host: task.store.localHost, timeoutMs: task.store.timeoutMs });
  try {
    const ep = await node.connect(Buffer.from(task.raw.address, 'base64'));
    const remote = ep.attach(Buffer.from(task.raw.descriptor, 'base64'));
    const local = node.register(alignedBytes((hot ? 1 : bs) * block, false));
    const ops = new Float64Array(bs * OP_FIELDS);
    let r = 0;
    const out: CallOutcome = { pagesRequested: bs, pages: bs, verified: 0, wrongPages: 0 };
    return {
      driver: {
        async call() {
          const base = task.index * 7919 + r * bs;
          for (let j = 0; j < bs; j++) {
            const o = j * OP_FIELDS;
            ops[o] = ((base + j) % blocks) * block;
            ops[o + 1] = 0;
            ops[o + 2] = hot ? 0 : j * block;
            ops[o + 3] = block;
          }
          r++;
          await ep.read(remote, [local], ops, bs);
          return out;
        },
        passCalls: Math.ceil(blocks / bs),
      },
      lanes: () => ep.lanes(),
      close: async () => {
        ep.close();
        local.free();
        await node.close();
      },
    };
  } catch (err) {
    await node.close();
    throw err;
  }
}

async function storeSession(task: WorkerTask): Promise<Session> {
  const shared = task.hostPool ?? null;
  const host = shared
    ? new HostKVPool({ layout: task.layout, pageBytes: task.pageBytes, pages: shared.pages, tokensPerPage: task.tokensPerPage, buffer: shared.buffer })
    : new HostKVPool({ layout: task.layout, pageBytes: task.pageBytes, pages: task.batchSize, tokensPerPage: task.tokensPerPage, shared: false });
  const store = await PeerCacheStore.open({
    ...task.store,
    hostPool: host,
    globalSegmentBytes: task.op === 'set' ? task.publishBytes : 0,
    nodeId: `bench-${process.pid}-${THREAD_TAG}-r${task.row}-w${task.index}`,
    maxBytes: Number.MAX_SAFE_INTEGER,
    // 64 workers on 2 cores starve the producer process that serves the directory while they
    // start: give it time rather than fail the row.
    directoryTimeoutMs: task.connectTimeoutMs,
  });
  if (task.op === 'get' || task.op === 'prefetch') {
    // Steady state, reached before the window: one lookup of the whole working set fills the
    // (safe, validated) location cache, as a long-running decode node's would be.
    await store.batchExists(workingSetKeys(task.keyPrefix, task.workingSet));
  }
  return { driver: storeDriver(task, store, host), lanes: () => store.lanes(), close: () => store.close() };
}

function storeDriver(task: WorkerTask, store: PeerCacheStore, host: HostKVPool): Driver {
  const bs = task.batchSize;
  // This worker's batch slots in the host pool: its own share of a shared pool (cycled through,
  // one slot per call), or its one-batch pool.
  const share = Math.floor(host.pages / Math.max(1, task.hostPool ? task.threads : 1));
  const slotCount = Math.max(1, Math.floor(share / bs));
  if (share < bs) throw new PeercacheError('ERR_CONFIG', `the host pool (${host.pages} pages) has less than one batch (${bs} pages) for each of ${task.threads} workers`);
  const slotIndices = Array.from({ length: slotCount }, (_, s) => host.tokenIndices(Array.from({ length: bs }, (_, i) => task.index * (task.hostPool ? share : 0) + s * bs + i)));
  let slot = 0;
  let indices = slotIndices[0];
  let firstPage = task.index * (task.hostPool ? share : 0);
  const nextSlot = () => {
    slot = slot + 1 === slotCount ? 0 : slot + 1;
    indices = slotIndices[slot];
    firstPage = task.index * (task.hostPool ? share : 0) + slot * bs;
  };
  const keys = new Array<string>(bs);
  const slots = new Int32Array(bs);
  let r = 0;
  if (task.op === 'set') {
    // Fresh keys on every call, so each call really publishes (a set of an existing key is a no-op).
    const prefix = `pcbench/set/${process.pid}-${THREAD_TAG}/${task.row}/${task.index}/`;
    return {
      async call() {
        for (let j = 0; j < bs; j++) keys[j] = `${prefix}${r}/${j}`;
        r++;
        nextSlot();
        const ok = await store.batchSetV1(keys, indices);
        let pages = 0;
        for (const x of ok) if (x) pages++;
        return { pagesRequested: bs, pages, verified: 0, wrongPages: 0 };
      },
      // Writes into this worker's own published pool, which is written through at allocation.
      passCalls: 0,
    };
  }
  const all = workingSetKeys(task.keyPrefix, task.workingSet);
  const check = task.verifyMode === 'full' ? verifyPage : verifyPageSampled;
  const generation = task.generation ?? 1;
  const window = () => {
    const base = task.index * 7919 + r * bs;
    for (let j = 0; j < bs; j++) {
      slots[j] = (base + j) % task.workingSet;
      keys[j] = all[slots[j]];
    }
    r++;
  };
  if (task.op === 'prefetch') return prefetchDriver(task, store, host, all, () => slotIndices[slot], () => firstPage, nextSlot, check, generation);
  if (task.op === 'exists') {
    return {
      async call() {
        window();
        await store.batchExists(keys);
        return { pagesRequested: bs, pages: bs, verified: 0, wrongPages: 0 };
      },
      passCalls: 0,
    };
  }
  return {
    async call() {
      window();
      nextSlot();
      const ok = await store.batchGetV1(keys, indices);
      let pages = 0;
      let wrongPages = 0;
      let verified = 0;
      for (let j = 0; j < bs; j++) {
        if (!ok[j]) continue;
        pages++;
        if (task.verify) {
          verified++;
          for (let c = 0; c < host.components; c++) {
            if (!check(host.pageView(firstPage + j, c), pageSeed(slots[j], c, generation))) {
              wrongPages++;
              break;
            }
          }
        }
      }
      return { pagesRequested: bs, pages, verified, wrongPages };
    },
    // Consecutive windows of the working set from this worker's own start: one pass reads it all.
    passCalls: Math.ceil(task.workingSet / bs),
  };
}

/** SGLang's storage batch size: batch_exists and batch_get_v1 go 128 pages at a time. */
export const STORAGE_BATCH = 128;

/**
 * One request's prefetch per call, as the HiCache controller does it: batch_exists over the
 * request's page keys in chunks of 128, stopping at the first short chunk, then batch_get_v1 of
 * the hit prefix in 128-page batches (stopping at a shortfall). Workers in one group of
 * `readersPerKey` walk the same request sequence (MLA: K ranks read the same keys).
 */
function prefetchDriver(
  task: WorkerTask,
  store: PeerCacheStore,
  host: HostKVPool,
  all: string[],
  indicesNow: () => Int32Array,
  firstPageNow: () => number,
  nextSlot: () => void,
  check: (b: Uint8Array, seed: number) => boolean,
  generation: number,
): Driver {
  const p = task.prefetch!;
  const n = p.prefixPages;
  const hits = Math.min(n, Math.round(n * p.hitRatio));
  const group = Math.floor(task.index / p.readersPerKey);
  const keys = new Array<string>(n);
  const slots = new Int32Array(n);
  const tpp = host.tokensPerPage;
  let r = 0;
  return {
    async call() {
      const start = (group * 7919 + r * n) % task.workingSet;
      for (let i = 0; i < n; i++) {
        if (i < hits) {
          slots[i] = (start + i) % task.workingSet;
          keys[i] = all[slots[i]];
        } else {
          slots[i] = -1;
          keys[i] = `${task.keyPrefix}/miss/${group}/${r}/${i}`;
        }
      }
      r++;
      let hit = 0;
      for (let c = 0; c < n; c += STORAGE_BATCH) {
        const chunk = keys.slice(c, c + STORAGE_BATCH);
        const found = await store.batchExists(chunk);
        hit += found;
        if (found < chunk.length) break;
      }
      let pages = 0;
      let verified = 0;
      let wrongPages = 0;
      for (let b = 0; b < hit; b += STORAGE_BATCH) {
        const m = Math.min(STORAGE_BATCH, hit - b);
        nextSlot();
        const indices = indicesNow();
        const first = firstPageNow();
        const ok = await store.batchGetV1(keys.slice(b, b + m), indices.subarray(0, m * tpp));
        let lead = 0;
        while (lead < m && ok[lead]) lead++;
        pages += lead;
        if (task.verify) {
          for (let j = 0; j < lead; j++) {
            verified++;
            for (let comp = 0; comp < host.components; comp++) {
              if (!check(host.pageView(first + j, comp), pageSeed(slots[b + j], comp, generation))) {
                wrongPages++;
                break;
              }
            }
          }
        }
        if (lead < m) break;
      }
      return { pagesRequested: n, pages, verified, wrongPages };
    },
    // A request's hit prefix starts n pages after the last one's: the starts cycle in ws / n calls.
    passCalls: hits > 0 ? Math.ceil(task.workingSet / n) : 0,
  };
}
