/** The in-process Directory of the node that hosts the embedded server: same semantics as a socket session, no socket, no JSON. */
import type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from '../types.js';
import { checkRequest, parseNodeInfo } from './messages.js';
import type { Request, RequestOf, ResultMap } from './messages.js';
import { PeercacheError } from '../../errors.js';
import type { Session, SessionHost } from './session.js';

/** The in-process Directory of the serving node: same semantics, no socket, no JSON. */
export class LocalDirectory implements Directory {
  readonly session: Session;
  private readonly listeners = new Set<(event: DirectoryEvent) => void>();
  private lost: string | null = null;
  private closed = false;

  constructor(private readonly server: SessionHost) {
    const self = this;
    this.session = {
      label: 'local',
      nodeId: null,
      deliver(event: DirectoryEvent): void {
        // Deliver after the current operation completes, as a socket would.
        queueMicrotask(() => self.emit(event));
      },
    };
  }

  detach(reason: string): void {
    this.lost ??= reason;
    this.session.nodeId = null;
  }

  private emit(event: DirectoryEvent): void {
    if (this.lost !== null) return;
    for (const listener of this.listeners) {
      try {
        listener(cloneEvent(event));
      } catch (err) {
        this.server.logLine('error', `directory: event listener threw: ${(err as Error)?.message ?? String(err)}`);
      }
    }
  }

  private run<O extends Exclude<Request['op'], 'hello'>>(req: RequestOf<O>): Promise<ResultMap[O]> {
    if (this.closed) return Promise.reject(new PeercacheError('ERR_CLOSED', 'directory client is closed'));
    if (this.lost !== null) return Promise.reject(new PeercacheError('ERR_CONNECTION_LOST', `directory connection lost: ${this.lost}`));
    try {
      // The same validation (and copying) as the wire path: callers cannot alias stored state.
      const checked = checkRequest(req as Request) as RequestOf<O>;
      return Promise.resolve(this.server.execute<O>(this.session, checked));
    } catch (err) {
      return Promise.reject(err instanceof Error ? new PeercacheError('ERR_REFUSED', `directory ${(req as Request).op} failed: ${err.message}`) : err);
    }
  }

  async join(node: NodeInfo): Promise<NodeInfo[]> {
    return (await this.run<'join'>({ op: 'join', node })).map(cloneNode);
  }

  async lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    const locs = await this.run<'lookup'>({ op: 'lookup', keys: keys as string[] });
    // Copies: the caller must not be able to mutate the directory's entries.
    for (let i = 0; i < locs.length; i++) {
      const l = locs[i];
      if (l !== null) locs[i] = { nodeId: l.nodeId, offset: l.offset, length: l.length, generation: l.generation };
    }
    return locs;
  }

  /** The serving node reads the entries in-process: always current, no round trip. */
  lookupLocal(keys: readonly string[]): (Location | null)[] | null {
    if (this.closed || this.lost !== null) return null;
    return this.server.lookupNow(keys);
  }

  publish(entries: readonly DirectoryEntry[]): Promise<boolean[]> {
    return this.run<'publish'>({ op: 'publish', entries: entries as DirectoryEntry[] });
  }

  async remove(entries: readonly RemovalEntry[]): Promise<void> {
    await this.run<'remove'>({ op: 'remove', entries: entries as RemovalEntry[] });
  }

  async node(nodeId: string): Promise<NodeInfo | null> {
    const n = await this.run<'node'>({ op: 'node', nodeId });
    return n === null ? null : cloneNode(n);
  }

  async members(): Promise<NodeInfo[]> {
    return (await this.run<'members'>({ op: 'members' })).map(cloneNode);
  }

  subscribe(listener: (event: DirectoryEvent) => void): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    if (this.lost === null) this.server.forgetLocal(this);
  }
}

function cloneNode(n: NodeInfo): NodeInfo {
  return parseNodeInfo(n);
}

function cloneEvent(e: DirectoryEvent): DirectoryEvent {
  return e.type === 'node-joined' ? { type: 'node-joined', node: cloneNode(e.node) } : { ...e };
}
