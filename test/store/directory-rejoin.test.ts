/**
 * The embedded directory's host dies: survivors reconnect, join again and republish what they
 * hold, so their pages are found again (real store processes on loopback, tcp data plane).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectoryClient } from '../../src/store/directory/client.js';
import { spawnFixture, type Child } from '../helpers/child.js';
import { sleep } from '../helpers/directory.js';
import { freePort } from '../helpers/ports.js';

const nodeFixture = new URL('../fixtures/store-node.ts', import.meta.url);
/** The bound this test states: backoff (at most 2 s a step) plus a join and a republish. */
const REJOIN_BOUND_MS = 6000;

async function findAll(port: number, keys: string[], deadlineMs: number): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < deadlineMs) {
    try {
      const c = await DirectoryClient.connect({ port, connectTimeoutMs: 500, heartbeatMs: 0 });
      try {
        const found = await c.lookup(keys);
        if (found.every((l) => l !== null)) return Date.now() - t0;
      } finally {
        await c.close();
      }
    } catch {
      /* nobody serves yet */
    }
    await sleep(50);
  }
  return -1;
}

test("the directory host is SIGKILLed and another node starts on its address: a survivor's pages are found again within the bound", async () => {
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  const children: Child[] = [];
  try {
    const host = spawnFixture(nodeFixture, [addr, 'tcp', 'host', 'h', '4', '4096']);
    children.push(host);
    await host.ready;
    const survivor = spawnFixture(nodeFixture, [addr, 'tcp', 'survivor', 's', '16', '4096']);
    children.push(survivor);
    assert.is((await survivor.ready).published, 16);
    const keys = Array.from({ length: 16 }, (_, i) => `s/${i}__k`); // mla object keys
    assert.ok((await findAll(port, keys, 2000)) >= 0, 'published before the kill');

    await host.kill('SIGKILL');
    const t0 = Date.now();
    const again = spawnFixture(nodeFixture, [addr, 'tcp', 'host2', 'h2', '4', '4096']);
    children.push(again);
    await again.ready;
    const took = await findAll(port, keys, REJOIN_BOUND_MS);
    assert.ok(took >= 0, `the survivor's pages were not found again within ${REJOIN_BOUND_MS} ms\n${survivor.stderr()}`);
    console.log(`    survivor's 16 pages found again ${Date.now() - t0} ms after the directory host died`);
    assert.ok(survivor.proc.exitCode === null, 'the survivor is still running');
  } finally {
    for (const c of children) await c.kill('SIGKILL');
  }
});

test.run();
