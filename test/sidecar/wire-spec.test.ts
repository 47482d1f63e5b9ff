/**
 * schema/sidecar-wire.json is the sidecar protocol as data; python/tests/test_wire_spec.py checks the
 * adapter against the same file. Here: the frame header, the binary request header (built from the
 * spec's field table and read back by the sidecar's own parser), the lane's layout and the error
 * codes of a real sidecar's error frames. Change a field in the spec and both suites fail.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeFrame, encodeRawFrame, FRAME_HEADER_BYTES, FrameDecoder, FrameKind, PROTOCOL_VERSION, type Frame } from '../../src/framing.js';
import { BINARY_HEADER_BYTES, BINARY_PER_KEY_LENGTHS, BINARY_PER_KEY_POOLS, DEFAULT_SIDECAR_LIMITS, parseBinaryRequest, SIDECAR_ERROR_CODES, SIDECAR_PROTOCOL } from '../../src/sidecar/protocol.js';
import * as lane from '../../src/sidecar/lane.js';
import { SidecarServer } from '../../src/sidecar/server.js';
import { PeerCacheStore } from '../../src/store/peer-cache-store.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../helpers/ports.js';

interface Field {
  name: string;
  type: 'u8' | 'u16' | 'u32' | 'u64';
  offset: number;
}
interface WireSpec {
  protocol: string;
  frame: { byte_order: 'big'; header_bytes: number; version: number; fields: Field[]; kinds: Record<string, number> };
  binary_request: { byte_order: 'little'; header_bytes: number; fields: Field[]; ops: Record<'exists' | 'get' | 'set', number>; flags: Record<string, number>; key_separator: string };
  lane: { magic: number; offsets: Record<string, number>; request_bytes: number; answer_bytes: number; total_bytes: number; margin_ns: number };
  error_codes: Record<string, string>;
}

const spec = JSON.parse(readFileSync(new URL('../../schema/sidecar-wire.json', import.meta.url), 'utf8')) as WireSpec;
function field(fields: Field[], name: string): Field {
  const f = fields.find((x) => x.name === name);
  if (!f) throw new Error(`the spec has no field ${name}`);
  return f;
}

/** Writes `value` into `buf` as the spec's field says (width and byte order from the spec alone). */
function put(buf: Buffer, f: Field, value: number, order: 'big' | 'little'): void {
  const le = order === 'little';
  if (f.type === 'u8') buf.writeUInt8(value, f.offset);
  else if (f.type === 'u16') le ? buf.writeUInt16LE(value, f.offset) : buf.writeUInt16BE(value, f.offset);
  else if (f.type === 'u32') le ? buf.writeUInt32LE(value, f.offset) : buf.writeUInt32BE(value, f.offset);
  else le ? buf.writeBigUInt64LE(BigInt(value), f.offset) : buf.writeBigUInt64BE(BigInt(value), f.offset);
}

test('the frame header is the spec\'s: fields, sizes, byte order, version and kinds', () => {
  assert.is(spec.protocol, SIDECAR_PROTOCOL);
  assert.is(FRAME_HEADER_BYTES, spec.frame.header_bytes);
  assert.is(PROTOCOL_VERSION, spec.frame.version);
  assert.equal({ request: FrameKind.Request, response: FrameKind.Response, event: FrameKind.Event, error: FrameKind.Error }, spec.frame.kinds);
  const frame = encodeRawFrame(FrameKind.Error, 0x01020304, Buffer.from('xyz'));
  const expected = Buffer.alloc(spec.frame.header_bytes);
  put(expected, field(spec.frame.fields, 'payload_length'), 3, 'big');
  put(expected, field(spec.frame.fields, 'version'), spec.frame.version, 'big');
  put(expected, field(spec.frame.fields, 'kind'), spec.frame.kinds.error, 'big');
  put(expected, field(spec.frame.fields, 'request_id'), 0x01020304, 'big');
  assert.equal([...frame.subarray(0, FRAME_HEADER_BYTES)], [...expected]);
});

test('a binary get built from the spec\'s field table is read back field for field by the sidecar\'s parser', () => {
  const b = spec.binary_request;
  assert.is(BINARY_HEADER_BYTES, b.header_bytes);
  assert.equal({ per_key_pools: BINARY_PER_KEY_POOLS, per_key_lengths: BINARY_PER_KEY_LENGTHS }, b.flags);
  const keys = ['a0b1', 'c2d3_0_1_k'];
  const blob = Buffer.from(keys.join(b.key_separator));
  const offsets = [4096, 8192];
  const payload = Buffer.alloc(b.header_bytes + 8 * keys.length + blob.length);
  const f = (name: string) => field(b.fields, name);
  put(payload, f('op'), b.ops.get, 'little');
  put(payload, f('flags'), 0, 'little');
  put(payload, f('reserved'), 0, 'little');
  put(payload, f('count'), keys.length, 'little');
  put(payload, f('deadline_ms'), 1_900_000_000_123, 'little');
  put(payload, f('key_bytes'), blob.length, 'little');
  put(payload, f('pool'), 3, 'little');
  put(payload, f('length'), 4096, 'little');
  offsets.forEach((o, i) => payload.writeBigUInt64LE(BigInt(o), b.header_bytes + 8 * i));
  blob.copy(payload, b.header_bytes + 8 * keys.length);
  const req = parseBinaryRequest(payload, DEFAULT_SIDECAR_LIMITS);
  assert.is(req.op, 'get');
  if (req.op !== 'get') return;
  assert.equal(req.keys, keys);
  assert.is(req.deadline, 1_900_000_000_123);
  assert.is(req.pool, 3);
  assert.equal(Array.from(req.offsets), offsets);
  assert.equal(typeof req.lengths === 'number' ? [req.lengths, req.lengths] : Array.from(req.lengths), [4096, 4096]);
  for (const [op, code] of Object.entries(b.ops)) {
    const exists = Buffer.alloc(b.header_bytes);
    put(exists, f('op'), code, 'little');
    if (op === 'exists') assert.is(parseBinaryRequest(exists, DEFAULT_SIDECAR_LIMITS).op, 'exists');
    else assert.throws(() => parseBinaryRequest(exists, DEFAULT_SIDECAR_LIMITS), new RegExp(`${op}\\.length must be`), `0x${code.toString(16)} is ${op}`);
  }
});

test('the lane layout is the spec\'s', () => {
  const o = spec.lane.offsets;
  assert.equal(
    {
      magic: lane.LANE_MAGIC,
      request_id: lane.LANE_REQUEST_ID,
      request_length: lane.LANE_REQUEST_LENGTH,
      client_polls_until: lane.LANE_CLIENT_POLLS_UNTIL,
      sidecar_polls_until: lane.LANE_SIDECAR_POLLS_UNTIL,
      answer_id: lane.LANE_ANSWER_ID,
      answer_length: lane.LANE_ANSWER_LENGTH,
      answer_kind: lane.LANE_ANSWER_KIND,
      request_at: lane.LANE_REQUEST_AT,
      request_bytes: lane.LANE_REQUEST_BYTES,
      answer_bytes: lane.LANE_ANSWER_BYTES,
      total_bytes: lane.LANE_BYTES,
      margin_ns: Number(lane.LANE_MARGIN_NS),
    },
    { magic: spec.lane.magic, ...o, request_bytes: spec.lane.request_bytes, answer_bytes: spec.lane.answer_bytes, total_bytes: spec.lane.total_bytes, margin_ns: spec.lane.margin_ns },
  );
  assert.is(Buffer.from('PCL1').readUInt32LE(0), spec.lane.magic, "the magic is 'PCL1' little-endian");
});

test('error codes: the sidecar\'s list is the spec\'s, and a real sidecar\'s error frames carry them', async () => {
  assert.equal([...SIDECAR_ERROR_CODES].sort(), Object.keys(spec.error_codes).filter((k) => k.startsWith('ERR_')).sort());
  const dir = mkdtempSync(join(tmpdir(), 'pc-wire-spec-'));
  const store = await PeerCacheStore.open({ protocol: 'tcp', discoveryAddr: `127.0.0.1:${await freePort()}`, globalSegmentBytes: 2 ** 20, slotBytes: 4096 });
  const server = await SidecarServer.listen({ socketPath: join(dir, 'peercache.sock'), store, logger: createLogger({ level: 'silent' }) });
  const exchange = async (frames: Buffer[], count: number): Promise<Record<string, unknown>[]> => {
    const socket = net.connect(join(dir, 'peercache.sock'));
    const got: Frame[] = [];
    const decoder = new FrameDecoder((f) => got.push(f), { maxFrameBytes: 1 << 20, role: 'client' });
    socket.on('data', (chunk: Buffer) => decoder.push(chunk));
    for (const f of frames) socket.write(f);
    while (got.length < count) await new Promise((r) => setTimeout(r, 5));
    socket.destroy();
    return got.map((f) => JSON.parse(f.payload.toString()) as Record<string, unknown>);
  };
  try {
    const [noHello] = await exchange([encodeFrame(FrameKind.Request, 1, { op: 'exists', keys: ['k'] })], 1);
    assert.equal([noHello.code, noHello.fatal], ['ERR_NO_HELLO', true]);
    const [, badKeys, noPool] = await exchange(
      [
        encodeFrame(FrameKind.Request, 1, { op: 'hello', protocol: SIDECAR_PROTOCOL, pid: process.pid }),
        encodeFrame(FrameKind.Request, 2, { op: 'exists', keys: 'k' }),
        encodeFrame(FrameKind.Request, 3, { op: 'get', pool: 5, keys: ['k'], offsets: [0], lengths: [8] }),
      ],
      3,
    );
    assert.equal([badKeys.code, badKeys.fatal], ['ERR_BAD_REQUEST', false]);
    assert.equal([noPool.code, noPool.fatal], ['ERR_POOL_GONE', false]);
    const [wrong] = await exchange([encodeFrame(FrameKind.Request, 1, { op: 'hello', protocol: 'peercache-sidecar/1', pid: process.pid })], 1);
    assert.equal([wrong.code, wrong.fatal], ['ERR_WRONG_PROTOCOL', true]);
    for (const frame of [noHello, badKeys, noPool, wrong]) assert.ok(Object.hasOwn(spec.error_codes, String(frame.code)), String(frame.code));
  } finally {
    await server.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
