/**
 * The soak's sidecar half: two `peercache node` processes over shm (A serves the directory, B joins
 * it), two ranks on each (benchmarks/lib/soak-rank.py: the Python adapter, set/exists/get, every hit's
 * bytes checked; one pair polls through lanes), and hostile local clients on B's socket the whole
 * time: one streaming malformed frames without reading its answers, hello-only connections,
 * connections that ask once and then sit idle (they fill B's --max-connections, so new ones evict
 * them), and garbage. What it reports: the ranks' counters, the attackers' counts, the nodes' RSS.
 */
import { ChildProc } from '../../src/bench/child-process.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const peercacheBin = join(root, 'dist', 'cli', 'peercache.js');
const rankScript = join(root, 'benchmarks', 'lib', 'soak-rank.py');

/** B's limits: small enough that the attackers fill it, so eviction and refusals happen all along. */
export const SIDECAR_SOAK_FLAGS = ['--max-connections', '24', '--hello-timeout-ms', '2000', '--idle-evict-ms', '8000'];

export interface RankCounters {
  rank: string;
  rounds: number;
  calls: number;
  set_ok: number;
  set_failed: number;
  exists_found: number;
  exists_short: number;
  own_hits: number;
  own_misses: number;
  peer_hits: number;
  peer_misses: number;
  wrong_pages: number;
  bad_answers: number;
  errors: number;
  reconnects: number;
  connect_failures: number;
}

export interface AttackCounters {
  nonReaderConnections: number;
  nonReaderBytes: number;
  nonReaderClosedByNode: number;
  helloOnlyOpened: number;
  helloOnlyClosedByNode: number;
  idleOpened: number;
  idleClosedByNode: number;
  refused: number;
  garbage: number;
}

function rssOf(pid: number | undefined): number {
  if (!pid) return 0;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Frame: u32 BE length | u8 version 1 | u8 kind | u32 BE id | payload. */
function frame(kind: number, id: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(10);
  h.writeUInt32BE(payload.length, 0);
  h[4] = 1;
  h[5] = kind;
  h.writeUInt32BE(id, 6);
  return Buffer.concat([h, payload]);
}
const json = (id: number, body: unknown) => frame(1, id, Buffer.from(JSON.stringify(body)));
const HELLO = json(1, { op: 'hello', protocol: 'peercache-sidecar/2', pid: process.pid });
const EXISTS = json(2, { op: 'exists', keys: ['soak-idle'] });

/** A rank's counter line (JSON with a `rank`), or null for any other line. */
function counters(line: string): RankCounters | null {
  try {
    const c = JSON.parse(line) as RankCounters;
    return typeof c === 'object' && c !== null && typeof c.rank === 'string' ? c : null;
  } catch {
    return null; // not a counter line
  }
}

export interface SidecarSoak {
  /** RSS of node A and node B (bytes). */
  rss(): { a: number; b: number };
  /** The latest counters of each rank. */
  ranks(): RankCounters[];
  attacks: AttackCounters;
  /** The ranks' first log lines. */
  rankLog(): string[];
  /** Node exits seen (a crash is any exit before stop()). */
  crashes(): string[];
  stop(): Promise<void>;
}

export async function startSidecarSoak(discoveryPort: number): Promise<SidecarSoak> {
  const dir = mkdtempSync(join(tmpdir(), 'pc-soak-sidecar-'));
  const crashes: string[] = [];
  let stopping = false;
  const node = (name: string, extra: string[]) => {
    const socket = join(dir, name, 'peercache.sock');
    const args = [peercacheBin, 'node', '--socket', socket, '--discovery-addr', `127.0.0.1:${discoveryPort}`, '--protocol', 'shm', '--global-segment', '64m', '--slot-bytes', '8k', '--busy-poll-us', '50', '--log-level', 'warning', ...extra];
    const child = new ChildProc({ label: `node ${name}`, command: process.execPath, args, lifetime: 'stdin' });
    void child.exited.then(() => {
      if (!stopping) crashes.push(child.exitDescription(12));
    });
    return { child, socket, ready: child.waitForLine(/ready: socket/, 60_000).then(() => undefined) };
  };
  const a = node('a', []);
  await a.ready;
  const b = node('b', SIDECAR_SOAK_FLAGS);
  await b.ready;

  const latest = new Map<string, RankCounters>();
  /** The ranks' first log lines (the adapter logs each kind of failure once per period). */
  const firstLines: string[] = [];
  const ranks: ChildProc<RankCounters>[] = [];
  const rank = (socket: string, name: string, peer: string, pollUs: number) => {
    const child = new ChildProc<RankCounters>({ label: `rank ${name}`, command: 'python3', args: [rankScript, socket, name, peer, String(pollUs), dir], lifetime: 'stdin', parseMessage: counters });
    child.onMessage((c) => {
      latest.set(c.rank, c);
      return true;
    });
    child.onLine((line, stream) => {
      if (stream === 'stderr' && firstLines.length < 12) firstLines.push(`${name}: ${line.slice(0, 300)}`);
    });
    void child.exited.then(() => {
      if (!stopping) crashes.push(`${child.exitDescription(0)}: ${child.stderr().slice(-2000)}`);
    });
    ranks.push(child);
  };
  rank(a.socket, 'a0', 'b0', 0);
  rank(b.socket, 'b0', 'a0', 0);
  rank(a.socket, 'a1', 'b1', 100);
  rank(b.socket, 'b1', 'a1', 100);

  const attacks: AttackCounters = { nonReaderConnections: 0, nonReaderBytes: 0, nonReaderClosedByNode: 0, helloOnlyOpened: 0, helloOnlyClosedByNode: 0, idleOpened: 0, idleClosedByNode: 0, refused: 0, garbage: 0 };
  const sockets = new Set<net.Socket>();
  const timers: NodeJS.Timeout[] = [];
  /** onClose: the node closed it (refused: as too many), not us. */
  const open = (onConnect: (s: net.Socket) => void, onClose: (refused: boolean) => void) => {
    if (stopping) return;
    const s = net.connect(b.socket);
    sockets.add(s);
    let mine = false;
    let refused = false;
    s.on('error', () => {});
    s.on('data', (d) => {
      if (d.includes('too many connections')) refused = true;
    });
    s.on('connect', () => onConnect(s));
    s.on('close', () => {
      sockets.delete(s);
      if (refused) attacks.refused++;
      if (!mine && !stopping) onClose(refused);
    });
    return {
      close: () => {
        mine = true;
        s.destroy();
      },
    };
  };

  // A client that streams malformed frames (an unknown binary op) and never reads: reconnects when closed.
  const bad = Buffer.concat(Array.from({ length: 4000 }, () => frame(1, 9, Buffer.from([0x90]))));
  const nonReader = () =>
    open(
      (s) => {
        attacks.nonReaderConnections++;
        s.write(HELLO); // its answer read, then nothing more
        s.once('data', () => {
          s.pause(); // the kernel buffer fills, then the node's queue
          pump();
        });
        const pump = () => {
          if (s.destroyed) return;
          attacks.nonReaderBytes += bad.length;
          if (s.write(bad)) setImmediate(pump);
          else s.once('drain', pump);
        };
      },
      (refused) => {
        if (!refused) attacks.nonReaderClosedByNode++;
        timers.push(setTimeout(nonReader, 500));
      },
    );
  nonReader();

  // Hello-only connections, a few per second, never closed by us.
  timers.push(
    setInterval(() => {
      attacks.helloOnlyOpened++;
      open(
        (s) => s.write(HELLO),
        (refused) => {
          if (!refused) attacks.helloOnlyClosedByNode++;
        },
      );
    }, 300),
  );

  // Connections that ask once and then sit idle: up to 20 at a time, topped up as the node closes them.
  let idleOpen = 0;
  timers.push(
    setInterval(() => {
      if (idleOpen >= 20) return;
      idleOpen++;
      attacks.idleOpened++;
      open(
        (s) => s.write(Buffer.concat([HELLO, EXISTS])),
        (refused) => {
          idleOpen--;
          if (!refused) attacks.idleClosedByNode++;
        },
      );
    }, 250),
  );

  // Garbage: random bytes, an oversized header, a frame of another version; then we close.
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  timers.push(
    setInterval(() => {
      attacks.garbage++;
      const kinds = [
        () => Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 200) }, () => Math.floor(rnd() * 256))),
        () => Buffer.from([0xff, 0xff, 0xff, 0xf0, 1, 1, 0, 0, 0, 1]),
        () => Buffer.concat([HELLO, frame(1, 5, Buffer.from([0x82, 0, 0]))]),
        () => frame(1, 3, Buffer.from('{"op":')),
      ];
      const c = open(
        (s) => {
          s.write(kinds[Math.floor(rnd() * kinds.length)]());
          timers.push(setTimeout(() => c?.close(), 200));
        },
        () => {},
      );
    }, 200),
  );

  return {
    rss: () => ({ a: rssOf(a.child.pid), b: rssOf(b.child.pid) }),
    ranks: () => [...latest.values()].sort((x, y) => x.rank.localeCompare(y.rank)),
    attacks,
    crashes: () => [...crashes],
    rankLog: () => [...firstLines],
    async stop() {
      stopping = true;
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      // Ranks first (each prints its final counters as it stops: read to the pipes' end), then the nodes; SIGKILL after 15 s.
      await Promise.all(ranks.map(async (r) => {
        await r.stop({ via: 'SIGTERM', graceMs: 15_000 });
        await r.drained();
      }));
      await Promise.all([b, a].map((n) => n.child.stop({ via: 'SIGTERM', graceMs: 15_000 })));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
