/** One client socket of the embedded directory server (server.ts): decoding, hello/auth, dispatch, backpressure, and its fate when it misbehaves. */
import type net from 'node:net';
import type { DirectoryEvent, Location } from '../types.js';
import { DEFAULT_MAX_FRAME_BYTES, FrameDecoder, FrameKind, PROTOCOL_VERSION, WireError, decodeJson, encodeFrame, frameKindName } from '../../framing.js';
import type { Frame } from '../../framing.js';
import { LIMITS, encodeKeyChanges, encodeLookupResult, parseRequest } from './messages.js';
import type { Request, RequestOf, ResultMap } from './messages.js';
import { DirectoryRequestError, type Session, type SessionHost } from './session.js';

/** Entries per snapshot frame of a watch (4096 keys of the longest allowed stay ~4.5 MB, under the default frame limit). */
const SNAPSHOT_CHUNK = 4096;
/** Bytes queued on a watcher's socket before its snapshot waits for a drain. */
const SNAPSHOT_HIGH_WATER = 4 * 1024 * 1024;

/** One client socket: decoding, hello/auth, dispatch, and its fate when it misbehaves. */
export class Connection implements Session {
  readonly label: string;
  nodeId: string | null = null;
  private readonly decoder: FrameDecoder;
  private ready = false;
  private closing = false;
  private closeReason: string | null = null;
  private lastError: Error | null = null;
  /** When the last complete frame arrived: a trickle of bytes does not keep a connection alive. */
  private lastSeen = Date.now();
  private readonly connectedAt = Date.now();
  /** The directory this connection belongs to (a tenant's after a tenant's hello). */
  get owner(): SessionHost {
    return this.server;
  }
  private peerMaxFrameBytes = DEFAULT_MAX_FRAME_BYTES;
  private waitingDrain = false;

  constructor(
    private server: SessionHost,
    private readonly socket: net.Socket,
    onClosed: () => void,
  ) {
    this.label = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? '?'}`;
    // Until hello (and its token) passed, only a small frame is accepted: nothing large is buffered for a stranger.
    this.decoder = new FrameDecoder((f) => this.onFrame(f), { maxFrameBytes: Math.min(LIMITS.helloFrameBytes, server.maxFrameBytes), role: 'server' });
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('error', (err) => {
      this.lastError = err;
    });
    socket.on('close', () => {
      onClosed();
      const reason =
        this.closeReason ?? (this.lastError ? `connection lost: ${(this.lastError as NodeJS.ErrnoException).code ?? this.lastError.message}` : 'connection closed');
      this.server.drop(this, reason);
    });
    socket.on('drain', () => {
      if (this.waitingDrain) {
        this.waitingDrain = false;
        socket.resume();
      }
    });
  }

  deliver(_event: DirectoryEvent, frame: () => Buffer): void {
    if (this.closing) return;
    this.socket.write(frame());
    this.checkQueued();
  }

  deliverKeys(frame: () => Buffer): void {
    if (this.closing) return;
    const buf = frame();
    if (buf.length > this.peerMaxFrameBytes) {
      // Larger than this client accepts: its replica can no longer be kept; it falls back to lookups.
      this.server.execute(this, { op: 'unwatch' });
      this.socket.write(encodeFrame(FrameKind.Event, 0, { type: 'keys-reset' }, Number.MAX_SAFE_INTEGER));
    } else {
      this.socket.write(buf);
    }
    this.checkQueued();
  }

  /**
   * Starts a replica: every entry in chunks, then the answer; changes made meanwhile are pushed
   * in order between the chunks. The snapshot iterates the live Map, so each chunk carries the
   * entries' values when it is written and an entry removed earlier is not sent: in socket order,
   * the replica ends equal to the directory. Waits for the socket to drain between chunks, so a
   * snapshot of millions of entries neither blocks the loop for long nor outgrows the send queue.
   */
  private async watch(id: number, maxEntries: number): Promise<void> {
    const held = this.server.entryCount;
    if (held > maxEntries) {
      this.send(FrameKind.Error, id, { message: `the directory holds ${held} entries, more than this replica's limit of ${maxEntries}`, fatal: false, code: 'too-many' });
      return;
    }
    this.server.addWatcher(this);
    const it = this.server.entryIterator();
    let sent = 0;
    for (let done = false; !done; ) {
      if (this.closing) return;
      const keys: string[] = [];
      const locations: Location[] = [];
      while (keys.length < SNAPSHOT_CHUNK) {
        const r = it.next();
        if (r.done) {
          done = true;
          break;
        }
        keys.push(r.value[0]);
        locations.push(r.value[1]);
      }
      if (keys.length === 0) break;
      this.deliverKeys(() => encodeFrame(FrameKind.Event, 0, encodeKeyChanges(keys, locations), Number.MAX_SAFE_INTEGER));
      sent += keys.length;
      if (this.socket.writableLength > SNAPSHOT_HIGH_WATER) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.socket.off('drain', done);
            this.socket.off('close', done);
            resolve();
          };
          this.socket.on('drain', done);
          this.socket.on('close', done);
        });
      }
    }
    if (!this.closing) this.reply(id, 'watch', { entries: sent });
  }

  /** A session that does not read what it is sent is closed before its queue grows without bound. */
  private checkQueued(): void {
    const queued = this.socket.writableLength;
    if (queued > this.server.maxQueuedBytes) {
      this.reject(new WireError('slow-reader', `${(queued / 2 ** 20).toFixed(1)} MiB queued for it, more than ${(this.server.maxQueuedBytes / 2 ** 20).toFixed(1)} MiB: it does not read its events`));
    }
  }

  checkIdle(now: number, idleTimeoutMs: number, helloTimeoutMs: number): void {
    if (this.closing) return;
    if (!this.ready && now - this.connectedAt > helloTimeoutMs) {
      this.reject(new WireError('idle', `no hello within ${helloTimeoutMs} ms of connecting`));
    } else if (idleTimeoutMs > 0 && now - this.lastSeen > idleTimeoutMs) {
      this.reject(new WireError('idle', this.ready ? `no frames for ${idleTimeoutMs} ms (heartbeat missing)` : `no hello within ${idleTimeoutMs} ms`));
    }
  }

  /** Server shutdown: tell the peer why, then close. */
  shutdown(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.closeReason = reason;
    this.finish(encodeFrame(FrameKind.Error, 0, { message: reason, fatal: true, code: 'shutdown' }));
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return; // discarding what a rejected peer still sends
    try {
      this.decoder.push(chunk);
    } catch (err) {
      this.reject(err);
    }
  }

  private onFrame(frame: Frame): void {
    if (this.closing) return;
    this.lastSeen = Date.now();
    if (frame.kind !== FrameKind.Request) {
      throw new WireError('bad-kind', `unexpected ${frameKindName(frame.kind)} frame from a client`, frame.id);
    }
    let req: Request;
    try {
      req = parseRequest(decodeJson(frame));
    } catch (err) {
      if (err instanceof WireError) throw new WireError(err.reason, err.message, frame.id);
      throw err;
    }
    if (!this.ready) {
      if (req.op !== 'hello') throw new WireError('no-hello', `request '${req.op}' before hello`, frame.id);
      this.hello(frame.id, req);
      return;
    }
    if (req.op === 'hello') throw new WireError('bad-message', 'duplicate hello', frame.id);
    if (req.op === 'watch') {
      this.watch(frame.id, req.maxEntries).catch((err: unknown) => this.reject(err));
      return;
    }
    let result: unknown;
    try {
      result = this.server.execute(this, req);
    } catch (err) {
      if (!(err instanceof DirectoryRequestError)) throw err;
      this.send(FrameKind.Error, frame.id, { message: err.message, fatal: false, code: 'refused' });
      return;
    }
    this.reply(frame.id, req.op, req.op === 'lookup' ? encodeLookupResult(result as ResultMap['lookup']) : result);
  }

  private hello(id: number, req: RequestOf<'hello'>): void {
    if (req.version !== PROTOCOL_VERSION) {
      throw new WireError('bad-version', `protocol version ${req.version} not supported (server speaks ${PROTOCOL_VERSION})`, id);
    }
    const auth = this.server.directoryFor(req.token);
    if (typeof auth === 'string') throw new WireError('auth', `authentication failed: ${auth} token`, id);
    if (auth !== this.server) {
      // A tenant's token: from now on this connection lives in that tenant's directory only.
      auth.adopt(this, this.server);
      this.server = auth;
    }
    this.ready = true;
    this.decoder.setMaxFrameBytes(this.server.maxFrameBytes);
    if (req.maxFrameBytes !== undefined) this.peerMaxFrameBytes = req.maxFrameBytes;
    this.server.admit(this);
    const result: ResultMap['hello'] = { version: PROTOCOL_VERSION, maxFrameBytes: this.server.maxFrameBytes, idleTimeoutMs: this.server.idleTimeoutMs };
    if (req.node !== undefined) {
      try {
        result.members = this.server.execute(this, { op: 'join', node: req.node });
      } catch (err) {
        if (!(err instanceof DirectoryRequestError)) throw err;
        this.send(FrameKind.Error, id, { message: err.message, fatal: false, code: 'refused' });
        return;
      }
    }
    this.send(FrameKind.Response, id, result);
  }

  private reply(id: number, op: string, result: unknown): void {
    let buf: Buffer;
    try {
      buf = encodeFrame(FrameKind.Response, id, result, this.peerMaxFrameBytes);
    } catch (err) {
      if (!(err instanceof WireError)) throw err;
      // Too big for the client to accept: refuse this request rather than break the connection.
      this.send(FrameKind.Error, id, { message: `${op} response too large: ${err.message}; split the batch`, fatal: false, code: 'oversized' });
      return;
    }
    this.write(buf);
  }

  private send(kind: FrameKind, id: number, body: unknown): void {
    this.write(encodeFrame(kind, id, body, Number.MAX_SAFE_INTEGER));
  }

  private write(buf: Buffer): void {
    // Backpressure: a client that does not read its responses stops being read from.
    if (!this.socket.write(buf) && !this.waitingDrain) {
      this.waitingDrain = true;
      this.socket.pause();
    }
    this.checkQueued();
  }

  /** Protocol violation (or an internal error): count it, log it, tell the peer, close. */
  private reject(err: unknown): void {
    if (this.closing) return;
    this.closing = true;
    const wire = err instanceof WireError ? err : null;
    const code = wire?.reason ?? 'internal';
    const message = wire ? wire.message : 'internal error';
    this.server.countRejected(code);
    if (wire) this.server.logLine('warn', `directory: closing connection from ${this.label}: ${message}`);
    else this.server.logLine('error', `directory: internal error on connection from ${this.label}: ${(err as Error)?.stack ?? String(err)}`);
    this.closeReason = `connection rejected: ${message}`;
    this.finish(encodeFrame(FrameKind.Error, wire?.requestId ?? 0, { message, fatal: true, code }, Number.MAX_SAFE_INTEGER));
  }

  private finish(last: Buffer): void {
    this.server.drop(this, this.closeReason ?? 'connection closed');
    if (this.waitingDrain) this.socket.resume(); // keep draining (and discarding) input
    this.socket.end(last);
    // A peer that never reads or never closes must not hold the socket: destroy after a grace period.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }
}
