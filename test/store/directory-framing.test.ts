import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FrameDecoder, FrameKind, FRAME_HEADER_BYTES, PROTOCOL_VERSION, WireError, decodeJson, encodeFrame, encodeRawFrame } from '../../src/framing.js';
import { LIMITS, encodeLookupResult, encodeRequestBody, parseLookupResult, parseRequest } from '../../src/store/directory/messages.js';
import type { Frame } from '../../src/framing.js';

function collect(maxFrameBytes?: number): { decoder: FrameDecoder; frames: Frame[] } {
  const frames: Frame[] = [];
  const decoder = new FrameDecoder((f) => frames.push(f), { maxFrameBytes, role: 'server' });
  return { decoder, frames };
}

function catchWire(fn: () => void): WireError {
  try {
    fn();
  } catch (err) {
    if (err instanceof WireError) return err;
    throw err;
  }
  throw new Error('expected a WireError');
}

test('header layout: u32 BE length | version | kind | u32 BE id | JSON', () => {
  const buf = encodeFrame(FrameKind.Request, 0x01020304, { op: 'ping' });
  const json = Buffer.from(JSON.stringify({ op: 'ping' }));
  assert.is(buf.length, FRAME_HEADER_BYTES + json.length);
  assert.is(buf.readUInt32BE(0), json.length);
  assert.is(buf[4], PROTOCOL_VERSION);
  assert.is(buf[5], FrameKind.Request);
  assert.is(buf.readUInt32BE(6), 0x01020304);
  assert.equal(buf.subarray(FRAME_HEADER_BYTES), json);
});

test('round trip with the stream split at every byte boundary', () => {
  const bodies = [{ op: 'ping' }, { op: 'lookup', keys: ['a', 'ünïcødé-€', 'c'.repeat(300)] }, { x: [1, 2, { y: null }] }, []];
  const stream = Buffer.concat(bodies.map((b, i) => encodeFrame(FrameKind.Response, i + 1, b)));
  for (let cut = 0; cut <= stream.length; cut++) {
    const { decoder, frames } = collect();
    decoder.push(stream.subarray(0, cut));
    decoder.push(stream.subarray(cut));
    assert.is(frames.length, bodies.length, `cut at ${cut}`);
    frames.forEach((f, i) => {
      assert.is(f.id, i + 1);
      assert.is(f.kind, FrameKind.Response);
      assert.equal(decodeJson(f), bodies[i]);
    });
    assert.is(decoder.bufferedBytes, 0);
  }
  // And one byte at a time.
  const { decoder, frames } = collect();
  for (let i = 0; i < stream.length; i++) decoder.push(stream.subarray(i, i + 1));
  assert.equal(frames.map((f) => decodeJson(f)), bodies);
});

test('several frames in one chunk, and a big frame spread over many chunks', () => {
  const many = Buffer.concat(Array.from({ length: 100 }, (_, i) => encodeFrame(FrameKind.Event, 0, { i })));
  const a = collect();
  a.decoder.push(many);
  assert.equal(a.frames.map((f) => (decodeJson(f) as { i: number }).i), Array.from({ length: 100 }, (_, i) => i));

  const keys = Array.from({ length: LIMITS.keysPerRequest }, (_, i) => `key-${i}`);
  const big = encodeFrame(FrameKind.Request, 7, { op: 'lookup', keys });
  const b = collect();
  const t0 = performance.now();
  for (let off = 0; off < big.length; off += 65536) b.decoder.push(big.subarray(off, off + 65536));
  const ms = performance.now() - t0;
  assert.is(b.frames.length, 1);
  assert.equal((parseRequest(decodeJson(b.frames[0])) as { keys: string[] }).keys.length, LIMITS.keysPerRequest);
  assert.throws(() => parseRequest({ op: 'lookup', keys: [...keys, 'one-more'] }), /more than the limit of 65536; split the batch/);
  assert.ok(ms < 200, `decoding ${big.length} bytes in 64 KiB chunks took ${ms.toFixed(1)} ms`);
});

test('an oversized length is rejected from the header alone, before any body is buffered', () => {
  const { decoder, frames } = collect(1024);
  const header = encodeRawFrame(FrameKind.Request, 9, new Uint8Array(0));
  header.writeUInt32BE(1_000_000_000, 0);
  const err = catchWire(() => decoder.push(header));
  assert.is(err.reason, 'oversized');
  assert.is(err.code, 'ERR_OVERSIZED');
  assert.is(err.requestId, 9);
  assert.match(err.message, 'frame of 1000000000 bytes exceeds the limit of 1024 bytes');
  assert.is(decoder.bufferedBytes, 0);
  assert.is(frames.length, 0);
  // The decoder stays failed.
  assert.throws(() => decoder.push(Buffer.from([1])), /exceeds the limit/);
  // Exactly the limit is fine.
  const ok = collect(16);
  ok.decoder.push(encodeRawFrame(FrameKind.Request, 1, Buffer.alloc(16, 0x20)));
  assert.is(ok.frames.length, 1);
  // The encoder refuses too.
  assert.throws(() => encodeFrame(FrameKind.Request, 1, 'x'.repeat(100), 50), /exceeds the limit of 50/);
});

test('a wrong version and an unknown kind are rejected with their reason', () => {
  const v9 = catchWire(() => collect().decoder.push(encodeRawFrame(FrameKind.Request, 1, Buffer.from('{}'), 9)));
  assert.is(v9.reason, 'bad-version');
  assert.is(v9.message, 'protocol version 9 not supported (server speaks 1)');
  const k = catchWire(() => collect().decoder.push(encodeRawFrame(77, 1, Buffer.from('{}'))));
  assert.is(k.reason, 'bad-kind');
  assert.match(k.message, 'unknown frame kind 77');
});

test('bad JSON, bad shapes and unknown operations', () => {
  const { decoder, frames } = collect();
  decoder.push(encodeRawFrame(FrameKind.Request, 3, Buffer.from('{"op": "lookup", ')));
  const j = catchWire(() => decodeJson(frames[0]));
  assert.is(j.reason, 'bad-json');
  assert.is(j.requestId, 3);
  assert.match(j.message, 'invalid JSON payload');
  assert.is(catchWire(() => parseRequest({ op: 'frobnicate' })).reason, 'unknown-op');
  assert.match(catchWire(() => parseRequest({ op: 'frobnicate' })).message, "unknown operation 'frobnicate'");
  assert.match(catchWire(() => parseRequest([1])).message, 'request must be a JSON object');
  assert.match(catchWire(() => parseRequest({ op: 'lookup', keys: ['a', 1] })).message, 'keys[1] must be a string');
  assert.match(catchWire(() => parseRequest({ op: 'publish', keys: ['k'], nodes: ['n'], locs: [0, -1, 1, 0] })).message, 'locs[1] must be a non-negative integer');
  assert.match(catchWire(() => parseRequest({ op: 'publish', keys: ['k'], nodes: ['n'], locs: [1, 0, 1, 0] })).message, 'locs[0] must index nodes');
  assert.match(catchWire(() => parseRequest({ op: 'publish', keys: ['k'], nodes: ['n'], locs: [0, 0, 1] })).message, 'locs must hold 4 numbers per key');
  assert.match(catchWire(() => parseRequest({ op: 'remove', keys: ['k'], nodes: ['n'], refs: [0, 1.5] })).message, 'refs[1] must be a non-negative integer');
  assert.match(catchWire(() => parseRequest({ op: 'join', node: { nodeId: 'a', protocol: 'carrier-pigeon' } })).message, 'node.protocol');
});

test('columnar batches round trip; parsing copies entries and nodes, dropping unknown fields', () => {
  const entries = [
    { key: 'k0', location: { nodeId: 'a', offset: 0, length: 4096, generation: 1 } },
    { key: 'k1', location: { nodeId: 'b', offset: 8192, length: 4096, generation: 2 ** 40 } },
    { key: 'k2', location: { nodeId: 'a', offset: 2 ** 45, length: 1, generation: 0, evil: true } },
  ];
  const body = encodeRequestBody({ op: 'publish', entries });
  assert.equal(body, { op: 'publish', keys: ['k0', 'k1', 'k2'], nodes: ['a', 'b'], locs: [0, 0, 4096, 1, 1, 8192, 4096, 2 ** 40, 0, 2 ** 45, 1, 0] });
  const req = parseRequest(JSON.parse(JSON.stringify(body)));
  assert.equal(req, { op: 'publish', entries: entries.map((e) => ({ key: e.key, location: { nodeId: e.location.nodeId, offset: e.location.offset, length: e.location.length, generation: e.location.generation } })) });
  const removals = [{ key: 'x', nodeId: 'b', generation: 3 }, { key: 'y', nodeId: 'c', generation: 0 }];
  assert.equal(parseRequest(JSON.parse(JSON.stringify(encodeRequestBody({ op: 'remove', entries: removals })))), { op: 'remove', entries: removals });
  const result = [entries[0].location, null, entries[1].location];
  const wire = JSON.parse(JSON.stringify(encodeLookupResult(result)));
  assert.equal(wire, { nodes: ['a', 'b'], locs: [0, 0, 4096, 1, -1, 0, 0, 0, 1, 8192, 4096, 2 ** 40] });
  assert.equal(parseLookupResult(wire, 3), result);
  assert.throws(() => parseLookupResult(wire, 2), /3 locations for 2 keys/);
  const node = { nodeId: 'a', protocol: 'tcp', host: 'h', transportAddress: 'QQ==', regionDescriptor: null, attributes: { page: 4096, mla: true }, x: 1 };
  const join = parseRequest({ op: 'join', node });
  assert.equal(join, { op: 'join', node: { nodeId: 'a', protocol: 'tcp', host: 'h', transportAddress: 'QQ==', regionDescriptor: null, attributes: { page: 4096, mla: true } } });
});

test.run();
