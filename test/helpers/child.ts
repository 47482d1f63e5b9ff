/** Child processes for tests: TypeScript fixtures run through tsx, always reaped. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

export interface Child {
  proc: ChildProcess;
  /** Resolves with the first stdout line that parses as JSON. */
  ready: Promise<Record<string, unknown>>;
  stderr: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnFixture(fixture: URL, args: string[] = [], env: NodeJS.ProcessEnv = {}): Child {
  const proc = spawn(process.execPath, ['--import', 'tsx', fixture.pathname, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let err = '';
  proc.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const lines = createInterface({ input: proc.stdout! });
  const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
    lines.on('line', (line) => {
      try {
        resolve(JSON.parse(line) as Record<string, unknown>);
      } catch {
        /* not the ready line */
      }
    });
    proc.on('exit', (code) => reject(new Error(`fixture exited (${code}) before it was ready: ${err}`)));
  });
  return {
    proc,
    ready,
    stderr: () => err,
    kill(signal: NodeJS.Signals = 'SIGTERM') {
      return new Promise((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill(signal);
        setTimeout(() => proc.kill('SIGKILL'), 3000).unref();
      });
    },
  };
}
