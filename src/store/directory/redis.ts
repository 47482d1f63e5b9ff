/**
 * `RedisDirectory`: the Directory on a Redis (or Valkey) server the fleet already operates, for
 * clusters that outgrow one embedded directory process. Same semantics as the embedded one
 * (server.ts); the data model and the atomic scripts are in redis-scripts.ts.
 *
 * - One round trip per call: a lookup is one HMGET, a mutation one EVALSHA (batches past CHUNK
 *   keys go as several commands in one pipeline, still one round trip).
 * - Liveness by key expiry: a joined node's liveness key has a TTL (`ttlMs - pollMs`) that its
 *   heartbeat refreshes every `pollMs`. The heartbeat script also sweeps nodes whose key expired
 *   (their entries are deleted) and returns the membership version; when it moved, the members
 *   (with their incarnations) come in the same reply, and the difference is emitted as
 *   node-joined / node-left. (Keyspace notifications would need server configuration managed
 *   Redis services often forbid, and expired-key events may come late; polling has neither.)
 * - Lookups keep only entries whose owner incarnation is among the live members of the last poll,
 *   so a dead node's keys are misses, and node-left is emitted, within `ttlMs` of its last
 *   heartbeat (key TTL + one poll). An entry of a node that joined after the last poll triggers
 *   one membership refresh (a second round trip, only then) rather than a false miss.
 * - Reconnects: the client reconnects by itself. While Redis is unreachable, calls fail at once
 *   (the store counts them as misses / failed publishes), nothing queues. When the heartbeat finds
 *   that this node is no longer a member (Redis restarted, or this process stalled past the TTL),
 *   it joins again under a new incarnation and republishes the entries it still owns, so a
 *   restarted Redis refills without the store doing anything.
 */
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { Redis, type RedisOptions } from 'ioredis';
import { DirectoryError } from './client.js';
import { parseRedisUrl, type RedisUrlParts } from './redis-url.js';
import { scriptSource, SCRIPTS, type ScriptName } from './redis-scripts.js';
import type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from '../types.js';
import { silentLogger, type Logger } from '../../log.js';
import type { ErrorCode } from '../../errors.js';
import { parseNodeInfo } from './messages.js';
import { InvalidArgumentError, PeercacheError } from '../../errors.js';

export interface RedisDirectoryOptions {
  /** redis://[user:password@]host:port[/db][?prefix=&ttl_ms=&poll_ms=&timeout_ms=&connect_timeout_ms=] or rediss://… */
  url: string;
  /** Key prefix (default `peercache:`); several fleets may share one Redis under different prefixes. */
  prefix?: string;
  /**
   * Liveness bound (default 5000 ms): a dead node's entries become misses, and node-left is
   * emitted, within this long after its last heartbeat. Keep it well above the longest stall of
   * a node's event loop: a node that misses it re-joins and republishes, but is absent meanwhile.
   */
  ttlMs?: number;
  /** Heartbeat and membership poll period (default min(1000, ttlMs / 4); at most ttlMs / 3). */
  pollMs?: number;
  /** Deadline of each request (default 10 000 ms). */
  requestTimeoutMs?: number;
  /** Deadline of the first connection (default 5000 ms); a failure names the URL. */
  connectTimeoutMs?: number;
  /** Republish this node's entries after it had to join again (default true). */
  republish?: boolean;
  logger?: Logger;
}

export interface RedisDirectoryStats {
  /** Times the connection came back after a loss. */
  reconnects: number;
  /** Times this node joined again after losing its membership. */
  rejoins: number;
  /** Entries republished after those joins. */
  republished: number;
  ticks: number;
  tickErrors: number;
  /** Members seen by the last poll. */
  members: number;
  /** Entries this node owns (what it would republish). */
  owned: number;
}

/** Entries (or keys) per script call; bigger batches are split, in one pipeline. */
const CHUNK = 2000;
const SWEEP_LIMIT = 16;

type ScriptCall = (...args: string[]) => Promise<unknown>;

interface Known {
  inc: string;
  raw: string;
  info: NodeInfo;
}

/** "gen:offset:length:inc:nodeId" → Location (throws on a malformed value). */
function parseEntry(v: string): Location {
  const a = v.indexOf(':');
  const b = v.indexOf(':', a + 1);
  const c = v.indexOf(':', b + 1);
  const d = v.indexOf(':', c + 1);
  if (a < 1 || b < 0 || c < 0 || d < 0) throw new DirectoryError(`malformed directory entry in Redis: '${v.slice(0, 80)}'`, 'ERR_DIRECTORY_PROTOCOL');
  const generation = Number(v.slice(0, a));
  const offset = Number(v.slice(a + 1, b));
  const length = Number(v.slice(b + 1, c));
  if (!Number.isSafeInteger(generation) || !Number.isSafeInteger(offset) || !Number.isSafeInteger(length)) {
    throw new DirectoryError(`malformed directory entry in Redis: '${v.slice(0, 80)}'`, 'ERR_DIRECTORY_PROTOCOL');
  }
  return { nodeId: v.slice(d + 1), offset, length, generation };
}

/** "inc:json" → the incarnation and the node (throws on a malformed value). */
function parseMember(raw: string): Known {
  const i = raw.indexOf(':');
  try {
    return { inc: raw.slice(0, i), raw, info: parseNodeInfo(JSON.parse(raw.slice(i + 1)) as unknown) };
  } catch (err) {
    throw new DirectoryError(`malformed member in Redis: ${(err as Error).message}`, 'ERR_DIRECTORY_PROTOCOL');
  }
}

const isUint = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

/** The checks the embedded directory makes on the wire (wire.ts checkEntries), without copying. */
function checkEntry(e: DirectoryEntry): void {
  const l = e?.location;
  if (typeof e?.key !== 'string' || !l || typeof l.nodeId !== 'string' || l.nodeId.length === 0 || !isUint(l.offset) || !isUint(l.length) || !isUint(l.generation)) {
    throw new DirectoryError('directory publish: each entry needs a string key and a location { nodeId, offset, length, generation } of non-negative integers', 'ERR_INVALID_ARG');
  }
}

function checkRemoval(r: RemovalEntry): void {
  if (typeof r?.key !== 'string' || typeof r.nodeId !== 'string' || r.nodeId.length === 0 || !isUint(r.generation)) {
    throw new DirectoryError('directory remove: each entry needs a string key, a nodeId and a non-negative integer generation', 'ERR_INVALID_ARG');
  }
}

function chunks<T>(items: readonly T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

export class RedisDirectory implements Directory {
  readonly where: string;
  private readonly prefix: string;
  private readonly ttlMs: number;
  private readonly pollMs: number;
  /** TTL of the liveness key: the bound less one poll (the time others take to notice). */
  private readonly keyTtlMs: number;
  private lastTickAt = 0;
  private readonly log: Logger;
  private readonly listeners = new Set<(event: DirectoryEvent) => void>();
  private readonly calls = new Map<ScriptName, ScriptCall>();
  /** This node's info and incarnation once joined. */
  private self: { info: NodeInfo; inc: string } | null = null;
  /** Entries this node owns (applied publishes minus removals): republished after a re-join. */
  private readonly owned = new Map<string, Location>();
  private known = new Map<string, Known>();
  private version = '';
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private tickSeq = 0;
  private closed = false;
  private closing: Promise<void> | null = null;
  private down: string | null = null;
  private readonly counters: Omit<RedisDirectoryStats, 'members' | 'owned'> = { reconnects: 0, rejoins: 0, republished: 0, ticks: 0, tickErrors: 0 };

  private constructor(
    private readonly redis: Redis,
    parts: RedisUrlParts,
    timing: { ttlMs: number; pollMs: number },
    private readonly options: RedisDirectoryOptions,
  ) {
    this.where = parts.redacted;
    this.prefix = options.prefix ?? parts.prefix ?? 'peercache:';
    this.ttlMs = timing.ttlMs;
    this.pollMs = timing.pollMs;
    this.keyTtlMs = this.ttlMs - this.pollMs;
    this.log = options.logger ?? silentLogger;
    for (const name of Object.keys(SCRIPTS) as ScriptName[]) {
      const fn = (redis as unknown as Record<string, ScriptCall | undefined>)[name];
      if (typeof fn !== 'function') throw new PeercacheError('ERR_REDIS', `redis script ${name} was not defined`);
      this.calls.set(name, fn.bind(redis));
    }
    redis.on('error', (err: Error) => {
      if (this.down === null) this.log.warn(`directory: redis ${this.where}: ${err.message}`);
    });
    redis.on('close', () => {
      if (this.closed || this.down !== null) return;
      this.down = 'connection lost';
      this.log.warn(`directory: connection to redis ${this.where} lost; reconnecting (calls fail until it is back)`);
    });
    redis.on('ready', () => {
      if (this.down === null) return;
      this.down = null;
      this.counters.reconnects++;
      this.log.info(`directory: reconnected to redis ${this.where}`);
      void this.tick(false, true); // membership first: re-join at once if Redis lost us
    });
  }

  /**
   * Connects (one attempt, bounded by connectTimeoutMs) and loads nothing else: join() makes this
   * client a member. Rejects with a DirectoryError naming the URL (password masked).
   */
  static async connect(options: RedisDirectoryOptions): Promise<RedisDirectory> {
    const parts = parseRedisUrl(options.url);
    const ttlMs = options.ttlMs ?? parts.ttlMs ?? 5000;
    const pollMs = Math.max(10, options.pollMs ?? parts.pollMs ?? Math.min(1000, Math.floor(ttlMs / 4)));
    if (!Number.isSafeInteger(ttlMs) || !Number.isSafeInteger(pollMs) || pollMs * 3 > ttlMs) {
      throw new InvalidArgumentError(`directory ${parts.redacted}: poll_ms (${pollMs}) must be an integer of at most a third of ttl_ms (${ttlMs}): a node must have two heartbeats per TTL`);
    }
    const connectTimeoutMs = options.connectTimeoutMs ?? parts.connectTimeoutMs ?? 5000;
    const requestTimeoutMs = options.requestTimeoutMs ?? parts.timeoutMs ?? 10_000;
    let everReady = false;
    const redisOptions: RedisOptions = {
      host: parts.host,
      port: parts.port,
      db: parts.db,
      username: parts.username,
      password: parts.password,
      // SNI only for names (RFC 6066 forbids IP addresses there).
      tls: parts.tls ? (isIP(parts.host) ? {} : { servername: parts.host }) : undefined,
      lazyConnect: true,
      connectTimeout: connectTimeoutMs,
      commandTimeout: requestTimeoutMs,
      // Fail fast while disconnected: a directory call that cannot run is a miss, not a wait.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      // The first connection is one attempt (a clear error); after that, reconnect forever.
      retryStrategy: (times) => (everReady ? Math.min(1000, 25 * 2 ** Math.min(times, 6)) : null),
      keepAlive: 5000,
      noDelay: true,
      connectionName: 'peercache-directory',
      // Its ready check runs INFO, which a tenant's ACL user is rightly denied (ioredis then prints
      // a warning on every connect); the first tick below is this directory's own check.
      enableReadyCheck: false,
      scripts: Object.fromEntries((Object.keys(SCRIPTS) as ScriptName[]).map((name) => [name, { numberOfKeys: 0, lua: scriptSource(name) }])),
    };
    const redis = new Redis(redisOptions);
    let lastError: Error | null = null;
    const onError = (err: Error): void => {
      lastError = err;
    };
    redis.on('error', onError);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        redis.connect(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new DirectoryError(`timed out after ${connectTimeoutMs} ms`, 'ERR_TIMEOUT')), connectTimeoutMs);
        }),
      ]);
      everReady = true;
    } catch (err) {
      redis.disconnect();
      const cause = (lastError ?? err) as NodeJS.ErrnoException;
      const code: ErrorCode = /WRONGPASS|NOAUTH/.test(cause.message) ? 'ERR_AUTH' : err instanceof DirectoryError ? err.code : 'ERR_CONNECT';
      throw new DirectoryError(`cannot connect to the Redis directory at ${parts.redacted}: ${cause.message}`, code, { cause, errno: cause.code });
    } finally {
      clearTimeout(timer);
      redis.off('error', onError);
    }
    const dir = new RedisDirectory(redis, parts, { ttlMs, pollMs }, options);
    try {
      await dir.tick(true); // learn the members (no events for those already there)
    } catch (err) {
      dir.closed = true;
      redis.disconnect();
      const message = (err as Error).message;
      if (/NOPERM|can't access at least one of the keys|no permissions/i.test(message)) {
        // A tenant's Redis user may touch only its own prefix (docs/security.md, tenants).
        throw new DirectoryError(
          `the Redis user of ${parts.redacted} may not use the key prefix '${dir.prefix}' (Redis ACL): give this node its tenant's user and prefix, or allow ~${dir.prefix}* to that user (${message})`,
          'ERR_ACCESS_DENIED',
          { cause: err },
        );
      }
      throw new DirectoryError(`the Redis directory at ${parts.redacted} does not answer its scripts: ${message}`, 'ERR_DIRECTORY_PROTOCOL', { cause: err });
    }
    dir.timer = setInterval(() => void dir.tick(), dir.pollMs);
    dir.timer.unref();
    return dir;
  }

  /** The liveness TTL and the poll period in force. */
  get timing(): { ttlMs: number; pollMs: number } {
    return { ttlMs: this.ttlMs, pollMs: this.pollMs };
  }

  stats(): RedisDirectoryStats {
    return { ...this.counters, members: this.known.size, owned: this.owned.size };
  }

  // --- Directory ------------------------------------------------------------------------------

  async join(node: NodeInfo): Promise<NodeInfo[]> {
    const info = parseNodeInfo(node);
    if (this.self && this.self.info.nodeId !== info.nodeId) {
      throw new DirectoryError(`directory join failed: this client already joined as '${this.self.info.nodeId}'; one node per client`, 'ERR_REFUSED');
    }
    const inc = this.self?.inc ?? randomBytes(8).toString('hex');
    const reply = await this.run('join', 'pcDirJoin', [this.prefix, info.nodeId, inc, String(this.keyTtlMs), JSON.stringify(info)]);
    const members = this.applyMembers(reply, 0, false);
    this.self = { info, inc };
    return members.map((m) => m.info);
  }

  async lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    if (keys.length === 0) return this.run('lookup', null, []).then(() => []);
    const values = await this.hmget(keys);
    const out = new Array<Location | null>(keys.length);
    let unknown = false;
    for (let i = 0; i < keys.length; i++) {
      const v = values[i];
      out[i] = v === null ? null : this.liveEntry(v);
      if (out[i] === null && v !== null) unknown = true;
    }
    // An owner this client does not know as alive: it may have joined since the last poll.
    if (unknown && performance.now() - this.lastTickAt > Math.min(50, this.pollMs)) {
      await this.tick();
      for (let i = 0; i < keys.length; i++) if (out[i] === null && values[i] !== null) out[i] = this.liveEntry(values[i]!);
    }
    return out;
  }

  /** The entry's location if its owner incarnation is a live member (as of the last poll), else null. */
  private liveEntry(v: string): Location | null {
    const loc = parseEntry(v);
    const known = this.known.get(loc.nodeId);
    if (known === undefined) return null;
    // "gen:offset:length:inc:nodeId": the incarnation ends at the colon before the nodeId.
    const start = v.length - loc.nodeId.length - 1 - known.inc.length;
    return start > 0 && v.charCodeAt(start - 1) === 58 && v.startsWith(known.inc, start) ? loc : null;
  }

  /** HMGET of the entries: one command, or one pipeline of CHUNK-sized ones (one round trip). */
  private async hmget(keys: readonly string[]): Promise<(string | null)[]> {
    const hash = `${this.prefix}e`;
    if (keys.length <= CHUNK) {
      const r = await this.run('lookup', null, []).then(() => this.redis.hmget(hash, ...keys)).catch((err: unknown) => {
        throw this.error('lookup', err);
      });
      if (r.length !== keys.length) throw new DirectoryError(`directory lookup: ${r.length} results for ${keys.length} keys`, 'ERR_DIRECTORY_PROTOCOL');
      return r;
    }
    await this.run('lookup', null, []);
    const pipeline = this.redis.pipeline();
    for (const c of chunks(keys)) pipeline.hmget(hash, ...c);
    const results = await pipeline.exec().catch((err: unknown) => {
      throw this.error('lookup', err);
    });
    if (!results) throw new DirectoryError(`directory lookup failed: pipeline aborted (redis ${this.where})`, 'ERR_CONNECTION_LOST');
    const out: (string | null)[] = [];
    for (const [err, value] of results) {
      if (err) throw this.error('lookup', err);
      for (const v of value as (string | null)[]) out.push(v);
    }
    if (out.length !== keys.length) throw new DirectoryError(`directory lookup: ${out.length} results for ${keys.length} keys`, 'ERR_DIRECTORY_PROTOCOL');
    return out;
  }

  /** The node this client joined as: a client publishes and removes its own node's entries only. */
  private joinedNode(op: string): string {
    if (this.self === null) throw new DirectoryError(`directory ${op} refused: this client has not joined as a node`, 'ERR_REFUSED');
    return this.self.info.nodeId;
  }

  async publish(all: readonly DirectoryEntry[]): Promise<boolean[]> {
    if (all.length === 0) return this.run('publish', null, []).then(() => []);
    for (const e of all) checkEntry(e);
    const me = this.joinedNode('publish');
    // Entries of other nodes are refused here, as the embedded server refuses them (on Redis this
    // is a courtesy, not a boundary: whoever holds the Redis password can write anything).
    const mine = all.every((e) => e.location.nodeId === me);
    const entries = mine ? all : all.filter((e) => e.location.nodeId === me);
    if (entries.length === 0) return all.map(() => false);
    const args = chunks(entries).map((c) => {
      const a = new Array<string>(1 + 5 * c.length);
      a[0] = this.prefix;
      for (let i = 0, b = 1; i < c.length; i++, b += 5) {
        const { key, location: l } = c[i];
        a[b] = key;
        a[b + 1] = l.nodeId;
        a[b + 2] = String(l.generation);
        a[b + 3] = String(l.offset);
        a[b + 4] = String(l.length);
      }
      return a;
    });
    const replies = await this.runChunks('publish', 'pcDirPublish', args);
    const out = new Array<boolean>(entries.length);
    let i = 0;
    for (const reply of replies) {
      if (!Array.isArray(reply)) throw new DirectoryError('directory publish: malformed reply from Redis', 'ERR_DIRECTORY_PROTOCOL');
      for (const v of reply as unknown[]) {
        const ok = v === 1;
        const e = entries[i];
        if (ok && e.location.nodeId === me) this.owned.set(e.key, { ...e.location });
        out[i++] = ok;
      }
    }
    if (i !== entries.length) throw new DirectoryError(`directory publish: ${i} results for ${entries.length} entries`, 'ERR_DIRECTORY_PROTOCOL');
    if (mine) return out;
    let j = 0;
    return all.map((e) => (e.location.nodeId === me ? out[j++] : false));
  }

  async remove(all: readonly RemovalEntry[]): Promise<void> {
    if (all.length === 0) {
      await this.run('remove', null, []);
      return;
    }
    for (const r of all) checkRemoval(r);
    const me = this.joinedNode('remove');
    const entries = all.filter((r) => r.nodeId === me);
    if (entries.length === 0) return;
    const args = chunks(entries).map((c) => {
      const a = new Array<string>(1 + 3 * c.length);
      a[0] = this.prefix;
      for (let i = 0, b = 1; i < c.length; i++, b += 3) {
        a[b] = c[i].key;
        a[b + 1] = c[i].nodeId;
        a[b + 2] = String(c[i].generation);
      }
      return a;
    });
    await this.runChunks('remove', 'pcDirRemove', args);
    for (const r of entries) {
      if (r.nodeId === me && this.owned.get(r.key)?.generation === r.generation) this.owned.delete(r.key);
    }
  }

  async node(nodeId: string): Promise<NodeInfo | null> {
    const reply = await this.run('node', 'pcDirNode', [this.prefix, nodeId]);
    return typeof reply === 'string' ? parseMember(reply).info : null;
  }

  async members(): Promise<NodeInfo[]> {
    const reply = await this.run('members', 'pcDirMembers', [this.prefix]);
    if (!Array.isArray(reply)) throw new DirectoryError('directory members: malformed reply from Redis', 'ERR_DIRECTORY_PROTOCOL');
    return (reply as unknown[]).slice(1).map((s) => parseMember(String(s)).info);
  }

  subscribe(listener: (event: DirectoryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Leaves (this node's entries are removed at once) and closes the connection. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.closed = true;
      if (this.timer) clearInterval(this.timer);
      this.listeners.clear();
      const self = this.self;
      this.self = null;
      this.owned.clear();
      if (self && this.redis.status === 'ready') {
        try {
          await this.script('pcDirLeave')(this.prefix, self.info.nodeId, self.inc);
        } catch (err) {
          // Its liveness key expires by itself: the entries go within the TTL.
          this.log.debug(`directory: leave on ${this.where} failed: ${(err as Error).message}`);
        }
      }
      await Promise.race([this.redis.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 1000).unref())]);
      this.redis.disconnect();
    })();
    return this.closing;
  }

  // --- internals ------------------------------------------------------------------------------

  private script(name: ScriptName): ScriptCall {
    return this.calls.get(name)!;
  }

  private error(op: string, err: unknown): DirectoryError {
    if (err instanceof DirectoryError) return err;
    const e = err as NodeJS.ErrnoException;
    if (/Stream isn't writeable|Connection is closed|MaxRetriesPerRequest|max retries per request/i.test(e.message ?? '')) {
      return new DirectoryError(`directory ${op} failed: the connection to redis ${this.where} is down; reconnecting`, 'ERR_CONNECTION_LOST', { cause: err });
    }
    const timeout = /timed? ?out/i.test(e.message ?? '');
    if (timeout) this.unresponsive(`${op} unanswered`);
    const code: ErrorCode = timeout ? 'ERR_TIMEOUT' : /^INUSE /.test(e.message ?? '') ? 'ERR_REFUSED' : 'ERR_REDIS';
    const message = (e.message ?? String(err)).replace(/^INUSE /, '');
    return new DirectoryError(`directory ${op} failed (redis ${this.where}): ${message}`, code, { cause: err, errno: e.code });
  }

  /**
   * A request got no answer within its deadline: on a silent partition the connection neither
   * fails nor progresses, and every later call would wait its whole deadline too. Drop it and
   * reconnect: until Redis answers again, calls fail at once (the store's misses), and on 'ready'
   * the heartbeat re-joins and republishes if Redis declared this node dead meanwhile.
   */
  private unresponsive(why: string): void {
    if (this.closed || this.redis.status !== 'ready') return;
    this.log.warn(`directory: redis ${this.where} unresponsive (${why}); reconnecting, calls fail fast until it answers`);
    this.redis.disconnect(true);
  }

  /** Fails fast when closed or disconnected; one script call otherwise. `name` null: just the checks. */
  private async run(op: string, name: ScriptName | null, args: string[]): Promise<unknown> {
    if (this.closed) throw new DirectoryError('directory client is closed', 'ERR_CLOSED');
    if (this.redis.status !== 'ready') {
      throw new DirectoryError(`directory ${op} failed: the connection to redis ${this.where} is down (${this.redis.status}); reconnecting`, 'ERR_CONNECTION_LOST');
    }
    if (name === null) return null;
    try {
      return await this.script(name)(...args);
    } catch (err) {
      throw this.error(op, err);
    }
  }

  /** One script call per chunk; several chunks go in one pipeline (one round trip). */
  private async runChunks(op: string, name: ScriptName, argsPerChunk: string[][]): Promise<unknown[]> {
    if (argsPerChunk.length === 1) return [await this.run(op, name, argsPerChunk[0])];
    await this.run(op, null, []);
    const pipeline = this.redis.pipeline();
    const queue = pipeline as unknown as Record<string, (...args: string[]) => unknown>;
    for (const args of argsPerChunk) queue[name](...args);
    let results: [Error | null, unknown][] | null;
    try {
      results = await pipeline.exec();
    } catch (err) {
      throw this.error(op, err);
    }
    if (!results) throw new DirectoryError(`directory ${op} failed: pipeline aborted (redis ${this.where})`, 'ERR_CONNECTION_LOST');
    return results.map(([err, value]) => {
      if (err) throw this.error(op, err);
      return value;
    });
  }

  /**
   * Heartbeat + membership poll + sweep of dead nodes (one script). Re-joins when this node lost
   * its membership. Errors are logged, not thrown, except for the first call (`initial`).
   */
  private tick(initial = false, force = false): Promise<void> {
    if (this.ticking && !force) return this.ticking;
    const seq = ++this.tickSeq;
    this.lastTickAt = performance.now();
    const current = (async () => {
      await undefined; // `this.ticking` is set before this body runs
      let timer: NodeJS.Timeout | undefined;
      try {
        if (this.closed || this.redis.status !== 'ready') return;
        this.counters.ticks++;
        const self = this.self;
        const call = this.script('pcDirTick')(
          this.prefix, self?.info.nodeId ?? '', self?.inc ?? '', String(this.keyTtlMs), this.version, String(SWEEP_LIMIT),
        );
        // A heartbeat older than the TTL is worthless: never let one block the next ones.
        const reply = await Promise.race([
          call,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new DirectoryError(`heartbeat unanswered for ${this.ttlMs} ms`, 'ERR_TIMEOUT')), this.ttlMs);
          }),
        ]);
        if (!Array.isArray(reply) || reply.length < 3) throw new DirectoryError('directory tick: malformed reply from Redis', 'ERR_DIRECTORY_PROTOCOL');
        const [own, changed] = reply as [number, number];
        if (changed === 1) this.applyMembers(reply, 2, !initial);
        else this.version = String(reply[2]);
        if (own === 0 && self && this.self === self && !this.closed) await this.rejoin(self);
      } catch (err) {
        this.counters.tickErrors++;
        if (initial) throw err;
        if ((err as DirectoryError).code === 'ERR_TIMEOUT' || /timed? ?out/i.test((err as Error).message ?? '')) this.unresponsive('heartbeat unanswered');
        this.log.debug(`directory: heartbeat on ${this.where} failed: ${(err as Error).message}`);
      } finally {
        clearTimeout(timer);
        if (this.tickSeq === seq) this.ticking = null;
      }
    })();
    this.ticking = current;
    return current;
  }

  /** This node is no longer a member: join again (new incarnation) and republish what it owns. */
  private async rejoin(self: { info: NodeInfo; inc: string }): Promise<void> {
    const inc = randomBytes(8).toString('hex');
    let reply: unknown;
    try {
      reply = await this.script('pcDirJoin')(this.prefix, self.info.nodeId, inc, String(this.keyTtlMs), JSON.stringify(self.info));
    } catch (err) {
      this.log.error(`directory: node '${self.info.nodeId}' lost its membership on ${this.where} and cannot join again: ${this.error('join', err).message}`);
      return;
    }
    if (this.self !== self) return; // closed meanwhile
    this.self = { info: self.info, inc };
    this.counters.rejoins++;
    this.applyMembers(reply, 0, true);
    const entries = [...this.owned].map(([key, location]) => ({ key, location }));
    this.log.warn(`directory: node '${self.info.nodeId}' had lost its membership on ${this.where} (Redis restarted, or no heartbeat for ${this.ttlMs} ms); joined again, republishing ${entries.length} entries`);
    if (this.options.republish === false || entries.length === 0) {
      this.owned.clear();
      return;
    }
    try {
      const ok = await this.publish(entries);
      let n = 0;
      for (let i = 0; i < entries.length; i++) {
        if (ok[i]) n++;
        else if (this.owned.get(entries[i].key)?.generation === entries[i].location.generation) this.owned.delete(entries[i].key);
      }
      this.counters.republished += n;
    } catch (err) {
      this.log.warn(`directory: republishing after the re-join failed: ${(err as Error).message}`);
    }
  }

  /** Parses a members reply (`{…, version, "inc:json"...}` from index `at`), updates `known`, emits the difference. */
  private applyMembers(reply: unknown, at: number, emit: boolean): Known[] {
    if (!Array.isArray(reply) || reply.length <= at) throw new DirectoryError('directory: malformed members reply from Redis', 'ERR_DIRECTORY_PROTOCOL');
    const list = (reply as unknown[]).slice(at + 1).map((s) => parseMember(String(s)));
    this.version = String((reply as unknown[])[at]);
    const next = new Map<string, Known>();
    for (const m of list) next.set(m.info.nodeId, m);
    const prev = this.known;
    this.known = next;
    if (emit) {
      const me = this.self?.info.nodeId;
      for (const [id, old] of prev) {
        const now = next.get(id);
        if (id !== me && (!now || now.inc !== old.inc)) {
          this.emit({ type: 'node-left', nodeId: id, reason: `gone from the Redis directory (left, or no heartbeat within ${this.ttlMs} ms)` });
        }
      }
      for (const [id, m] of next) {
        const old = prev.get(id);
        if (id !== me && (!old || old.raw !== m.raw)) this.emit({ type: 'node-joined', node: m.info });
      }
    }
    return list;
  }

  private emit(event: DirectoryEvent): void {
    for (const listener of this.listeners) {
      try {
        listener(event.type === 'node-joined' ? { type: 'node-joined', node: parseNodeInfo(event.node) } : { ...event });
      } catch (err) {
        this.log.error(`directory: event listener threw: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }
}
