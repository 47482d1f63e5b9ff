/**
 * Control-plane types shared by the store and its directory implementations (the embedded
 * server now, Redis later). A directory maps keys to the node and slot that hold them and keeps
 * the membership: which nodes are alive and how to reach them.
 */
import type { Protocol } from '../transport/types.js';

/** How a node is reached: what a reader needs to connect and READ its published pool. */
export interface NodeInfo {
  nodeId: string;
  protocol: Protocol;
  /** The host the node advertises (for messages and two-host checks; the transport address is authoritative). */
  host: string;
  /** Base64 of the node's TransportNode.address(). */
  transportAddress: string;
  /** Base64 of the published pool's region descriptor; null for a node that publishes nothing. */
  regionDescriptor: string | null;
  /** Free-form attributes both sides may check at join (layout, page size, working set, ...). */
  attributes: Record<string, string | number | boolean>;
}

/** Where one object (a page component) lives: the slot in its owner's published pool. */
export interface Location {
  nodeId: string;
  /** Byte offset of the slot's data in the owner's published region. */
  offset: number;
  /** Object length in bytes. */
  length: number;
  /** The slot's generation when this object was published; READs are validated against it. */
  generation: number;
}

export interface DirectoryEntry {
  key: string;
  location: Location;
}

/** A conditional removal: applies only where the entry still has this owner and generation. */
export interface RemovalEntry {
  key: string;
  nodeId: string;
  generation: number;
}

export type DirectoryEvent =
  | { type: 'node-joined'; node: NodeInfo }
  | { type: 'node-left'; nodeId: string; reason: string };

/**
 * The directory the store talks to. Every method is one round trip, whatever the batch size.
 * A node that leaves or dies is removed with all its entries (its keys become misses).
 */
export interface Directory {
  /** Registers this node; resolves with every member (this node included). */
  join(node: NodeInfo): Promise<NodeInfo[]>;
  /** Locations of keys, null where absent. */
  lookup(keys: readonly string[]): Promise<(Location | null)[]>;
  /**
   * Locations answered here, without a round trip, from a replica the directory keeps current
   * (replica.ts), or null when this directory keeps none or it may be staler than its bound: then
   * call lookup(). A location may be stale by that bound: READs validate it (a stale "present"
   * costs a miss, never wrong bytes). The objects returned are shared: do not modify them.
   */
  lookupLocal?(keys: readonly string[]): (Location | null)[] | null;
  /**
   * Publishes entries. Per entry: true if the directory now maps the key to this location. An
   * entry is refused (false) when another live node already holds the key (first publisher wins:
   * SGLang's idempotent set) or when the same node holds it with a newer generation.
   */
  publish(entries: readonly DirectoryEntry[]): Promise<boolean[]>;
  /** Conditional removal; entries whose owner or generation changed are left alone. */
  remove(entries: readonly RemovalEntry[]): Promise<void>;
  /** A member's info, null if unknown or gone. */
  node(nodeId: string): Promise<NodeInfo | null>;
  members(): Promise<NodeInfo[]>;
  /** Membership changes pushed by the directory. Returns an unsubscribe function. */
  subscribe(listener: (event: DirectoryEvent) => void): () => void;
  /** Leaves (entries of this node are removed) and closes the connection. */
  close(): Promise<void>;
}
