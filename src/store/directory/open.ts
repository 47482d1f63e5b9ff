/**
 * `openDirectory`: the embedded control plane. Every node is given the same discovery address;
 * the first one that finds nobody listening there serves discovery and the directory itself,
 * the others join it over TCP.
 *
 * Trade-off of the embedded mode: the directory lives in the serving node's process. When that
 * node closes (or dies), every other node loses its directory connection, and with it the
 * membership and all entries; their calls then fail with "directory connection lost" (there is
 * no failover or re-election in this version). For long runs where nodes come and go, run the
 * directory standalone (`peercache-bench serve`, i.e. `DirectoryServer.listen`) and let every
 * node join it.
 *
 * Unlike the original PeerCache, whose discovery client retried forever, opening never blocks forever: it makes a bounded number
 * of attempts and then fails naming the address.
 */
import { DirectoryServer } from './server.js';
import { RejoiningDirectory } from './rejoining.js';
import { DirectoryError, DirectoryClient } from './client.js';
import type { Directory, DirectoryEntry, DirectoryEvent, Location, NodeInfo, RemovalEntry } from '../types.js';
import type { Logger } from '../../log.js';
import type { DirectoryTls } from '../../tls.js';
import type { ReplicaOptions } from './replica.js';
import { InvalidArgumentError } from '../../errors.js';

export interface OpenDirectoryOptions {
  /** `host:port` (IPv6 as `[addr]:port`); port 1..65535: the others must be able to find it. */
  discoveryAddr: string;
  authToken?: string;
  /** TLS: serve with certFile/keyFile when this process serves, verify the server with caFile when it joins (tls.ts). */
  tls?: DirectoryTls;
  /** Serve a non-loopback address without a token (see DirectoryServerOptions.insecure). */
  insecure?: boolean;
  connectTimeoutMs?: number;
  requestTimeoutMs?: number;
  maxFrameBytes?: number;
  /** Client ping period (see DirectoryClientOptions.heartbeatMs). */
  heartbeatMs?: number;
  /** Server idle timeout, when this process serves (see DirectoryServerOptions.idleTimeoutMs). */
  idleTimeoutMs?: number;
  /** Server hello deadline, when this process serves (see DirectoryServerOptions.helloTimeoutMs). */
  helloTimeoutMs?: number;
  logger?: Logger;
  /** Connect / serve attempts before giving up (default 8). */
  maxAttempts?: number;
  /**
   * When this process serves, talk to the server in-process rather than over a loopback socket
   * (default true). Semantics are the same.
   */
  localShortCircuit?: boolean;
  /**
   * A node that joined someone else's directory reconnects when it is lost, joins again as the
   * same node and republishes what it holds (default true; see rejoining.ts).
   */
  rejoin?: boolean;
  /** A node that joins someone else's directory keeps a key replica (replica.ts; off by default). */
  replica?: ReplicaOptions;
}

export interface OpenedDirectory {
  directory: Directory;
  /** The server this process hosts, null when it joined someone else's. */
  server: DirectoryServer | null;
}

/** Parses `host:port` / `[v6]:port`; throws a RangeError explaining the expected form. */
export function parseDiscoveryAddr(addr: string): { host: string; port: number } {
  const m = /^\[([^\]\s]+)\]:(\d{1,5})$/.exec(addr) ?? /^([^\s:[\]]+):(\d{1,5})$/.exec(addr);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !(port >= 1 && port <= 65535)) {
    throw new InvalidArgumentError(
      `invalid discoveryAddr '${addr}': expected host:port with port 1..65535 (e.g. 127.0.0.1:7600, [::1]:7600)`,
    );
  }
  return { host: m[1], port };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function openDirectory(options: OpenDirectoryOptions): Promise<OpenedDirectory> {
  parseDiscoveryAddr(options.discoveryAddr);
  if (options.rejoin === false) return openOnce(options);
  let opened = false;
  const directory = await RejoiningDirectory.open({
    // The first open keeps its bounded attempts; a reconnect makes one attempt per backoff step.
    reopen: (onLost) => openOnce(opened ? { ...options, maxAttempts: 1 } : options, onLost),
    logger: options.logger,
  });
  opened = true;
  return { directory, server: directory.hostedServer };
}

async function openOnce(options: OpenDirectoryOptions, onConnectionLost?: (reason: string) => void): Promise<OpenedDirectory> {
  const { host, port } = parseDiscoveryAddr(options.discoveryAddr);
  const where = `${host}:${port}`;
  const maxAttempts = Math.max(1, options.maxAttempts ?? 8);
  const clientOptions = {
    host,
    port,
    authToken: options.authToken,
    tls: options.tls,
    connectTimeoutMs: options.connectTimeoutMs,
    requestTimeoutMs: options.requestTimeoutMs,
    maxFrameBytes: options.maxFrameBytes,
    heartbeatMs: options.heartbeatMs,
    logger: options.logger,
    onConnectionLost,
    replica: options.replica,
  };
  let lastError: unknown = null;
  for (let attempt = 0; attempt < maxAttempts; attempt++) {
    if (attempt > 0) await sleep(Math.min(500, 25 * 2 ** (attempt - 1)) * (0.5 + Math.random()));
    try {
      return { directory: await DirectoryClient.connect(clientOptions), server: null };
    } catch (err) {
      lastError = err;
      // Only "nobody listens" means we may serve; auth, timeout or protocol errors are final.
      if ((err as DirectoryError).errno !== 'ECONNREFUSED') throw err;
    }
    let server: DirectoryServer;
    try {
      server = await DirectoryServer.listen({
        host,
        port,
        authToken: options.authToken,
        tls: options.tls,
        insecure: options.insecure,
        maxFrameBytes: options.maxFrameBytes,
        idleTimeoutMs: options.idleTimeoutMs,
        helloTimeoutMs: options.helloTimeoutMs,
        logger: options.logger,
      });
    } catch (err) {
      lastError = err;
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'EADDRINUSE') continue; // another node won the race: join it
      if (code === 'EADDRNOTAVAIL') {
        throw new DirectoryError(
          `nobody serves the directory at ${where}, and this host cannot serve it (${where} is not a local address)`,
          'ERR_CONNECT',
          { cause: err, errno: code },
        );
      }
      throw err;
    }
    options.logger?.info(`directory: serving discovery + directory at ${where} in this process`);
    try {
      const inner =
        options.localShortCircuit === false ? await DirectoryClient.connect(clientOptions) : server.localDirectory();
      return { directory: new ServingDirectory(inner, server), server };
    } catch (err) {
      await server.close();
      throw err;
    }
  }
  const last = lastError instanceof Error ? lastError.message : String(lastError);
  throw new DirectoryError(
    `could not reach or serve the directory at ${where} after ${maxAttempts} attempts (last error: ${last})`,
    'ERR_CONNECT',
    { cause: lastError, errno: (lastError as NodeJS.ErrnoException | null)?.code },
  );
}

/** The directory of the serving node: closing it also closes the server (see the file comment). */
class ServingDirectory implements Directory {
  constructor(
    private readonly inner: Directory,
    private readonly server: DirectoryServer,
  ) {}

  join(node: NodeInfo): Promise<NodeInfo[]> {
    return this.inner.join(node);
  }
  lookup(keys: readonly string[]): Promise<(Location | null)[]> {
    return this.inner.lookup(keys);
  }
  lookupLocal(keys: readonly string[]): (Location | null)[] | null {
    return this.inner.lookupLocal?.(keys) ?? null;
  }
  publish(entries: readonly DirectoryEntry[]): Promise<boolean[]> {
    return this.inner.publish(entries);
  }
  remove(entries: readonly RemovalEntry[]): Promise<void> {
    return this.inner.remove(entries);
  }
  node(nodeId: string): Promise<NodeInfo | null> {
    return this.inner.node(nodeId);
  }
  members(): Promise<NodeInfo[]> {
    return this.inner.members();
  }
  subscribe(listener: (event: DirectoryEvent) => void): () => void {
    return this.inner.subscribe(listener);
  }
  async close(): Promise<void> {
    try {
      await this.inner.close();
    } finally {
      await this.server.close();
    }
  }
}
