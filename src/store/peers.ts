/**
 * Connections to other nodes' published pools: one endpoint (its own QP on RDMA) and one attached
 * region per peer, opened on first use and dropped when the peer leaves or fails.
 */
import type { Endpoint, RemoteRegion, TransportNode } from '../transport/types.js';
import type { Logger } from '../log.js';
import { headerOffsetFor, type PoolGeometry } from './published-pool.js';
import { printable } from './printable.js';
import type { Directory, NodeInfo } from './types.js';

/** Node attributes that describe a published pool's geometry. */
export const POOL_DATA_BASE = 'poolDataBase';
export const POOL_STRIDE = 'poolStride';

export interface Peer {
  nodeId: string;
  info: NodeInfo;
  endpoint: Endpoint;
  remote: RemoteRegion;
  /** The header offset of the slot whose data starts at `dataOffset` (-1: not a slot of this pool). */
  headerOffset(dataOffset: number): number;
}

/** How long a node that could not be used is left alone: doubling from the first to the last. */
export const PEER_RETRY_FIRST_MS = 1000;
export const PEER_RETRY_MAX_MS = 10_000;

/** A node that could not be used: its keys are misses until `retryAt`, and its reason is logged once per attempt. */
interface FailedPeer {
  retryAt: number;
  failures: number;
  /** Lookups answered as misses since the last attempt (said in the next message). */
  missed: number;
}

export class PeerSet {
  private readonly peers = new Map<string, Peer>();
  private readonly pending = new Map<string, Promise<Peer | null>>();
  /**
   * Nodes whose blobs were refused or that could not be reached. A hostile or broken peer costs
   * one attempt and one log line per back-off period, not one per lookup.
   */
  private readonly failed = new Map<string, FailedPeer>();

  constructor(
    private readonly transport: TransportNode,
    private readonly directory: Directory,
    private readonly logger: Logger,
  ) {}

  /** The peer if it is connected and healthy, without waiting (the read fast path). */
  connected(nodeId: string): Peer | undefined {
    const peer = this.peers.get(nodeId);
    return peer && peer.endpoint.failure === null ? peer : undefined;
  }

  /**
   * The peer, connected; null if the node is unknown, gone, publishes nothing, or cannot be
   * reached within `timeoutMs` (the caller's deadline: a connect still under way goes on, and a
   * later call gets its result).
   */
  resolve(nodeId: string, timeoutMs?: number): Promise<Peer | null> {
    const p = this.resolveNow(nodeId);
    if (timeoutMs === undefined) return p;
    if (timeoutMs <= 0) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), timeoutMs);
      p.then(
        (peer) => {
          clearTimeout(timer);
          resolve(peer);
        },
        () => {
          clearTimeout(timer);
          resolve(null);
        },
      );
    });
  }

  /**
   * False while this node is known unreachable from here (a READ or a connect to it failed, and no
   * connect has succeeded since): what exists reports must be what a get can read. Once its back-off
   * has passed, a connect attempt starts in the background (exists alone must find the node again
   * after a partition heals, since SGLang gets only what exists reported).
   */
  reachable(nodeId: string): boolean {
    const failed = this.failed.get(nodeId);
    if (!failed) return true;
    if (Date.now() >= failed.retryAt && !this.pending.has(nodeId)) this.resolveNow(nodeId).catch(() => {});
    return false;
  }

  /** A READ from this node failed with its endpoint (timed out, connection lost): drop it and leave it alone for a back-off period. */
  unreachable(peer: Peer, reason: string): void {
    // Once per endpoint: concurrent calls on the same failed endpoint do not double the back-off.
    if (this.peers.get(peer.nodeId) !== peer) return;
    this.drop(peer.nodeId, reason);
    this.refuse(peer.nodeId, reason);
  }

  private resolveNow(nodeId: string): Promise<Peer | null> {
    const peer = this.peers.get(nodeId);
    if (peer && peer.endpoint.failure === null) return Promise.resolve(peer);
    if (peer) this.unreachable(peer, `endpoint failed: ${peer.endpoint.failure}`);
    const failed = this.failed.get(nodeId);
    if (failed && Date.now() < failed.retryAt) {
      failed.missed++;
      return Promise.resolve(null);
    }
    let p = this.pending.get(nodeId);
    if (!p) {
      p = this.connect(nodeId).finally(() => this.pending.delete(nodeId));
      this.pending.set(nodeId, p);
    }
    return p;
  }

  private async connect(nodeId: string): Promise<Peer | null> {
    const info = await this.directory.node(nodeId);
    if (!info || !info.regionDescriptor) return null;
    const dataBase = info.attributes[POOL_DATA_BASE];
    const stride = info.attributes[POOL_STRIDE];
    if (typeof dataBase !== 'number' || typeof stride !== 'number' || !Number.isSafeInteger(dataBase) || !Number.isSafeInteger(stride) || dataBase < 0 || stride <= 0) {
      return this.refuse(nodeId, 'it does not describe its pool geometry (an incompatible peercache version?)');
    }
    const geometry: Pick<PoolGeometry, 'dataBase' | 'stride'> = { dataBase, stride };
    if (info.protocol !== this.transport.protocol) {
      return this.refuse(nodeId, `it speaks ${info.protocol}, this node ${this.transport.protocol}`);
    }
    let endpoint: Endpoint | undefined;
    try {
      endpoint = await this.transport.connect(Buffer.from(info.transportAddress, 'base64'));
      const remote = endpoint.attach(Buffer.from(info.regionDescriptor, 'base64'));
      const peer: Peer = { nodeId, info, endpoint, remote, headerOffset: (offset) => headerOffsetFor(geometry, offset) };
      this.peers.set(nodeId, peer);
      this.failed.delete(nodeId);
      this.logger.debug(`connected to ${nodeId} (${printable(info.host)}) over ${endpoint.lanes().join(', ') || this.transport.transports}`);
      return peer;
    } catch (err) {
      try {
        endpoint?.close();
      } catch {
        /* already failed */
      }
      return this.refuse(nodeId, `cannot reach it at ${printable(info.host)}: ${(err as Error).message}`);
    }
  }

  /** Remembers a node that cannot be used and says why, once per back-off period. */
  private refuse(nodeId: string, reason: string): null {
    const previous = this.failed.get(nodeId);
    const failures = (previous?.failures ?? 0) + 1;
    const backoffMs = Math.min(PEER_RETRY_MAX_MS, PEER_RETRY_FIRST_MS * 2 ** (failures - 1));
    const missed = previous?.missed ? ` (${previous.missed} lookups were misses since the last attempt)` : '';
    this.logger.warn(`node ${printable(nodeId)}: ${reason}; its keys are misses here, next attempt in ${backoffMs / 1000} s${missed}`);
    this.failed.set(nodeId, { retryAt: Date.now() + backoffMs, failures, missed: 0 });
    return null;
  }

  /** Forgets a node's failures (it left; a node of that name that joins later starts afresh). */
  forget(nodeId: string): void {
    this.failed.delete(nodeId);
  }

  /** Lanes in use across peers (what actually ran). */
  lanes(): string[] {
    const all = new Set<string>();
    for (const p of this.peers.values()) for (const l of p.endpoint.lanes()) all.add(l);
    return [...all];
  }

  drop(nodeId: string, reason: string): void {
    const peer = this.peers.get(nodeId);
    if (!peer) return;
    this.peers.delete(nodeId);
    this.logger.debug(`dropping peer ${nodeId}: ${reason}`);
    try {
      peer.endpoint.close();
    } catch {
      /* already failed */
    }
  }

  closeAll(): void {
    for (const id of [...this.peers.keys()]) this.drop(id, 'store closed');
  }
}
