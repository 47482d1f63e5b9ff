/**
 * RejoiningDirectory: a node's embedded-directory client that survives the directory host's
 * death. When the connection is lost it reconnects with backoff (through `reopen`, which either
 * joins whoever serves the discovery address now or, where this host may bind it, serves it
 * itself), joins again as the same node and republishes the entries it still holds, so its pages
 * are found again. While it is away, calls fail fast (the store turns them into misses).
 *
 * The client remembers what it published and did not remove: the directory server keeps no
 * state across its own death, so the members are the only ones who know.
 */
import type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from '../types.js';
import type { DirectoryServer } from './server.js';
import type { Logger } from '../../log.js';

export interface Reopened {
  directory: Directory;
  server: DirectoryServer | null;
}

export interface RejoinOptions {
  /** Opens a fresh directory connection; `onLost` must be called when that connection is lost. */
  reopen(onLost: (reason: string) => void): Promise<Reopened>;
  logger?: Logger;
  /** First retry delay (default 100 ms), doubled per failed attempt up to `maxBackoffMs` (default 2000 ms). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Entries republished per request after a rejoin (default 16 384). */
  republishBatch?: number;
}

export class RejoiningDirectory implements Directory {
  private inner: Directory;
  private server: DirectoryServer | null;
  private self: NodeInfo | null = null;
  private readonly held = new Map<string, Location>();
  private readonly listeners = new Set<(event: DirectoryEvent) => void>();
  private unsubscribeInner: () => void = () => {};
  private closed = false;
  private reconnecting: Promise<void> | null = null;
  private epoch = 0;
  /** Times this client rejoined after losing the directory (for tests and stats). */
  rejoins = 0;

  private constructor(
    first: Reopened,
    private readonly options: RejoinOptions,
  ) {
    this.inner = first.directory;
    this.server = first.server;
    this.attachListeners();
  }

  /** Opens the first connection through `reopen` and wraps it. */
  static async open(options: RejoinOptions): Promise<RejoiningDirectory> {
    let wrapper: RejoiningDirectory | null = null;
    let lostEarly: string | null = null;
    const epoch = 0;
    const first = await options.reopen((reason) => (wrapper ? wrapper.lost(epoch, reason) : (lostEarly = reason)));
    wrapper = new RejoiningDirectory(first, options);
    if (lostEarly !== null) wrapper.lost(epoch, lostEarly);
    return wrapper;
  }

  /** The directory server this process hosts now (after a takeover it may be one it started). */
  get hostedServer(): DirectoryServer | null {
    return this.server;
  }

  async join(node: NodeInfo): Promise<NodeInfo[]> {
    const members = await this.inner.join(node);
    this.self = node;
    return members;
  }

  lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    return this.inner.lookup(keys);
  }

  /** The current connection's replica (none while reconnecting: a fresh one streams again after the rejoin). */
  lookupLocal(keys: readonly string[]): (Location | null)[] | null {
    return this.inner.lookupLocal?.(keys) ?? null;
  }

  async publish(entries: readonly DirectoryEntry[]): Promise<boolean[]> {
    const out = await this.inner.publish(entries);
    const me = this.self?.nodeId;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i];
      if (out[i] && e.location.nodeId === me) this.held.set(e.key, { ...e.location });
    }
    return out;
  }

  async remove(entries: readonly RemovalEntry[]): Promise<void> {
    // Forget first: an entry removed while the directory is away must not come back on rejoin.
    for (const r of entries) if (this.held.get(r.key)?.generation === r.generation && r.nodeId === this.self?.nodeId) this.held.delete(r.key);
    await this.inner.remove(entries);
  }

  node(nodeId: string): Promise<NodeInfo | null> {
    return this.inner.node(nodeId);
  }

  members(): Promise<NodeInfo[]> {
    return this.inner.members();
  }

  subscribe(listener: (event: DirectoryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once a reconnect in progress has finished (immediately when none is). */
  async settled(): Promise<void> {
    await this.reconnecting;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribeInner();
    try {
      await this.inner.close();
    } finally {
      await this.server?.close();
    }
  }

  private attachListeners(): void {
    this.unsubscribeInner = this.inner.subscribe((event) => {
      for (const l of this.listeners) l(event);
    });
  }

  private lost(epoch: number, reason: string): void {
    if (this.closed || epoch !== this.epoch || this.reconnecting) return;
    this.options.logger?.warn(`directory: connection lost (${reason}); reconnecting, then rejoining with ${this.held.size} entries`);
    this.reconnecting = this.reconnect().finally(() => (this.reconnecting = null));
  }

  private async reconnect(): Promise<void> {
    const initial = this.options.initialBackoffMs ?? 100;
    const max = this.options.maxBackoffMs ?? 2000;
    const t0 = Date.now();
    for (let attempt = 0; !this.closed; attempt++) {
      await sleep(Math.min(max, initial * 2 ** attempt) * (0.5 + Math.random() / 2));
      if (this.closed) return;
      const epoch = ++this.epoch;
      let next: Reopened;
      try {
        next = await this.options.reopen((reason) => this.lost(epoch, reason));
      } catch (err) {
        this.options.logger?.debug(`directory: reconnect attempt ${attempt + 1} failed: ${(err as Error).message}`);
        continue;
      }
      if (this.closed) {
        await next.directory.close().catch(() => {});
        await next.server?.close();
        return;
      }
      this.unsubscribeInner();
      await this.inner.close().catch(() => {});
      this.inner = next.directory;
      if (next.server) this.server = next.server;
      this.attachListeners();
      try {
        await this.restore();
      } catch (err) {
        // Refused (the server still holds this node's old connection, e.g. after a silent
        // partition, until its idle timeout drops it) or the new connection failed: try again
        // after the next back-off step, on a fresh connection.
        this.options.logger?.warn(`directory: rejoin failed: ${(err as Error).message}`);
        if (next.server) return; // this process serves it now: its own server cannot refuse it for long
        await next.directory.close().catch(() => {});
        continue;
      }
      this.rejoins++;
      this.options.logger?.info(`directory: rejoined after ${Date.now() - t0} ms (${next.server ? 'now serving it' : 'joined'}), ${this.held.size} entries republished`);
      return;
    }
  }

  /** Joins again as the same node and republishes what it still holds. */
  private async restore(): Promise<void> {
    if (this.self === null) return;
    await this.inner.join(this.self);
    const batch = this.options.republishBatch ?? 16_384;
    const all = [...this.held].map(([key, location]) => ({ key, location }));
    for (let i = 0; i < all.length; i += batch) {
      const part = all.slice(i, i + batch);
      const ok = await this.inner.publish(part);
      // Someone else took the key meanwhile: it is theirs now.
      for (let j = 0; j < part.length; j++) if (!ok[j]) this.held.delete(part[j].key);
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());
