/**
 * A get row measures the steady state: each worker has read its whole working set once before the
 * window, whatever the warmup. A peer's shm segment is mapped per endpoint, and its page tables
 * are populated on the first READ of each 2 MiB chunk (the lazy attach: one minor fault per 4 KiB,
 * ~90 ms of CPU per 512 MiB). In a short warmup that set-up landed in the window, and at 64
 * workers on 2 cores it was most of it (bench:check's x64/PEAK fell from 0.72 to 0.18).
 * The check counts this process's minor page faults in the window against the pages read in it:
 * ~32 per freshly touched 128 KiB page, ~0 in the steady state; no time is asserted.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { resourceUsage } from 'node:process';
import { startProducer } from '../../src/bench/engine/producer.js';
import { runRow, type RowPlan } from '../../src/bench/engine/row.js';
import { freePort } from '../../src/bench/engine/net.js';
import { outcomeToRow } from '../../src/bench/report/outcome.js';
import { silentLogger } from '../../src/log.js';

const PAGE = 131072;
const WS = 2048; // 256 MiB: a first pass is 65,536 faults per worker

for (const op of ['get', 'read'] as const) {
  test(`${op}: a row with no warmup reads no page for the first time in its window (minor faults per page read < 1)`, async () => {
    const discoveryAddr = `127.0.0.1:${await freePort('127.0.0.1')}`;
    const store = { discoveryAddr, protocol: 'shm' as const, devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 10_000 };
    const producer = await startProducer(
      op === 'get'
        ? { ...store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, sets: [{ prefix: 'pcbench/get', count: WS }], fill: false, nodeId: 'warm-pass', logLevel: 'warning' }
        : { ...store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, sets: [], fill: false, rawBytes: WS * PAGE, nodeId: 'warm-pass', logLevel: 'warning' },
      silentLogger,
    );
    try {
      const plan: RowPlan = {
        op, path: op === 'get' ? 'hicache-get' : 'transport-read', rowOp: op, threads: 2, batchSize: 32, phase: 'single', components: 1, tokensPerPage: 64, warmupS: 0, durationS: 0.3, note: 'warm pass test',
        task: { store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 64, keyPrefix: 'pcbench/get', workingSet: op === 'get' ? WS : 0, publishBytes: 0, verify: false, raw: producer.raw, connectTimeoutMs: 60_000 },
      };
      let faultsAtStart = -1;
      let faultsAtEnd = -1;
      const row = outcomeToRow(await runRow(plan, {
        index: 0,
        rows: 1,
        logger: silentLogger,
        // 'warmup' comes as the workers are ready (a warmup of 0: the window starts next), the
        // first 'measure' tick inside the window, 'done' after the workers closed.
        onProgress: (p) => {
          if (p.stage === 'warmup' && faultsAtStart < 0) faultsAtStart = resourceUsage().minorPageFault;
          if (p.stage === 'measure') faultsAtEnd = resourceUsage().minorPageFault;
        },
      }));
      assert.ok(row.ok, row.note);
      assert.ok(row.pages > 0, 'pages read in the window');
      assert.ok(faultsAtStart >= 0 && faultsAtEnd >= faultsAtStart, `faults ${faultsAtStart} → ${faultsAtEnd}`);
      const perPage = (faultsAtEnd - faultsAtStart) / row.pages;
      assert.ok(perPage < 1, `${faultsAtEnd - faultsAtStart} minor faults in the window for ${row.pages} pages read (${perPage.toFixed(1)} per page): the window populated the peer's mapping`);
    } finally {
      await producer.stop();
    }
  });
}

test.run();
