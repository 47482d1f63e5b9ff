/**
 * Others' records cannot lock a node out (issue 24, item 6): every join answers with the whole
 * member list, which must fit the joiner's frame (16 MiB by default). 70 members at the largest
 * record the limits allow made it ~18 MB, and every later join failed "join response too large".
 * Now the sum of records is bounded (maxMemberBytes), big records may fill only 3/4 of it, and the
 * join that would pass the bound is the one refused.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DirectoryServer } from '../../src/store/directory/server.js';
import { DirectoryClient } from '../../src/store/directory/client.js';
import { LIMITS } from '../../src/store/directory/messages.js';
import type { NodeInfo } from '../../src/store/types.js';
import { nodeInfo } from '../helpers/directory.js';

/** The largest node record the directory's limits accept (~262 KB of JSON). */
function fattest(nodeId: string): NodeInfo {
  const attributes: Record<string, string> = {};
  for (let i = 0; i < LIMITS.attributes; i++) attributes[String(i).padStart(LIMITS.attributeChars, 'a')] = 'v'.repeat(LIMITS.attributeChars);
  return {
    ...nodeInfo(nodeId),
    host: 'h'.repeat(LIMITS.idChars),
    transportAddress: 'A'.repeat(LIMITS.blobChars),
    regionDescriptor: 'R'.repeat(LIMITS.blobChars),
    attributes,
  };
}

test('70 members at the largest record: an ordinary node still joins; the fat join past the bound is refused with its reason', async () => {
  const server = await DirectoryServer.listen();
  const clients: DirectoryClient[] = [];
  try {
    let refused: Error | null = null;
    let joined = 0;
    for (let i = 0; i < 70 && refused === null; i++) {
      const c = await DirectoryClient.connect({ port: server.address.port });
      try {
        await c.join(fattest(`fat-${i}`));
        clients.push(c);
        joined++;
      } catch (err) {
        refused ??= err as Error;
        await c.close(); // (fewer sessions to send the fat node-joined events to: a faster test)
      }
    }
    assert.ok(refused !== null, `all ${joined} fat joins were accepted`);
    assert.match(refused.message, /maxMemberBytes/);
    assert.not.match(refused.message, /too large/);
    // An ordinary node joins and sees everyone; the fat members' connections still work.
    const small = await DirectoryClient.connect({ port: server.address.port });
    clients.push(small);
    const members = await small.join(nodeInfo('ordinary'));
    assert.is(members.length, joined + 1);
    assert.is((await clients[0].members()).length, joined + 1);
    // Leaving gives the room back: a fat node joins again once another left.
    await clients[0].close();
    const again = await DirectoryClient.connect({ port: server.address.port });
    clients.push(again);
    await again.join(fattest('fat-again'));
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await server.close();
  }
});

test('maxMemberBytes: many ordinary nodes fit beside the fat ones; a bad value is refused', async () => {
  const server = await DirectoryServer.listen({ maxMemberBytes: 1 << 20 });
  const clients: DirectoryClient[] = [];
  try {
    // Fat records take at most 3/4 of the bound ...
    const each = Buffer.byteLength(JSON.stringify(fattest('fat-0')));
    let fat = 0;
    for (let i = 0; i < 6; i++) {
      const c = await DirectoryClient.connect({ port: server.address.port });
      clients.push(c);
      await c.join(fattest(`fat-${i}`)).then(() => fat++, () => undefined);
    }
    assert.is(fat, Math.floor((0.75 * (1 << 20)) / each));
    // ... so a hundred ordinary ones still join.
    for (let i = 0; i < 100; i++) {
      const c = await DirectoryClient.connect({ port: server.address.port });
      clients.push(c);
      await c.join(nodeInfo(`n${i}`));
    }
  } finally {
    await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    await server.close();
  }
  let err: unknown = null;
  await DirectoryServer.listen({ maxMemberBytes: 0 }).catch((e) => (err = e));
  assert.match(String(err), /maxMemberBytes must be a positive integer/);
});

test.run();
