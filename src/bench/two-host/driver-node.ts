/**
 * A driver's own node: it joins the serve node's directory (never serves one: a driver started
 * before serve waits for it instead of becoming the directory itself), checks that both sides
 * agree on the parameters, waits until the working set is published, and then watches the serve
 * node so every row can say whether serve was alive for its whole window.
 */
import { HostKVPool } from '../../store/host-pool.js';
import { parseDiscoveryAddr, DirectoryError, DirectoryClient } from '../../store/directory/index.js';
import { PeerCacheStore } from '../../store/peer-cache-store.js';
import type { NodeInfo } from '../../store/types.js';
import type { Logger } from '../../log.js';
import type { StoreConfig } from '../engine/connection.js';
import { agreementAttributes, ATTR, compareAgreement, TwoHostMismatchError, isServeNode, type Agreement } from './params.js';
import { PeercacheError } from '../../errors.js';

/** Everything a driver node needs; JSON-serialisable (children get it on their command line). */
export interface DriverNodeConfig {
  store: StoreConfig;
  agreement: Agreement;
  tokensPerPage: number;
  nodeId: string;
  connectTimeoutMs: number;
}

/** serve is not there (yet), or went away: the run cannot measure. */
export class ServeUnavailableError extends PeercacheError {
  override readonly name = 'ServeUnavailableError';
  constructor(message: string, options?: ErrorOptions) {
    super('ERR_SERVE_UNAVAILABLE', message, options);
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Connects to an existing directory, retrying while nobody listens, until the deadline. */
async function connectDirectory(cfg: DriverNodeConfig, deadline: number, onLost: (reason: string) => void): Promise<DirectoryClient> {
  const { host, port } = parseDiscoveryAddr(cfg.store.discoveryAddr);
  let last = '';
  for (let attempt = 0; ; attempt++) {
    const left = deadline - Date.now();
    if (left <= 0) break;
    try {
      return await DirectoryClient.connect({
        host,
        port,
        authToken: cfg.store.authToken,
        connectTimeoutMs: Math.min(5000, left),
        // Quick detection of a serve host that vanished without closing its socket.
        heartbeatMs: 1000,
        onConnectionLost: onLost,
      });
    } catch (err) {
      const e = err as DirectoryError;
      last = e.message;
      // Wrong token or a protocol mismatch will not get better by waiting.
      if (e.code === 'ERR_AUTH' || e.code === 'ERR_DIRECTORY_PROTOCOL') throw new ServeUnavailableError(`${e.message} (check --auth-token on both sides)`);
      await sleep(Math.min(500, 50 * 2 ** Math.min(attempt, 4)));
    }
  }
  throw new ServeUnavailableError(
    `no directory at ${cfg.store.discoveryAddr} within ${cfg.connectTimeoutMs / 1000} s (last error: ${last || 'none'}): ` +
      `is 'peercache-bench serve --discovery-addr ${cfg.store.discoveryAddr} ...' running there, and is the port open?`,
  );
}

export class DriverNode {
  private constructor(
    readonly store: PeerCacheStore,
    readonly serve: NodeInfo,
    private readonly directory: DirectoryClient,
  ) {}

  /** Joins, checks the agreement (TwoHostMismatchError), waits for the working set; all within connectTimeoutMs. */
  static async open(cfg: DriverNodeConfig, logger: Logger, attributes: Record<string, string | number | boolean> = {}): Promise<DriverNode> {
    const deadline = Date.now() + cfg.connectTimeoutMs;
    let joined = false;
    // A refused hello also ends the connection; only a loss after joining is news.
    const directory = await connectDirectory(cfg, deadline, (reason) => {
      if (joined) logger.warn(`the directory at ${cfg.store.discoveryAddr} went away: ${reason}`);
    });
    const a = cfg.agreement;
    let store: PeerCacheStore;
    try {
      store = await PeerCacheStore.open({
        discoveryAddr: cfg.store.discoveryAddr,
        directory,
        protocol: cfg.store.protocol,
        devices: cfg.store.devices,
        ibPort: cfg.store.ibPort,
        gidIndex: cfg.store.gidIndex,
        localHost: cfg.store.localHost,
        // One page: enough to probe the working set with this layout's object keys.
        hostPool: new HostKVPool({ layout: a.layout, pageBytes: a.pageBytes, pages: 1, tokensPerPage: cfg.tokensPerPage, shared: false }),
        globalSegmentBytes: 0,
        nodeId: cfg.nodeId,
        attributes: { ...agreementAttributes('drive', a), [ATTR.tokensPerPage]: cfg.tokensPerPage, ...attributes },
        timeoutMs: cfg.store.timeoutMs,
        logger,
      });
    } catch (err) {
      await directory.close().catch(() => {});
      throw err;
    }
    try {
      const serve = await waitForServe(store, deadline, cfg);
      const mismatches = compareAgreement(serve, a);
      if (mismatches.length) throw new TwoHostMismatchError(serve.nodeId, mismatches);
      await waitForWorkingSet(store, serve, deadline, cfg);
      joined = true;
      return new DriverNode(store, serve, directory);
    } catch (err) {
      await store.close().catch(() => {});
      throw err;
    }
  }

  /** The key prefix serve published its working set under. */
  get keyPrefix(): string {
    return String(this.serve.attributes[ATTR.keyPrefix]);
  }

  /** null while serve is alive; else why it is not. */
  async serveGone(): Promise<string | null> {
    if (!this.directory.isOpen) return `the connection to serve's directory was lost (${this.directory.lostReason ?? 'closed'})`;
    try {
      const now = await this.store.members();
      const same = now.find((n) => n.nodeId === this.serve.nodeId);
      if (!same) return `serve node '${this.serve.nodeId}' left the cluster`;
      if (same.transportAddress !== this.serve.transportAddress) return `serve node '${this.serve.nodeId}' was restarted (a new process)`;
      return null;
    } catch (err) {
      return `serve's directory does not answer (${(err as Error).message})`;
    }
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

async function waitForServe(store: PeerCacheStore, deadline: number, cfg: DriverNodeConfig): Promise<NodeInfo> {
  for (;;) {
    const serves = (await store.members()).filter(isServeNode);
    if (serves.length > 1) {
      throw new ServeUnavailableError(
        `${serves.length} serve nodes share ${cfg.store.discoveryAddr} (${serves.map((s) => s.nodeId).join(', ')}): run one serve per discovery address`,
      );
    }
    if (serves.length === 1) return serves[0];
    if (Date.now() > deadline) {
      throw new ServeUnavailableError(`the directory at ${cfg.store.discoveryAddr} has no serve node (no member with ${ATTR.role}=serve) after ${cfg.connectTimeoutMs / 1000} s`);
    }
    await sleep(200);
  }
}

/** serve joins before it publishes: probe the first, middle and last page until all three exist. */
async function waitForWorkingSet(store: PeerCacheStore, serve: NodeInfo, deadline: number, cfg: DriverNodeConfig): Promise<void> {
  const prefix = String(serve.attributes[ATTR.keyPrefix]);
  const ws = cfg.agreement.workingSet;
  const probes = [...new Set([0, Math.floor(ws / 2), ws - 1])].map((i) => `${prefix}/${i}`);
  for (;;) {
    let found = 0;
    for (const k of probes) found += await store.batchExists([k]);
    if (found === probes.length) return;
    if (Date.now() > deadline) {
      throw new ServeUnavailableError(
        `serve node '${serve.nodeId}' joined but its working set is not published after ${cfg.connectTimeoutMs / 1000} s (${found} of ${probes.length} probe pages found): is it still filling, or did it fail? See its output`,
      );
    }
    await sleep(200);
  }
}
