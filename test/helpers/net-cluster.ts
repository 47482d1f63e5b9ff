/**
 * Three hosts (directory, publisher, reader) in network namespaces, with store nodes in them
 * (test/fixtures/netns-store.ts): the directory host serves the embedded directory (a store
 * node that publishes nothing) or runs redis-server; the publisher publishes `pages` pages
 * `p/0…`; the reader reads them. All over --protocol tcp, with short deadlines.
 */
import { makeHosts, type Host, type Hosts, type NsChild } from './netns.js';

export const storeFixture = new URL('../fixtures/netns-store.ts', import.meta.url);

export type DirectoryKind = 'embedded' | 'redis';
export type DataPlane = 'tcp' | 'ucx-tcp';

export interface ClusterOptions {
  directory: DirectoryKind;
  /** Data-plane and directory deadline of every node (ms). */
  timeoutMs: number;
  pages: number;
  pageBytes: number;
  /** Liveness bound: the embedded server's idle timeout, or Redis's ttl_ms (ms). */
  livenessMs: number;
  /** Extra roles (namespaces) beyond dir, pub, reader. */
  extraRoles?: string[];
  /** Reader's host pool pages (default pages). */
  readerPages?: number;
  /** 'ucx-tcp': protocol rdma over UCX's own tcp transport (PEERCACHE_TEST_UCX_TLS=tcp, test only). */
  dataPlane?: DataPlane;
}

export interface Cluster {
  net: Hosts;
  dir: Host;
  pub: Host;
  reader: Host;
  /** The directory address nodes are given ('ip:port' or a redis:// URL). */
  directory: string;
  publisher: NsChild;
  readerNode: NsChild;
  /** Starts a store node on `host` (joins the directory). */
  node(host: Host, nodeId: string, extra?: Record<string, unknown>): Promise<NsChild>;
  close(): Promise<void>;
}

export async function startCluster(o: ClusterOptions): Promise<Cluster> {
  const net = makeHosts(['dir', 'pub', 'reader', ...(o.extraRoles ?? [])]);
  try {
    const { dir, pub, reader } = net.hosts;
    let directory: string;
    if (o.directory === 'redis') {
      const redis = dir.spawn('redis-server', ['--bind', dir.ip, '--port', '6379', '--save', '', '--appendonly', 'no', '--protected-mode', 'no']);
      await redis.waitForLine(/Ready to accept connections/, 10_000);
      const poll = Math.max(50, Math.floor(o.livenessMs / 4));
      directory = `redis://${dir.ip}:6379/0?ttl_ms=${o.livenessMs}&poll_ms=${poll}`;
    } else {
      directory = `${dir.ip}:7600`;
    }
    const node = async (host: Host, nodeId: string, extra: Record<string, unknown> = {}): Promise<NsChild> => {
      const cfg = {
        directory,
        host: host.ip,
        nodeId,
        pages: o.pages,
        pageBytes: o.pageBytes,
        timeoutMs: o.timeoutMs,
        directoryTimeoutMs: o.timeoutMs,
        directoryServer: { idleTimeoutMs: o.livenessMs },
        ...(o.dataPlane === 'ucx-tcp' ? { protocol: 'rdma' } : {}),
        ...extra,
      };
      const child = host.spawnFixture(storeFixture, [JSON.stringify(cfg)], o.dataPlane === 'ucx-tcp' ? { PEERCACHE_TEST_UCX_TLS: 'tcp' } : {});
      await child.ready;
      return child;
    };
    if (o.directory === 'embedded') await node(dir, 'dirhost', { pages: 1 });
    const publisher = await node(pub, 'pub', { segmentPages: o.pages + 64 });
    const readerNode = await node(reader, 'reader', { pages: o.readerPages ?? o.pages, segmentPages: 64 });
    const published = await publisher.request({ op: 'publish', prefix: 'p', from: 0, count: o.pages });
    if (published.hits !== o.pages) throw new Error(`the publisher published ${String(published.hits)} of ${o.pages} pages`);
    return { net, dir, pub, reader, directory, publisher, readerNode, node, close: () => net.close() };
  } catch (err) {
    await net.close();
    throw err;
  }
}

/** Repeats `probe` until it returns true or `boundMs` passes; the ms it took, or -1. */
export async function within(boundMs: number, probe: () => Promise<boolean>, everyMs = 100): Promise<number> {
  const t0 = Date.now();
  while (Date.now() - t0 < boundMs) {
    if (await probe()) return Date.now() - t0;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  return -1;
}

/**
 * Runs one scenario per case at the same time (each in its own namespaces): the waits are
 * deadlines and liveness bounds, not CPU, so cases overlap instead of adding up. Fails naming
 * every case that failed.
 */
export async function concurrently<T>(cases: readonly T[], name: (c: T) => string, fn: (c: T, log: (line: string) => void) => Promise<void>): Promise<void> {
  const results = await Promise.allSettled(cases.map((c) => fn(c, (line) => console.log(`    [${name(c)}] ${line}`))));
  const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [`${name(cases[i])}: ${(r.reason as Error)?.message ?? String(r.reason)}`] : []));
  if (failed.length) throw new Error(failed.join('\n---\n'));
}

/**
 * The cases every partition scenario runs: the tcp data plane with both directories, and UCX's
 * own tcp transport under the rdma code path (PEERCACHE_TEST_UCX_TLS=tcp, test only: no RDMA NIC
 * here) with the embedded one.
 */
export const PARTITION_CASES: readonly (readonly [DirectoryKind, DataPlane])[] = [['embedded', 'tcp'], ['redis', 'tcp'], ['embedded', 'ucx-tcp']];

/**
 * Runs `scenario` on a fresh cluster per case, all cases at once (see `concurrently`): the reader
 * has read every page once before the scenario starts, and the cluster is closed on every exit.
 */
export async function inEveryCase(
  options: Omit<ClusterOptions, 'directory' | 'dataPlane'>,
  scenario: (c: Cluster, kind: DirectoryKind, log: (line: string) => void) => Promise<void>,
): Promise<void> {
  await concurrently(PARTITION_CASES, ([k, p]) => `${k}/${p}`, async ([kind, plane], log) => {
    const c = await startCluster({ ...options, directory: kind, dataPlane: plane });
    try {
      const warm = await c.readerNode.request({ op: 'get', prefix: 'p', from: 0, count: options.pages });
      if (warm.hits !== options.pages) throw new Error(`the reader read ${String(warm.hits)} of ${options.pages} pages before the scenario`);
      if (warm.wrong !== 0) throw new Error(`${String(warm.wrong)} wrong pages read before the scenario`);
      await scenario(c, kind, log);
    } finally {
      await c.close();
    }
  });
}
