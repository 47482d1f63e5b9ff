/** Child processes for tests: TypeScript fixtures run through tsx (src/bench/child-process.ts), always reaped. */
import type { ChildProcess } from 'node:child_process';
import { ChildProc } from '../../src/bench/child-process.js';

export interface Child {
  proc: ChildProcess;
  /** Resolves with the first stdout line that parses as JSON. */
  ready: Promise<Record<string, unknown>>;
  stderr: () => string;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

const jsonObject = (line: string): Record<string, unknown> | null => {
  try {
    const v: unknown = JSON.parse(line);
    return typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : null;
  } catch {
    return null; // not the ready line
  }
};

export function spawnFixture(fixture: URL, args: string[] = [], env: NodeJS.ProcessEnv = {}): Child {
  const child = new ChildProc<Record<string, unknown>>({
    label: 'fixture',
    command: process.execPath,
    args: ['--import', 'tsx', fixture.pathname, ...args],
    env: { ...process.env, ...env },
    lifetime: 'stdin',
    parseMessage: jsonObject,
  });
  const ready = child.next(() => true, 300_000, 'ready line').catch((err: Error) => {
    const exit = child.exitedState;
    throw new Error(err.message.startsWith('exited') ? `fixture exited (${exit?.code ?? exit?.signal}) before it was ready: ${child.stderr()}` : err.message);
  });
  ready.catch(() => {}); // a test that never awaits it must not see an unhandled rejection
  return {
    proc: child.proc,
    ready,
    stderr: () => child.stderr(),
    kill: (signal: NodeJS.Signals = 'SIGTERM') => child.stop({ via: signal, graceMs: 3000 }),
  };
}
