/**
 * The sidecar path across hosts: two `peercache node`s in different network namespaces (a third
 * hosts the directory), SGLang ranks in them through the Python adapter (PeerCacheStorage). A
 * silent partition between the two nodes costs a reading rank at most the sidecar's deadline,
 * which by default is below the adapter's timeout_s, and the answers are misses: the adapter logs
 * nothing (an error there would be logged on every SGLang call). After heal, hits come back.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { netnsUnavailable, makeHosts, type Host, type NsChild } from '../helpers/netns.js';
import { storeFixture, within } from '../helpers/net-cluster.js';
import { DEFAULT_BATCH_TIMEOUT_MS } from '../../src/transport/types.js';
import { PEER_RETRY_MAX_MS } from '../../src/store/peers.js';

const skip = netnsUnavailable();
const bin = fileURLToPath(new URL('../../dist/cli/peercache.js', import.meta.url));
const rankScript = fileURLToPath(new URL('../fixtures/sidecar_rank.py', import.meta.url));
const adapterConfigPy = fileURLToPath(new URL('../../python/peercache_sglang/config.py', import.meta.url));
/** The sidecars' data-plane deadline here (--timeout-ms), and the ranks' timeout_s (above it, as by default). */
const SIDECAR_MS = 2000;
const RANK_TIMEOUT_S = 5;
const SLACK = 700;
const PAGES = 16;

test('defaults: the sidecar ends a call (its --timeout-ms) before the adapter gives up on it (timeout_s)', async () => {
  const src = await readFile(adapterConfigPy, 'utf8');
  const m = /cfg\.get\("timeout_s", ([\d.]+)\)/.exec(src);
  assert.ok(m, 'the adapter default timeout_s is found in config.py (AdapterConfig)');
  const adapterMs = Number(m![1]) * 1000;
  assert.ok(DEFAULT_BATCH_TIMEOUT_MS < adapterMs, `sidecar default ${DEFAULT_BATCH_TIMEOUT_MS} ms must be below the adapter's timeout_s ${adapterMs} ms`);
});

test('sidecars across hosts: a cut costs a rank at most the sidecar deadline, answers are misses with nothing logged, hits after heal', async () => {
  if (skip) return console.log(`    skipped: ${skip}`);
  const net = makeHosts(['dir', 'pub', 'reader']);
  const dir = await mkdtemp(join(tmpdir(), 'pcnet-sidecar-'));
  try {
    const { dir: d, pub, reader } = net.hosts;
    const discovery = `${d.ip}:7600`;
    const directory = d.spawnFixture(storeFixture, [JSON.stringify({ directory: discovery, host: d.ip, nodeId: 'dirhost', pages: 1, pageBytes: 4096 })]);
    await directory.ready;
    const sidecar = async (h: Host): Promise<string> => {
      const sock = join(dir, `${h.role}.sock`);
      const n = h.spawn(process.execPath, [bin, 'node', '--socket', sock, '--discovery-addr', discovery, '--local-host', h.ip, '--protocol', 'tcp', '--global-segment', '16m', '--slot-bytes', '8192', '--auth-token', 'netns-test-token', '--timeout-ms', String(SIDECAR_MS), '--node-id', `sidecar-${h.role}`]);
      await n.waitForLine(/ready: socket/, 30_000);
      return sock;
    };
    const rank = async (h: Host, sock: string): Promise<NsChild> => {
      const r = h.spawn('python3', [rankScript, JSON.stringify({ sock, timeout_s: RANK_TIMEOUT_S })], {}, { readsStdin: true });
      await r.ready;
      return r;
    };
    const writer = await rank(pub, await sidecar(pub));
    const readerRank = await rank(reader, await sidecar(reader));
    assert.is((await writer.request({ op: 'set', prefix: 'sc', count: PAGES })).hits, PAGES);
    const warm = await readerRank.request({ op: 'get', prefix: 'sc', count: PAGES });
    assert.is(warm.hits, PAGES);
    assert.is(warm.wrong, 0);

    reader.cut([pub]);
    const calls: string[] = [];
    for (let i = 0; i < 4; i++) {
      for (const op of ['get', 'exists']) {
        const a = await readerRank.request({ op, prefix: 'sc', count: PAGES }, 30_000);
        assert.not.ok(a.error, `the adapter raised: ${String(a.error)}`);
        calls.push(`${op} ${Math.round(a.ms as number)} ms`);
        assert.is(a.hits, 0, `${op} during the cut: misses`);
        assert.ok((a.ms as number) <= SIDECAR_MS + SLACK, `${op} took ${Math.round(a.ms as number)} ms: the sidecar's deadline (${SIDECAR_MS} ms) must end it`);
        assert.equal(a.logged, [], `the adapter logged during the cut: ${JSON.stringify(a.logged)}`);
      }
    }
    console.log(`    during the cut: ${calls.join(', ')}`);

    reader.heal();
    const t0 = Date.now();
    const back = await within(PEER_RETRY_MAX_MS + SIDECAR_MS + 3000, async () => {
      const a = await readerRank.request({ op: 'get', prefix: 'sc', count: PAGES });
      assert.is(a.wrong, 0);
      return a.hits === PAGES;
    }, 250);
    console.log(`    hits again ${Date.now() - t0} ms after heal`);
    assert.ok(back >= 0, 'hits after heal');
  } finally {
    await net.close();
    await rm(dir, { recursive: true, force: true });
  }
});

test.run();
