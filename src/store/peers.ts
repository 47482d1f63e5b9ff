/**
 * Connections to other nodes' published pools: one endpoint (its own QP on RDMA) and one attached
 * region per peer, opened on first use and dropped when the peer leaves or fails.
 */
import type { Endpoint, RemoteRegion, TransportNode } from '../transport/types.js';
import type { Logger } from '../log.js';
import { headerOffsetFor, type PoolGeometry } from './published-pool.js';
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

export class PeerSet {
  private readonly peers = new Map<string, Peer>();
  private readonly pending = new Map<string, Promise<Peer | null>>();

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

  /** The peer, connected; null if the node is unknown, gone, or publishes nothing. */
  resolve(nodeId: string): Promise<Peer | null> {
    const peer = this.peers.get(nodeId);
    if (peer && peer.endpoint.failure === null) return Promise.resolve(peer);
    if (peer) this.drop(nodeId, `endpoint failed: ${peer.endpoint.failure}`);
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
    if (typeof dataBase !== 'number' || typeof stride !== 'number' || stride <= 0) {
      this.logger.warn(`node ${nodeId} does not describe its pool geometry (an incompatible peercache version?): its keys are misses here`);
      return null;
    }
    const geometry: Pick<PoolGeometry, 'dataBase' | 'stride'> = { dataBase, stride };
    if (info.protocol !== this.transport.protocol) {
      this.logger.warn(`node ${nodeId} speaks ${info.protocol}, this node ${this.transport.protocol}: its keys are misses here`);
      return null;
    }
    try {
      const endpoint = await this.transport.connect(Buffer.from(info.transportAddress, 'base64'));
      const remote = endpoint.attach(Buffer.from(info.regionDescriptor, 'base64'));
      const peer: Peer = { nodeId, info, endpoint, remote, headerOffset: (offset) => headerOffsetFor(geometry, offset) };
      this.peers.set(nodeId, peer);
      this.logger.debug(`connected to ${nodeId} (${info.host}) over ${endpoint.lanes().join(', ') || this.transport.transports}`);
      return peer;
    } catch (err) {
      this.logger.warn(`cannot reach node ${nodeId} (${info.host}): ${(err as Error).message}`);
      return null;
    }
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
