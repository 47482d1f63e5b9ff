/**
 * The directory's messages: requests, results and events as they travel in frames, their limits,
 * and the checks every one of them passes before it is acted on (also used by the Redis directory).
 */
import { PROTOCOLS } from '../../transport/types.js';
import type { Protocol } from '../../transport/types.js';
import type { DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from '../types.js';
import { MAX_FRAME_LIMIT, WireError } from '../../framing.js';

/**
 * Limits every message is checked against before it is acted on (the directory's explicit
 * bounds; see docs/security.md). A client splits larger batches itself.
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
  | { op: 'ping' }
  /** Start a key replica: the server streams every entry, then every change (see replica.ts). */
  | { op: 'watch'; maxEntries: number }
  | { op: 'unwatch' };

export type Op = Request['op'];
export type RequestOf<O extends Op> = Extract<Request, { op: O }>;

export interface HelloResult {
  version: number;
  /** The largest frame the server accepts: clients keep their requests under it. */
  maxFrameBytes: number;
  /** The members, when the hello carried a node (hello + join in one round trip). */
  members?: NodeInfo[];
  /** The server drops a connection silent this long (0: never): clients ping well within it. */
  idleTimeoutMs?: number;
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
  /** Entries streamed before this answer (the replica is complete once it arrives). */
  watch: { entries: number };
  unwatch: true;
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
    case 'watch':
      return { op, maxEntries: uint(v.maxEntries, 'maxEntries') };
    case 'members':
    case 'leave':
    case 'ping':
    case 'unwatch':
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

/**
 * Key changes pushed to a session that watches (a replica): columnar as a lookup result, node -1 =
 * removed. `{ type: 'keys-reset' }` tells the replica it is no longer kept (drop it).
 */
export interface KeyChanges {
  keys: string[];
  locations: (Location | null)[];
}

export function encodeKeyChanges(keys: readonly string[], locations: readonly (Location | null)[]): unknown {
  return { type: 'keys', keys, ...encodeLookupResult(locations) };
}

/** Decodes a 'keys' event (throws WireError 'bad-message' if malformed); null for any other event. */
export function parseKeyChanges(v: unknown): KeyChanges | 'reset' | null {
  if (!isRecord(v)) bad('event must be an object');
  if (v.type === 'keys-reset') return 'reset';
  if (v.type !== 'keys') return null;
  const keys = parseKeys(v.keys, 'event.keys');
  return { keys, locations: parseLookupResult(v, keys.length) };
}
