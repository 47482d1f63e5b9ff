/**
 * The control-plane wire protocol: framing, the streaming decoder and the message codec shared by
 * the directory server and its clients.
 *
 * Frame: `u32 BE payload length | u8 protocol version | u8 kind | u32 BE request id | payload`,
 * payload UTF-8 JSON. Requests carry `{ op, ...args }`; a response carries the op's result; an
 * error carries `{ message, fatal, code? }` (fatal: the sender closes the connection after it);
 * an event (request id 0) carries a DirectoryEvent. Unlike the original (4-byte length, msgpack
 * or JSON without negotiation, no limit), every frame names its version and every length is
 * checked against a limit before any of its body is buffered.
 */
import { PROTOCOLS } from '../transport/types.js';
import type { Protocol } from '../transport/types.js';
import type { DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from './types.js';

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 10;
export const DEFAULT_MAX_FRAME_BYTES = 16 * 1024 * 1024;
/** The largest payload length the u32 header can carry. */
export const MAX_FRAME_LIMIT = 0xffff_ffff;

/**
 * Limits every message is checked against before it is acted on (the directory's explicit
 * bounds; see README "Security"). A client splits larger batches itself.
 */
export const LIMITS = {
  /** Keys in one lookup / publish / remove request. */
  keysPerRequest: 65_536,
  /** Characters of one key. */
  keyChars: 1024,
  /** Characters of a node id or host. */
  idChars: 256,
  /** Characters of a node's transport address or region descriptor (base64 blobs). */
  blobChars: 64 * 1024,
  /** Attributes of one node, and characters of one attribute name or string value. */
  attributes: 64,
  attributeChars: 1024,
  /** The largest frame a connection may send before its hello passed (a hello may carry its node). */
  helloFrameBytes: 256 * 1024,
} as const;

export const FrameKind = { Request: 1, Response: 2, Event: 3, Error: 4 } as const;
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind];
const KIND_NAMES: Record<FrameKind, string> = { 1: 'request', 2: 'response', 3: 'event', 4: 'error' };

export function frameKindName(kind: number): string {
  return KIND_NAMES[kind as FrameKind] ?? `unknown(${kind})`;
}

export interface Frame {
  version: number;
  kind: FrameKind;
  id: number;
  payload: Buffer;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
/** Logger hook of the server and client; without one nothing is printed. */
export type LogHook = (level: LogLevel, message: string) => void;

export type WireErrorCode =
  | 'oversized'
  | 'bad-version'
  | 'bad-kind'
  | 'bad-json'
  | 'bad-message'
  | 'unknown-op'
  | 'no-hello'
  | 'auth'
  | 'idle'
  | 'slow-reader';

/** A protocol violation: the connection that produced it is closed. */
export class WireError extends Error {
  constructor(
    readonly code: WireErrorCode,
    message: string,
    /** The request id of the offending frame, when its header was read. */
    readonly requestId = 0,
  ) {
    super(message);
    this.name = 'WireError';
  }
}

/** Checks a configured frame limit (a positive integer the u32 length can express). */
export function checkFrameLimit(value: number | undefined, what = 'maxFrameBytes'): number {
  const v = value ?? DEFAULT_MAX_FRAME_BYTES;
  if (!Number.isSafeInteger(v) || v < 1 || v > MAX_FRAME_LIMIT) {
    throw new RangeError(`${what} must be an integer in 1..${MAX_FRAME_LIMIT}, got ${String(value)}`);
  }
  return v;
}

/** Builds one frame around raw payload bytes (tests use `version` to forge foreign frames). */
export function encodeRawFrame(kind: number, id: number, payload: Uint8Array, version = PROTOCOL_VERSION): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + payload.length);
  buf.writeUInt32BE(payload.length, 0);
  buf[4] = version;
  buf[5] = kind;
  buf.writeUInt32BE(id >>> 0, 6);
  buf.set(payload, HEADER_BYTES);
  return buf;
}

/** Encodes `body` as JSON into one frame; throws WireError('oversized') past `maxFrameBytes`. */
export function encodeFrame(kind: FrameKind, id: number, body: unknown, maxFrameBytes = DEFAULT_MAX_FRAME_BYTES): Buffer {
  const json = JSON.stringify(body) ?? 'null';
  const length = Buffer.byteLength(json, 'utf8');
  if (length > maxFrameBytes) {
    throw new WireError('oversized', `frame of ${length} bytes exceeds the limit of ${maxFrameBytes} bytes`, id);
  }
  // One allocation and one UTF-8 pass; the header goes in front of the JSON.
  const buf = Buffer.allocUnsafe(HEADER_BYTES + length);
  buf.writeUInt32BE(length, 0);
  buf[4] = PROTOCOL_VERSION;
  buf[5] = kind;
  buf.writeUInt32BE(id >>> 0, 6);
  buf.write(json, HEADER_BYTES, length, 'utf8');
  return buf;
}

export function decodeJson(frame: Frame): unknown {
  try {
    return JSON.parse(frame.payload.toString('utf8'));
  } catch (err) {
    throw new WireError('bad-json', `invalid JSON payload: ${(err as Error).message}`, frame.id);
  }
}

export interface FrameDecoderOptions {
  maxFrameBytes?: number;
  /** Who is decoding, for messages ("protocol version 9 not supported (server speaks 1)"). */
  role?: 'server' | 'client';
}

/**
 * Streaming decoder: push TCP chunks, get whole frames. Chunks are kept as a list (no
 * concatenation per push); a payload inside one chunk is a zero-copy view, one spanning chunks is
 * copied exactly once, so the work is linear in the bytes received. The header is validated
 * (version, kind, length against the limit) before any of the body is buffered. After an error
 * the decoder stays failed: the connection is to be closed.
 */
export class FrameDecoder {
  private maxFrameBytes: number;
  private readonly role: string;
  private chunks: Buffer[] = [];
  private head = 0; // read offset into chunks[0]
  private buffered = 0; // unread bytes across chunks
  private header: { version: number; kind: FrameKind; id: number; length: number } | null = null;
  private failure: Error | null = null;

  constructor(
    private readonly onFrame: (frame: Frame) => void,
    options: FrameDecoderOptions = {},
  ) {
    this.maxFrameBytes = checkFrameLimit(options.maxFrameBytes);
    this.role = options.role ?? 'this side';
  }

  /** Changes the limit for frames whose header has not been read yet (a server raises it after hello). */
  setMaxFrameBytes(limit: number): void {
    this.maxFrameBytes = checkFrameLimit(limit);
  }

  /** Unread bytes held (a partial frame), for tests and stats. */
  get bufferedBytes(): number {
    return this.buffered;
  }

  /** Feeds one chunk; calls onFrame for every frame it completes. Throws WireError on a bad frame. */
  push(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return;
    this.chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length));
    this.buffered += chunk.length;
    try {
      this.drain();
    } catch (err) {
      this.failure = err as Error;
      this.chunks = [];
      this.buffered = 0;
      throw err;
    }
  }

  private drain(): void {
    for (;;) {
      if (this.header === null) {
        if (this.buffered < HEADER_BYTES) return;
        const h = this.take(HEADER_BYTES);
        const length = h.readUInt32BE(0);
        const version = h[4];
        const kind = h[5];
        const id = h.readUInt32BE(6);
        if (version !== PROTOCOL_VERSION) {
          throw new WireError(
            'bad-version',
            `protocol version ${version} not supported (${this.role} speaks ${PROTOCOL_VERSION})`,
            id,
          );
        }
        if (!(kind in KIND_NAMES)) throw new WireError('bad-kind', `unknown frame kind ${kind}`, id);
        if (length > this.maxFrameBytes) {
          throw new WireError('oversized', `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes} bytes`, id);
        }
        this.header = { version, kind: kind as FrameKind, id, length };
      }
      if (this.buffered < this.header.length) return;
      const { version, kind, id, length } = this.header;
      const payload = this.take(length);
      this.header = null;
      this.onFrame({ version, kind, id, payload });
      if (this.failure) return;
    }
  }

  /** Removes n buffered bytes (n <= buffered): a view when they lie in one chunk, else one copy. */
  private take(n: number): Buffer {
    const first = this.chunks[0];
    if (first !== undefined && first.length - this.head >= n) {
      const out = first.subarray(this.head, this.head + n);
      this.advance(first, n);
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0];
      const m = Math.min(c.length - this.head, n - filled);
      c.copy(out, filled, this.head, this.head + m);
      filled += m;
      this.advance(c, m);
    }
    return out;
  }

  private advance(chunk: Buffer, n: number): void {
    this.head += n;
    this.buffered -= n;
    if (this.head === chunk.length) {
      this.chunks.shift();
      this.head = 0;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Messages

export type Request =
  | { op: 'hello'; version: number; token?: string; node?: NodeInfo; maxFrameBytes?: number }
  | { op: 'join'; node: NodeInfo }
  | { op: 'lookup'; keys: string[] }
  | { op: 'publish'; entries: DirectoryEntry[] }
  | { op: 'remove'; entries: RemovalEntry[] }
  | { op: 'node'; nodeId: string }
  | { op: 'members' }
  | { op: 'leave' }
  | { op: 'ping' };

export type Op = Request['op'];
export type RequestOf<O extends Op> = Extract<Request, { op: O }>;

export interface HelloResult {
  version: number;
  /** The largest frame the server accepts: clients keep their requests under it. */
  maxFrameBytes: number;
  /** The members, when the hello carried a node (hello + join in one round trip). */
  members?: NodeInfo[];
}

/** The result each op's response carries. */
export interface ResultMap {
  hello: HelloResult;
  join: NodeInfo[];
  lookup: (Location | null)[];
  publish: boolean[];
  /** How many entries were removed. */
  remove: number;
  node: NodeInfo | null;
  members: NodeInfo[];
  leave: true;
  ping: true;
}

export interface ErrorBody {
  message: string;
  /** The sender closes the connection after this frame. */
  fatal: boolean;
  code?: string;
}

function bad(message: string): never {
  throw new WireError('bad-message', message);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown, where: string, nonEmpty = true): string {
  if (typeof v !== 'string' || (nonEmpty && v.length === 0)) bad(`${where} must be a ${nonEmpty ? 'non-empty ' : ''}string`);
  return v;
}

function uint(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) bad(`${where} must be a non-negative integer`);
  return v;
}

function array(v: unknown, where: string): unknown[] {
  if (!Array.isArray(v)) bad(`${where} must be an array`);
  return v;
}

/** Validates a NodeInfo and returns a fresh copy holding only its known fields. */
export function parseNodeInfo(v: unknown, where = 'node'): NodeInfo {
  if (!isRecord(v)) bad(`${where} must be an object`);
  const protocol = v.protocol;
  if (typeof protocol !== 'string' || !(PROTOCOLS as readonly string[]).includes(protocol)) {
    bad(`${where}.protocol must be one of ${PROTOCOLS.join(', ')}`);
  }
  const rd = v.regionDescriptor;
  if (rd !== null && typeof rd !== 'string') bad(`${where}.regionDescriptor must be a string or null`);
  const attrsIn = v.attributes;
  if (!isRecord(attrsIn)) bad(`${where}.attributes must be an object`);
  if (rd !== null) capped(rd, LIMITS.blobChars, `${where}.regionDescriptor`);
  const attributes: Record<string, string | number | boolean> = {};
  const names = Object.keys(attrsIn);
  if (names.length > LIMITS.attributes) bad(`${where}.attributes: ${names.length} attributes, more than the limit of ${LIMITS.attributes}`);
  for (const k of names) {
    const a = attrsIn[k];
    capped(k, LIMITS.attributeChars, `${where}.attributes name`);
    if (typeof a !== 'string' && typeof a !== 'boolean' && !(typeof a === 'number' && Number.isFinite(a))) {
      bad(`${where}.attributes.${k.slice(0, 64)} must be a string, finite number or boolean`);
    }
    if (typeof a === 'string') capped(a, LIMITS.attributeChars, `${where}.attributes.${k.slice(0, 64)}`);
    attributes[k] = a;
  }
  return {
    nodeId: capped(str(v.nodeId, `${where}.nodeId`), LIMITS.idChars, `${where}.nodeId`),
    protocol: protocol as Protocol,
    host: capped(str(v.host, `${where}.host`, false), LIMITS.idChars, `${where}.host`),
    transportAddress: capped(str(v.transportAddress, `${where}.transportAddress`, false), LIMITS.blobChars, `${where}.transportAddress`),
    regionDescriptor: rd,
    attributes,
  };
}

/** Validates a Location and returns a fresh copy. */
export function parseLocation(v: unknown, where = 'location'): Location {
  if (!isRecord(v)) bad(`${where} must be an object`);
  return {
    nodeId: str(v.nodeId, `${where}.nodeId`),
    offset: uint(v.offset, `${where}.offset`),
    length: uint(v.length, `${where}.length`),
    generation: uint(v.generation, `${where}.generation`),
  };
}

function parseKeys(v: unknown, where = 'keys'): string[] {
  const keys = array(v, where);
  if (keys.length > LIMITS.keysPerRequest) bad(`${where}: ${keys.length} keys in one request, more than the limit of ${LIMITS.keysPerRequest}; split the batch`);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i];
    if (typeof k !== 'string') bad(`${where}[${i}] must be a string`);
    if (k.length > LIMITS.keyChars) bad(`${where}[${i}] is ${k.length} characters long, more than the limit of ${LIMITS.keyChars}`);
  }
  return keys as string[];
}

function capped(s: string, max: number, where: string): string {
  if (s.length > max) bad(`${where} is ${s.length} characters long, more than the limit of ${max}`);
  return s;
}

/** Validates logical (object-form) entries, copying each: the in-process path's input check. */
export function checkEntries(v: unknown): DirectoryEntry[] {
  const raw = array(v, 'entries');
  const out = new Array<DirectoryEntry>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const e = raw[i];
    if (!isRecord(e)) bad(`entries[${i}] must be an object`);
    out[i] = { key: str(e.key, `entries[${i}].key`, false), location: parseLocation(e.location, `entries[${i}].location`) };
  }
  return out;
}

/** Validates logical (object-form) removal entries, copying each. */
export function checkRemovals(v: unknown): RemovalEntry[] {
  const raw = array(v, 'entries');
  const out = new Array<RemovalEntry>(raw.length);
  for (let i = 0; i < raw.length; i++) {
    const e = raw[i];
    if (!isRecord(e)) bad(`entries[${i}] must be an object`);
    out[i] = {
      key: str(e.key, `entries[${i}].key`, false),
      nodeId: str(e.nodeId, `entries[${i}].nodeId`),
      generation: uint(e.generation, `entries[${i}].generation`),
    };
  }
  return out;
}

/** Validates a logical request (the in-process path): same rules as the wire, no JSON. */
export function checkRequest(req: Request): Request {
  switch (req.op) {
    case 'lookup':
      return { op: 'lookup', keys: parseKeys(req.keys) };
    case 'publish':
      return { op: 'publish', entries: checkEntries(req.entries) };
    case 'remove':
      return { op: 'remove', entries: checkRemovals(req.entries) };
    case 'join':
      return { op: 'join', node: parseNodeInfo(req.node) };
    case 'node':
      return { op: 'node', nodeId: str(req.nodeId, 'nodeId', false) };
    default:
      return parseRequest(req);
  }
}

/*
 * Batches travel columnar: node ids once per message, locations as a flat number array. For 100k
 * locations that is about 3x fewer bytes than an array of objects and about 2x faster to encode
 * and decode, and it keeps 100k-key publishes of 64-hex-digit keys well under the frame limit.
 *   publish request: { op, keys: string[], nodes: string[], locs: [node, offset, length, generation]* }
 *   remove request:  { op, keys: string[], nodes: string[], refs: [node, generation]* }
 *   lookup result:   { nodes: string[], locs: [node | -1, offset, length, generation]* } (-1: miss)
 */

/** Interns node ids in first-seen order (a batch names few nodes). */
class NodeTable {
  readonly nodes: string[] = [];
  private readonly index = new Map<string, number>();
  // The last id looked up: batches are usually runs of one node.
  private lastId = '';
  private lastIndex = -1;

  of(nodeId: string): number {
    if (nodeId === this.lastId && this.lastIndex >= 0) return this.lastIndex;
    let i = this.index.get(nodeId);
    if (i === undefined) {
      i = this.nodes.length;
      this.nodes.push(nodeId);
      this.index.set(nodeId, i);
    }
    this.lastId = nodeId;
    this.lastIndex = i;
    return i;
  }
}

/** The wire body of a request (columnar batches). */
export function encodeRequestBody(req: Request): unknown {
  if (req.op === 'publish') {
    const n = req.entries.length;
    const table = new NodeTable();
    const keys = new Array<string>(n);
    const locs = new Array<number>(4 * n);
    for (let i = 0; i < n; i++) {
      const { key, location } = req.entries[i];
      keys[i] = key;
      locs[4 * i] = table.of(location.nodeId);
      locs[4 * i + 1] = location.offset;
      locs[4 * i + 2] = location.length;
      locs[4 * i + 3] = location.generation;
    }
    return { op: 'publish', keys, nodes: table.nodes, locs };
  }
  if (req.op === 'remove') {
    const n = req.entries.length;
    const table = new NodeTable();
    const keys = new Array<string>(n);
    const refs = new Array<number>(2 * n);
    for (let i = 0; i < n; i++) {
      const e = req.entries[i];
      keys[i] = e.key;
      refs[2 * i] = table.of(e.nodeId);
      refs[2 * i + 1] = e.generation;
    }
    return { op: 'remove', keys, nodes: table.nodes, refs };
  }
  return req;
}

function parseNodes(v: unknown): string[] {
  const nodes = array(v, 'nodes');
  for (let i = 0; i < nodes.length; i++) if (typeof nodes[i] !== 'string' || nodes[i] === '') bad(`nodes[${i}] must be a non-empty string`);
  return nodes as string[];
}

function columns(v: Record<string, unknown>, field: string, width: number): { keys: string[]; nodes: string[]; nums: unknown[] } {
  const keys = parseKeys(v.keys);
  const nodes = parseNodes(v.nodes);
  const nums = array(v[field], field);
  if (nums.length !== width * keys.length) bad(`${field} must hold ${width} numbers per key (${width * keys.length}), got ${nums.length}`);
  return { keys, nodes, nums };
}

function nodeAt(nodes: string[], v: unknown, where: string): string {
  const id = typeof v === 'number' ? nodes[v] : undefined;
  if (id === undefined || !Number.isInteger(v)) bad(`${where} must index nodes`);
  return id;
}

function parsePublish(v: Record<string, unknown>): DirectoryEntry[] {
  const { keys, nodes, nums } = columns(v, 'locs', 4);
  const out = new Array<DirectoryEntry>(keys.length);
  for (let i = 0; i < keys.length; i++) {
    const b = 4 * i;
    out[i] = {
      key: keys[i],
      location: {
        nodeId: nodeAt(nodes, nums[b], `locs[${b}]`),
        offset: uint(nums[b + 1], `locs[${b + 1}]`),
        length: uint(nums[b + 2], `locs[${b + 2}]`),
        generation: uint(nums[b + 3], `locs[${b + 3}]`),
      },
    };
  }
  return out;
}

function parseRemove(v: Record<string, unknown>): RemovalEntry[] {
  const { keys, nodes, nums } = columns(v, 'refs', 2);
  const out = new Array<RemovalEntry>(keys.length);
  for (let i = 0; i < keys.length; i++) {
    out[i] = { key: keys[i], nodeId: nodeAt(nodes, nums[2 * i], `refs[${2 * i}]`), generation: uint(nums[2 * i + 1], `refs[${2 * i + 1}]`) };
  }
  return out;
}

/** The wire body of a lookup result. */
export function encodeLookupResult(result: readonly (Location | null)[]): { nodes: string[]; locs: number[] } {
  const n = result.length;
  const table = new NodeTable();
  const locs = new Array<number>(4 * n);
  for (let i = 0; i < n; i++) {
    const l = result[i];
    const b = 4 * i;
    if (l === null) {
      locs[b] = -1;
      locs[b + 1] = 0;
      locs[b + 2] = 0;
      locs[b + 3] = 0;
    } else {
      locs[b] = table.of(l.nodeId);
      locs[b + 1] = l.offset;
      locs[b + 2] = l.length;
      locs[b + 3] = l.generation;
    }
  }
  return { nodes: table.nodes, locs };
}

/** Decodes a lookup result of `count` keys (throws WireError 'bad-message' if malformed). */
export function parseLookupResult(v: unknown, count: number): (Location | null)[] {
  if (!isRecord(v)) bad('lookup result must be an object');
  const nodes = parseNodes(v.nodes);
  const locs = array(v.locs, 'locs');
  if (locs.length !== 4 * count) bad(`lookup result holds ${locs.length / 4} locations for ${count} keys`);
  const out = new Array<Location | null>(count);
  for (let i = 0; i < count; i++) {
    const b = 4 * i;
    out[i] =
      locs[b] === -1
        ? null
        : {
            nodeId: nodeAt(nodes, locs[b], `locs[${b}]`),
            offset: uint(locs[b + 1], `locs[${b + 1}]`),
            length: uint(locs[b + 2], `locs[${b + 2}]`),
            generation: uint(locs[b + 3], `locs[${b + 3}]`),
          };
  }
  return out;
}

/**
 * Validates a decoded wire request (throws WireError 'bad-message' or 'unknown-op'). Key arrays
 * pass through as received; entries and nodes are built field by field, so what a server stores
 * never aliases caller objects or carries unknown fields.
 */
export function parseRequest(v: unknown): Request {
  if (!isRecord(v)) bad('request must be a JSON object');
  const op = v.op;
  if (typeof op !== 'string') bad('request.op must be a string');
  switch (op) {
    case 'hello': {
      const req: RequestOf<'hello'> = { op, version: uint(v.version, 'version') };
      if (v.token !== undefined) req.token = str(v.token, 'token', false);
      if (v.node !== undefined) req.node = parseNodeInfo(v.node);
      if (v.maxFrameBytes !== undefined) {
        const m = uint(v.maxFrameBytes, 'maxFrameBytes');
        if (m < 1 || m > MAX_FRAME_LIMIT) bad(`maxFrameBytes must be in 1..${MAX_FRAME_LIMIT}`);
        req.maxFrameBytes = m;
      }
      return req;
    }
    case 'join':
      return { op, node: parseNodeInfo(v.node) };
    case 'lookup':
      return { op, keys: parseKeys(v.keys) };
    case 'publish':
      return { op, entries: parsePublish(v) };
    case 'remove':
      return { op, entries: parseRemove(v) };
    case 'node':
      return { op, nodeId: str(v.nodeId, 'nodeId', false) };
    case 'members':
    case 'leave':
    case 'ping':
      return { op };
    default:
      throw new WireError('unknown-op', `unknown operation '${op.slice(0, 64)}'`);
  }
}

export function parseErrorBody(v: unknown): ErrorBody {
  if (!isRecord(v) || typeof v.message !== 'string') return { message: 'malformed error frame', fatal: true };
  const out: ErrorBody = { message: v.message, fatal: v.fatal === true };
  if (typeof v.code === 'string') out.code = v.code;
  return out;
}

export function parseEvent(v: unknown): DirectoryEvent {
  if (!isRecord(v)) bad('event must be an object');
  if (v.type === 'node-joined') return { type: 'node-joined', node: parseNodeInfo(v.node, 'event.node') };
  if (v.type === 'node-left') {
    return { type: 'node-left', nodeId: str(v.nodeId, 'event.nodeId'), reason: str(v.reason, 'event.reason', false) };
  }
  return bad(`unknown event type '${String(v.type)}'`);
}
