/** Runs the peercache-bench CLI in a child process (TypeScript sources through tsx; src/bench/child-process.ts). */
import { fileURLToPath } from 'node:url';
import { ChildProc } from '../../src/bench/child-process.js';

export const cliEntry = fileURLToPath(new URL('../../src/cli/peercache-bench.ts', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export async function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; onSpawn?: (pid: number) => void; onStderr?: (soFar: string) => void } = {}): Promise<CliResult> {
  const child = new ChildProc({
    label: 'peercache-bench',
    command: process.execPath,
    args: ['--import', 'tsx', cliEntry, ...args],
    cwd: options.cwd,
    env: { ...process.env, ...options.env },
    lifetime: 'stdin',
    // Whole outputs: tests match on them.
    keepBytes: 256 << 20,
  });
  child.proc.stdin!.end(); // the CLI reads no input
  if (child.pid > 0) options.onSpawn?.(child.pid);
  // What the CLI has written to stderr so far, on each chunk: tests wait for a line, not a clock.
  if (options.onStderr) child.proc.stderr!.on('data', () => options.onStderr!(child.stderr()));
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
  await child.exited;
  await child.closed;
  clearTimeout(timer);
  const exit = child.exitedState!;
  return { code: exit.code, signal: exit.signal, stdout: child.stdout(), stderr: child.stderr() };
}
