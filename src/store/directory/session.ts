/**
 * A session of the directory (a socket connection or the in-process directory), the refusal a
 * session is answered with, and what a session may ask of the directory that serves it.
 */
import type { DirectoryEvent, Location } from '../types.js';
import type { Request, RequestOf, ResultMap } from './messages.js';
import { PeercacheError } from '../../errors.js';

/** A request the directory refuses (membership or ownership rules); the session stays open. */
export class DirectoryRequestError extends PeercacheError {
  override name = 'DirectoryRequestError';
  constructor(message: string) {
    super('ERR_REFUSED', message);
  }
}

/** One party of the directory: a socket connection or an in-process (local) directory. */
export interface Session {
  readonly label: string;
  /** The node this session joined, if any. */
  nodeId: string | null;
  /** Pushes an event; `frame` encodes it once for all sockets. */
  deliver(event: DirectoryEvent, frame: () => Buffer): void;
  /** Pushes key changes (encoded once for all watchers) to a session that watches; absent where a session cannot watch. */
  deliverKeys?(frame: () => Buffer): void;
}

/**
 * What a Connection and a LocalDirectory need from the directory they serve: the server
 * implements it, the sessions see only it. This is what keeps server.ts -> connection.ts /
 * local-directory.ts one-way (no import circle, not even of types).
 */
export interface SessionHost {
  readonly maxFrameBytes: number;
  readonly idleTimeoutMs: number;
  readonly maxQueuedBytes: number;
  /** Entries held now (a watch is refused when its replica could not hold them). */
  readonly entryCount: number;
  /** A live view of the entries, for a watcher's snapshot. */
  entryIterator(): IterableIterator<[string, Location]>;
  /** From now on every change is pushed to this session. */
  addWatcher(session: Session): void;
  /** Applies one request (hello excluded) for a session; throws DirectoryRequestError on refusal. */
  execute<O extends Exclude<Request['op'], 'hello'>>(session: Session, req: RequestOf<O>): ResultMap[O];
  /** The directory a hello's token opens: this one, a tenant's, or a refusal. */
  directoryFor(token: string | undefined): SessionHost | 'missing' | 'wrong';
  /** A connection moves to the tenant directory its hello opened. */
  adopt(conn: Session, from: SessionHost): void;
  forgetConnection(conn: Session): void;
  /** Registers a session that passed hello. */
  admit(session: Session): void;
  /** A session went away: its node (if any) leaves with all its entries. */
  drop(session: Session, reason: string): void;
  countRejected(code: string): void;
  logLine(level: 'debug' | 'info' | 'warn' | 'error', message: string): void;
  /** In-process replica read: the entries themselves (copies), no round trip. */
  lookupNow(keys: readonly string[]): (Location | null)[];
  /** A local directory closed: its node leaves. */
  forgetLocal(local: { readonly session: Session }): void;
}
