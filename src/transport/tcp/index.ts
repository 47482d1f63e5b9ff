/**
 * The pure-TypeScript TCP fallback (`--protocol tcp`): the same one-sided READ/WRITE contract as
 * ucx.ts, served by a small TCP server in each node. Smoke tests only (no RDMA, no zero copy), but
 * not careless: access tokens checked, every range checked on both sides, every wait bounded.
 *
 * Files: wire.ts (wire format, header reader, buffer pool), regions.ts (published and local
 * memory), server.ts (the data-plane server) and limits.ts (its limits), endpoint.ts (the client
 * side), and this node.
 */
import { createLogger } from '../../log.js';
import { randomBytes } from 'node:crypto';
import type tls from 'node:tls';
import { clientOptions as clientTlsOptions, serverContext } from '../../tls.js';
import {
  DEFAULT_BATCH_TIMEOUT_MS,
  TransportError,
  type AllocateOptions,
  type LocalRegion,
  type PublishedRegion,
  type TransportNode,
  type TransportOptions,
  type RegisterOptions,
  type WindowedMapping,
} from '../types.js';
import { TcpEndpoint } from './endpoint.js';
import { RegionTable, TcpLocal } from './regions.js';
import { serverLimits } from './limits.js';
import { TcpServer, type TcpServerStats } from './server.js';
import { BufferPool, NODE_ID_BYTES, decodeTcpAddress, encodeTcpAddress } from './wire.js';

export { TCP_WIRE, decodeTcpAddress, decodeTcpDescriptor, encodeTcpAddress, encodeTcpDescriptor, type TcpAddress, type TcpDescriptor } from './wire.js';
export { TcpEndpoint } from './endpoint.js';
export { ANSWER_OVERHEAD_BYTES, TCP_SERVER_LIMITS } from './limits.js';
export type { TcpServerStats } from './server.js';

export class TcpTransport implements TransportNode {
  readonly protocol = 'tcp' as const;
  readonly transports = 'tcp (smoke, not publishable)';
  readonly smokeOnly = true;
  /** 16 hex digits, random per node: descriptors and addresses name it, HELLO confirms it. */
  readonly nodeId: string;

  private readonly endpoints = new Set<TcpEndpoint>();
  private closed = false;
  private readonly addressBlob: Uint8Array;

  private constructor(
    private readonly server: TcpServer,
    private readonly regions: RegionTable,
    private readonly pool: BufferPool,
    readonly host: string,
    private readonly timeoutMs: number,
    /** With tcpTls: the TLS options for connecting to a peer at `host`. */
    private readonly tlsClient: ((host: string) => tls.ConnectionOptions) | null,
  ) {
    this.nodeId = regions.nodeId;
    this.addressBlob = encodeTcpAddress({ host, port: server.port, nodeId: this.nodeId });
  }

  get port(): number {
    return this.server.port;
  }

  /** Starts the node's server on `host` (default 127.0.0.1), an ephemeral port. */
  static async open(options: TransportOptions): Promise<TcpTransport> {
    if (options.protocol !== 'tcp') throw new TransportError('ERR_INVALID_ARG', `TcpTransport supports tcp, not ${options.protocol}`);
    const timeoutMs = options.timeoutMs ?? DEFAULT_BATCH_TIMEOUT_MS;
    if (!(timeoutMs > 0)) throw new TransportError('ERR_INVALID_ARG', 'timeoutMs must be > 0: every wait has a deadline');
    const host = options.host ?? '127.0.0.1';
    const limits = serverLimits(options.tcpLimits);
    const regions = new RegionTable(randomBytes(NODE_ID_BYTES).toString('hex'));
    // Frame buffers shared by this node's server and endpoints.
    const pool = new BufferPool(128 << 20);
    const logger = options.logger ?? createLogger();
    let tlsServer: tls.SecureContext | null = null;
    let tlsClient: ((host: string) => tls.ConnectionOptions) | null = null;
    if (options.tcpTls) {
      const files = options.tcpTls;
      try {
        tlsServer = serverContext(files, 'tcp data plane');
        clientTlsOptions(files, host, 'tcp data plane'); // read the CA now: a bad file fails open(), not a READ
      } catch (err) {
        throw new TransportError('ERR_INVALID_ARG', (err as Error).message);
      }
      tlsClient = (peerHost) => clientTlsOptions(files, peerHost, 'tcp data plane');
    }
    const server = await TcpServer.listen(host, regions, pool, limits, (line) => logger.warn(line), tlsServer);
    return new TcpTransport(server, regions, pool, host, timeoutMs, tlsClient);
  }

  /** What the node's server holds now (connections, queued answer bytes, refusals). */
  serverStats(): TcpServerStats {
    return this.server.stats();
  }

  private check(): void {
    if (this.closed) throw new TransportError('ERR_CLOSED', 'TcpTransport is closed');
  }

  address(): Uint8Array {
    this.check();
    return this.addressBlob.slice();
  }

  async connect(peerAddress: Uint8Array): Promise<TcpEndpoint> {
    this.check();
    const peer = decodeTcpAddress(peerAddress);
    const ep = await TcpEndpoint.open(this.pool, peer, this.timeoutMs, (closed) => this.endpoints.delete(closed), this.tlsClient?.(peer.host) ?? null);
    if (this.closed) {
      ep.close();
      throw new TransportError('ERR_CLOSED', 'TcpTransport is closed');
    }
    this.endpoints.add(ep);
    return ep;
  }

  /**
   * Publishes a region. Peers may only READ it unless `remoteWritable` is set: the store never
   * writes remotely, so a WRITE frame into a published region is refused (ERR_READ_ONLY).
   */
  allocate(bytes: number, options?: { remoteWritable?: boolean }): PublishedRegion {
    this.check();
    if (typeof bytes !== 'number' || !(bytes >= 1) || !Number.isInteger(bytes)) {
      throw new TransportError('ERR_INVALID_ARG', 'allocate(bytes): bytes must be a positive integer');
    }
    const remoteWritable = options?.remoteWritable ?? false;
    if (typeof remoteWritable !== 'boolean') throw new TransportError('ERR_INVALID_ARG', 'allocate(bytes, options): remoteWritable must be a boolean');
    return this.regions.allocate(bytes, remoteWritable);
  }

  async allocateAsync(bytes: number, options: AllocateOptions = {}): Promise<PublishedRegion> {
    if (options.signal?.aborted) throw new TransportError('ERR_ABORTED', 'allocation aborted before it started');
    return this.allocate(bytes, options);
  }

  register(view: Uint8Array | WindowedMapping, options: RegisterOptions = {}): LocalRegion {
    this.check();
    if (!(view instanceof Uint8Array) && typeof (view as WindowedMapping | undefined)?.window === 'function') {
      throw new TransportError('ERR_INVALID_ARG', `register: a ${(view as WindowedMapping).length}-byte mapping is longer than one buffer can be (4 GiB); the tcp transport cannot register it (use shm or rdma)`);
    }
    if (!(view instanceof Uint8Array)) {
      throw new TransportError('ERR_INVALID_ARG', 'register(view): view must be a Uint8Array (over an ArrayBuffer or SharedArrayBuffer)');
    }
    if (view.byteLength === 0) throw new TransportError('ERR_INVALID_ARG', 'register(view): cannot register an empty view');
    return new TcpLocal(view, options.mayShrink === true);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ep of [...this.endpoints]) ep.close();
    const stopped = this.server.close();
    this.regions.freeAll();
    await stopped;
  }
}
