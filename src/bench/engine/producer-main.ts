/**
 * The producer (prefill) node, in its own process so that `shm` measures a real cross-process
 * one-sided READ. It serves the embedded directory at the discovery address, publishes the
 * working sets, prints one JSON line when ready (a ProducerMessage), and serves until its stdin closes (also when
 * the parent dies) or it gets SIGTERM.
 */
import { HostKVPool } from '../../store/host-pool.js';
import { PeerCacheStore } from '../../store/peer-cache-store.js';
import { publishedPoolBytes } from '../../store/published-pool.js';
import { createLogger } from '../../log.js';
import { fillPage, pageSeed } from './pattern.js';
import { encodeProducerMessage, type ProducerConfig } from './producer.js';
import { PeercacheError } from '../../errors.js';

const CHUNK = 256;

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2] ?? '{}') as ProducerConfig;
  const logger = createLogger({ level: cfg.logLevel, name: 'peercache-producer' });
  const total = cfg.sets.reduce((s, x) => s + x.count, 0);
  const chunk = Math.max(1, Math.min(CHUNK, total));
  const host = new HostKVPool({ layout: cfg.layout, pageBytes: cfg.pageBytes, pages: chunk, tokensPerPage: cfg.tokensPerPage, shared: false });
  const store = await PeerCacheStore.open({
    discoveryAddr: cfg.discoveryAddr,
    directoryUrl: cfg.directoryUrl,
    protocol: cfg.protocol,
    devices: cfg.devices,
    ibPort: cfg.ibPort,
    gidIndex: cfg.gidIndex,
    localHost: cfg.localHost,
    authToken: cfg.authToken,
    hostPool: host,
    globalSegmentBytes: publishedPoolBytes(total * host.components + 64, cfg.pageBytes),
    maxBytes: Number.MAX_SAFE_INTEGER,
    nodeId: cfg.nodeId,
    // The members are this run's own workers: 64 of them on 2 cores can be starved for longer
    // than the default 5 s hello / 20 s idle deadlines while they start, and a row must not lose one.
    directoryServer: { helloTimeoutMs: 120_000, idleTimeoutMs: 120_000 },
    logger,
  });
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    await store.close().catch(() => {});
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  process.stdin.on('end', () => void stop(0));
  process.stdin.resume();
  let published = 0;
  const stale = new Set(cfg.stalePages ?? []);
  for (const set of cfg.sets) {
    for (let base = 0; base < set.count; base += chunk) {
      const n = Math.min(chunk, set.count - base);
      const keys: string[] = [];
      for (let i = 0; i < n; i++) {
        keys.push(`${set.prefix}/${base + i}`);
        const generation = (cfg.generation ?? 1) - (stale.has(base + i) ? 1 : 0);
        if (cfg.fill) for (let c = 0; c < host.components; c++) fillPage(host.pageView(i, c), pageSeed(base + i, c, generation));
      }
      const ok = await store.batchSetV1(keys, host.tokenIndices(Array.from({ length: n }, (_, i) => i)));
      const bad = ok.indexOf(false);
      if (bad >= 0) throw new PeercacheError('ERR_DIRECTORY', `the producer could not publish ${keys[bad]} (published pool too small?)`);
      published += n;
    }
  }
  let raw: { address: string; descriptor: string; bytes: number } | null = null;
  if ((cfg.rawBytes ?? 0) > 0) {
    // micro's transport path reads this region directly: no store, no directory.
    const region = store.transport.allocate(cfg.rawBytes!);
    if (cfg.fill) fillPage(region.bytes.subarray(0, region.length - (region.length % 4)), pageSeed(0, 0));
    raw = {
      address: Buffer.from(store.transport.address()).toString('base64'),
      descriptor: Buffer.from(region.descriptor()).toString('base64'),
      bytes: region.length,
    };
  }
  process.stdout.write(encodeProducerMessage({ t: 'ready', nodeId: store.nodeId, published, transports: store.transport.transports, pid: process.pid, raw }));
}

main().catch((err: unknown) => {
  process.stderr.write(`producer failed: ${(err as Error).message}\n`);
  process.stdout.write(encodeProducerMessage({ t: 'error', message: (err as Error).message }), () => process.exit(1));
});
