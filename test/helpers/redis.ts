/**
 * A real `redis-server` for tests: on a free loopback port, no persistence (`--save ''
 * --appendonly no`), its own temp dir; stop() in a finally; restart() on the same port (what a
 * Redis restart looks like to clients: connection reset, every key gone).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export interface RedisServer {
  readonly port: number;
  /** redis://127.0.0.1:<port>/0 */
  readonly url: string;
  readonly running: boolean;
  /** A directory URL with query options (prefix, ttl_ms, poll_ms, …). */
  urlWith(options: Record<string, string | number>): string;
  stop(): Promise<void>;
  /** SIGKILL (a crash), then waits for the exit. */
  kill(): Promise<void>;
  start(): Promise<void>;
  restart(): Promise<void>;
}

const BIN = process.env.REDIS_SERVER ?? 'redis-server';
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** One PING over a raw socket: true on +PONG (a readiness probe, not a client). */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(500, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}

export async function startRedis(options: { port?: number; args?: string[] } = {}): Promise<RedisServer> {
  const port = options.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'peercache-redis-'));
  let proc: ChildProcess | null = null;
  let log = '';

  async function start(): Promise<void> {
    if (proc) return;
    log = '';
    mkdirSync(dir, { recursive: true });
    const p = spawn(
      BIN,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning', ...(options.args ?? [])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    proc = p;
    live.add(p);
    p.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    p.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    const exited = new Promise<string>((resolve) => {
      p.once('error', (err) => resolve(`cannot run ${BIN}: ${err.message} (install the redis-server package, or set REDIS_SERVER)`));
      p.once('exit', (code, signal) => resolve(`redis-server exited (${code ?? signal}): ${log.trim()}`));
    });
    p.once('exit', () => {
      live.delete(p);
      if (proc === p) proc = null;
    });
    const deadline = Date.now() + 10_000;
    let failure: string | null = null;
    void exited.then((why) => (failure = why));
    while (!(await ping(port))) {
      if (failure) throw new Error(failure);
      if (Date.now() > deadline) {
        p.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} not ready within 10 s: ${log.trim()}`);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  function stopWith(signal: NodeJS.Signals): Promise<void> {
    const p = proc;
    if (!p) return Promise.resolve();
    return new Promise((resolve) => {
      p.once('exit', () => resolve());
      p.kill(signal);
      setTimeout(() => p.kill('SIGKILL'), 3000).unref();
    });
  }

  await start();
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    get running() {
      return proc !== null;
    },
    urlWith(q) {
      const qs = new URLSearchParams(Object.entries(q).map(([k, v]): [string, string] => [k, String(v)])).toString();
      return `redis://127.0.0.1:${port}/0${qs ? `?${qs}` : ''}`;
    },
    async stop() {
      await stopWith('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
    kill: () => stopWith('SIGKILL'),
    start,
    async restart() {
      await stopWith('SIGKILL');
      await start();
    },
  };
  return server;
}
