/** --verify: a page that is not what its publisher wrote (a stale generation) is caught and fails the row. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { startProducer } from '../../src/bench/engine/producer.js';
import { runRow, type RowPlan } from '../../src/bench/engine/row.js';
import { fillPage, pageSeed, verifyPage, verifyPageSampled } from '../../src/bench/engine/pattern.js';
import { freePort } from '../../src/bench/engine/net.js';
import { outcomeToRow } from '../../src/bench/report/outcome.js';
import { silentLogger } from '../../src/log.js';
import { HostKVPool } from '../../src/store/host-pool.js';

const PAGE = 16384;
const WS = 64;

test('pattern: the seed is keyed by key, component and generation; sample and full both catch another generation', () => {
  const page = new Uint8Array(PAGE);
  fillPage(page, pageSeed(7, 0, 2));
  assert.ok(verifyPage(page, pageSeed(7, 0, 2)) && verifyPageSampled(page, pageSeed(7, 0, 2)));
  for (const other of [pageSeed(7, 0, 1), pageSeed(8, 0, 2), pageSeed(7, 1, 2)]) {
    assert.not.ok(verifyPage(page, other));
    assert.not.ok(verifyPageSampled(page, other));
  }
  // One flipped byte: full catches it anywhere; sample where it samples (the last word here).
  page[PAGE - 1] ^= 1;
  assert.not.ok(verifyPage(page, pageSeed(7, 0, 2)));
  assert.not.ok(verifyPageSampled(page, pageSeed(7, 0, 2)));
});

test('HostKVPool over memory it is given (a row\'s shared pool): views into that memory; too small is an error', () => {
  const sab = new Uint8Array(new SharedArrayBuffer(4 * PAGE));
  const pool = new HostKVPool({ layout: 'mla', pageBytes: PAGE, pages: 4, tokensPerPage: 16, buffer: sab });
  pool.pageView(3)[0] = 42;
  assert.is(sab[3 * PAGE], 42);
  assert.throws(() => new HostKVPool({ layout: 'mha', pageBytes: PAGE, pages: 4, tokensPerPage: 16, buffer: sab }), /at least 131072 bytes/);
});

async function getRow(stalePages: number[], verifyMode: 'sample' | 'full') {
  const discoveryAddr = `127.0.0.1:${await freePort('127.0.0.1')}`;
  const store = { discoveryAddr, protocol: 'shm' as const, devices: [], ibPort: 1, gidIndex: undefined, authToken: undefined, localHost: '127.0.0.1', timeoutMs: 10_000 };
  const producer = await startProducer(
    { ...store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 16, sets: [{ prefix: 'pcbench/get', count: WS }], fill: true, generation: 3, stalePages, nodeId: 'verify-test', logLevel: 'warning' },
    silentLogger,
  );
  try {
    const plan: RowPlan = {
      op: 'get', path: 'hicache-get', rowOp: 'get', threads: 1, batchSize: 8, phase: 'single', components: 1, tokensPerPage: 16, warmupS: 0.1, durationS: 0.4, note: 'verify test',
      task: { store, layout: 'mla', pageBytes: PAGE, tokensPerPage: 16, keyPrefix: 'pcbench/get', workingSet: WS, publishBytes: 0, verify: true, verifyMode, generation: 3, raw: null, connectTimeoutMs: 30_000 },
    };
    return outcomeToRow(await runRow(plan, { index: 0, rows: 1, logger: silentLogger }));
  } finally {
    await producer.stop();
  }
}

test('a clean working set: every hit page verified, none wrong, the row ok', async () => {
  const row = await getRow([], 'sample');
  assert.ok(row.ok, row.note);
  assert.ok(row.pages > 0);
  assert.is(row.pages_verified, row.pages);
  assert.is(row.wrong_pages, 0);
});

for (const mode of ['sample', 'full'] as const) {
  test(`one stale page (generation 2 where 3 was published) is caught by --verify-mode ${mode} and fails the row loudly`, async () => {
    const row = await getRow([5], mode);
    assert.not.ok(row.ok, 'a wrong page fails the row');
    assert.ok(row.wrong_pages! > 0, `wrong_pages ${row.wrong_pages}`);
    assert.ok(row.pages_verified! >= row.wrong_pages!);
    assert.match(row.note, /WRONG PAGES: \d+ of \d+ verified pages/);
  });
}

test.run();
