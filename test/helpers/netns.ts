/**
 * Real hosts for tests: network namespaces joined by one bridge, each with one address
 * (10.<n>.0.x/24, only inside namespaces this file creates), and the faults real networks have:
 * a silent partition (`nft` drop rules inside a namespace: packets vanish, no RST), a slow link
 * (`tc … tbf` on a host's interface), a link flap (`ip link set … down/up`).
 *
 * Names are `pcpart<pid>x<n><role>`: unique per test process. Every exit path removes them:
 * close() in a finally, an 'exit' hook, SIGINT/SIGTERM handlers; a run killed with SIGKILL leaves
 * them behind, and the next run removes those whose owning pid is gone (the name proves they are
 * ours: nothing else makes `pcpart<pid>x…`).
 *
 * Processes in the namespaces share the host's files and shared memory, so cross-host tests use
 * --protocol tcp; what is under test (deadlines, liveness, caches, rejoin) is the same for all.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { ChildProc } from '../../src/bench/child-process.js';
import type { Child } from './child.js';

const PREFIX = 'pcpart';
const TABLE = 'pcpart';

function ip(args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function nsExec(ns: string, cmd: string, args: string[], input?: string): void {
  execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], { stdio: ['pipe', 'ignore', 'pipe'], input });
}

/** Why namespaces cannot be made here (null: they can). Under CI=true, a reason throws: tests must run there. */
export function netnsUnavailable(): string | null {
  let reason: string | null = null;
  if (process.getuid?.() !== 0) reason = 'network namespaces need root';
  else {
    for (const bin of ['ip', 'nft', 'tc']) {
      if (spawnSync(bin, ['-V'], { stdio: 'ignore' }).error) reason = `${bin} is not installed (apt-get install iproute2 nftables)`;
    }
    if (!reason) {
      const probe = `${PREFIX}${process.pid}xprobe`;
      const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8' });
      if (r.status !== 0) reason = `cannot create a network namespace: ${(r.stderr || r.error?.message || '').trim()}`;
      else spawnSync('ip', ['netns', 'del', probe]);
    }
  }
  if (reason && process.env.CI === 'true') throw new Error(`network-namespace tests cannot run under CI=true: ${reason}`);
  return reason;
}

/** Removes namespaces of earlier runs whose process is gone (killed before it could clean up). */
export function removeStaleNamespaces(): void {
  const r = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' });
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = new RegExp(`^(${PREFIX}(\\d+)x\\w+)`).exec(line.trim());
    if (!m) continue;
    const pid = Number(m[2]);
    let alive = true;
    try {
      process.kill(pid, 0);
    } catch (err) {
      alive = (err as NodeJS.ErrnoException).code !== 'ESRCH';
    }
    if (!alive) spawnSync('ip', ['netns', 'del', m[1]]);
  }
}

/** A process in a namespace that answers JSON requests (one line each, matched by `id`). */
export interface NsChild extends Child {
  /** Sends `{id, ...request}` on stdin; resolves with the answer `{id, ...}` (rejects past `timeoutMs`). */
  request(request: Record<string, unknown>, timeoutMs?: number): Promise<Record<string, unknown>>;
  /** Resolves on the first output line matching `re`. */
  waitForLine(re: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** Signals the process itself (SIGSTOP / SIGCONT). */
  signal(sig: NodeJS.Signals): void;
}

export interface Host {
  readonly role: string;
  readonly ns: string;
  readonly ip: string;
  /** Starts `command args…` inside this host's namespace (its stdin tied to this process's life). */
  spawn(command: string, args: string[], env?: NodeJS.ProcessEnv, options?: { readsStdin?: boolean }): NsChild;
  /** Starts a TypeScript fixture (through tsx) inside this host's namespace. */
  spawnFixture(fixture: URL, args: string[], env?: NodeJS.ProcessEnv): NsChild;
  /** Silently drops every packet between this host and `peers` (both ways, inside this host). */
  cut(peers: readonly Host[]): void;
  /** Removes every drop rule of this host. */
  heal(): void;
  /** Shapes this host's outgoing traffic to `mbit` Mbit/s (tbf); null removes the shaping. */
  shape(mbit: number | null): void;
  /** Takes this host's link down or up. */
  link(up: boolean): void;
}

export interface Hosts {
  readonly hosts: Record<string, Host>;
  /** Kills what was started in the namespaces and removes them. Idempotent. */
  close(): Promise<void>;
}

const open = new Set<() => void>();
let hooked = false;

function hookExits(): void {
  if (hooked) return;
  hooked = true;
  const all = (): void => {
    for (const f of [...open]) f();
  };
  process.on('exit', all);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(sig, () => {
      all();
      process.exit(128 + (sig === 'SIGINT' ? 2 : sig === 'SIGTERM' ? 15 : 1));
    });
  }
}

let made = 0;

/** Makes one namespace per role, joined by a bridge in a hub namespace. */
export function makeHosts(roles: readonly string[]): Hosts {
  hookExits();
  removeStaleNamespaces();
  const n = made++;
  const base = `${PREFIX}${process.pid}x${n}`;
  const hub = `${base}hub`;
  const subnet = `10.${200 + ((process.pid + n) % 50)}.${n % 250}`;
  const names: string[] = [];
  const children = new Set<NsChild>();
  const procs = new Set<ChildProc<Record<string, unknown>>>();
  let closed = false;
  const removeAll = (): void => {
    if (closed) return;
    closed = true;
    for (const p of procs) p.kill('SIGKILL');
    for (const ns of names) spawnSync('ip', ['netns', 'del', ns]);
    open.delete(removeAll);
  };
  open.add(removeAll);
  const hosts: Record<string, Host> = {};
  try {
    ip(['netns', 'add', hub]);
    names.push(hub);
    ip(['-n', hub, 'link', 'add', 'br0', 'type', 'bridge']);
    ip(['-n', hub, 'link', 'set', 'br0', 'up']);
    roles.forEach((role, i) => {
      const ns = `${base}${role}`;
      ip(['netns', 'add', ns]);
      names.push(ns);
      const address = `${subnet}.${i + 1}`;
      ip(['-n', hub, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      ip(['-n', hub, 'link', 'set', `v${i}`, 'master', 'br0', 'up']);
      ip(['-n', ns, 'addr', 'add', `${address}/24`, 'dev', 'eth0']);
      ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
      nsExec(ns, 'nft', ['-f', '-'], `table inet ${TABLE} {\n chain in { type filter hook input priority 0; policy accept; }\n chain out { type filter hook output priority 0; policy accept; }\n}\n`);
      const spawnIn = (command: string, args: string[], env: NodeJS.ProcessEnv = {}, options: { readsStdin?: boolean } = {}): NsChild => {
        const child = new ChildProc<Record<string, unknown>>({
          label: `${role} (${ns})`,
          command: 'ip',
          args: ['netns', 'exec', ns, command, ...args],
          env: { ...process.env, ...env },
          // Our Node fixtures exit when their stdin closes; anything else (redis-server) is supervised.
          lifetime: command === process.execPath || options.readsStdin ? 'stdin' : 'supervised',
          parseMessage: (line) => {
            try {
              const v: unknown = JSON.parse(line);
              return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
            } catch {
              return null;
            }
          },
        });
        const ready = child.next(() => true, 60_000, 'ready line').catch((err: Error) => {
          throw new Error(`${role}: ${err.message}: ${child.stderr()}`);
        });
        ready.catch(() => {});
        procs.add(child);
        let nextId = 1;
        const c: NsChild = {
          proc: child.proc,
          ready,
          stderr: () => child.stderr(),
          waitForLine: (re, timeoutMs) => child.waitForLine(re, timeoutMs),
          signal: (sig) => void child.proc.kill(sig),
          kill: (signal: NodeJS.Signals = 'SIGTERM') => child.stop({ via: signal, graceMs: 2000 }),
          request(request, timeoutMs = 30_000) {
            const id = nextId++;
            child.proc.stdin!.write(`${JSON.stringify({ ...request, id })}\n`);
            return child.next((m) => m.id === id, timeoutMs, `answer to ${String(request.op)}`).catch((err: Error) => {
              throw new Error(`${role}: ${String(request.op)}: ${err.message}\n${child.stderr().slice(-3000)}`);
            });
          },
        };
        children.add(c);
        return c;
      };
      hosts[role] = {
        role,
        ns,
        ip: address,
        spawn: spawnIn,
        spawnFixture: (fixture, args, env) => spawnIn(process.execPath, ['--import', 'tsx', fixture.pathname, ...args], env),
        cut(peers) {
          const rules = peers.map((p) => `add rule inet ${TABLE} in ip saddr ${p.ip} drop\nadd rule inet ${TABLE} out ip daddr ${p.ip} drop\n`).join('');
          nsExec(ns, 'nft', ['-f', '-'], rules);
        },
        heal() {
          nsExec(ns, 'nft', ['flush', 'table', 'inet', TABLE]);
        },
        shape(mbit) {
          spawnSync('ip', ['netns', 'exec', ns, 'tc', 'qdisc', 'del', 'dev', 'eth0', 'root'], { stdio: 'ignore' });
          // burst: at least one MTU-sized packet per timer tick; latency bounds the queue (no unbounded buffering).
          if (mbit !== null) nsExec(ns, 'tc', ['qdisc', 'add', 'dev', 'eth0', 'root', 'tbf', 'rate', `${mbit}mbit`, 'burst', `${Math.max(16, Math.ceil(mbit * 2))}kb`, 'latency', '200ms']);
        },
        link(up) {
          ip(['-n', ns, 'link', 'set', 'eth0', up ? 'up' : 'down']);
        },
      };
    });
  } catch (err) {
    removeAll();
    throw err;
  }
  return {
    hosts,
    async close() {
      await Promise.all([...children].map((c) => c.kill('SIGKILL').catch(() => {})));
      removeAll();
    },
  };
}
