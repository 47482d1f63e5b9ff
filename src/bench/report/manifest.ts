/**
 * The report's manifest: what a reviewer needs to reproduce or doubt a number — the exact command
 * line, the package version and git commit (when run from a checkout), Node and UCX versions, the
 * UCX transports that actually carried data, the environment that steers UCX and libc, the CPU,
 * the load average before the run, and the client CPU of every row.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Host, Manifest, Row } from './types.js';

/** Environment variables that change what the benchmark measures. */
export const MANIFEST_ENV = /^(UCX_|PEERCACHE_)|^GLIBC_TUNABLES$/;

export function relevantEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(env).sort()) {
    const v = env[k];
    if (v !== undefined && MANIFEST_ENV.test(k)) out[k] = /TOKEN|SECRET|PASSWORD/i.test(k) ? '***' : v;
  }
  return out;
}

let cachedGit: { commit: string | null; dirty: boolean | null } | undefined;

/** The package's git commit and whether its tree has changes, when it runs from a checkout; else nulls. */
export function gitState(): { commit: string | null; dirty: boolean | null } {
  if (cachedGit) return cachedGit;
  cachedGit = { commit: null, dirty: null };
  try {
    const root = fileURLToPath(new URL('../../../', import.meta.url));
    if (!existsSync(`${root}/.git`)) return cachedGit;
    const git = (args: string[]) => execFileSync('git', args, { cwd: root, encoding: 'utf8', timeout: 3000, stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const commit = git(['rev-parse', 'HEAD']);
    const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
    cachedGit = { commit: /^[0-9a-f]{40}$/.test(commit) ? commit : null, dirty };
  } catch {
    /* not a checkout, or no git */
  }
  return cachedGit;
}

/** The 1, 5 and 15 minute load averages now (take it before the run starts). */
export function loadAverage(): [number, number, number] {
  const [a, b, c] = os.loadavg();
  const r = (x: number) => Math.round(x * 100) / 100;
  return [r(a), r(b), r(c)];
}

export interface ManifestInput {
  command: string;
  host: Host;
  /** Transports that actually ran (the report's meta.transports). */
  transports: readonly string[];
  rows: readonly Row[];
  /** os.loadavg() before the run started; null when not taken. */
  loadavgBefore?: [number, number, number] | null;
}

export function collectManifest(input: ManifestInput): Manifest {
  const git = gitState();
  return {
    command: input.command,
    argv: process.argv.slice(2),
    package_version: input.host.package_version,
    git_commit: git.commit,
    git_dirty: git.dirty,
    node_version: input.host.node_version,
    node_flags: [...process.execArgv],
    ucx_version: input.host.ucx_version,
    ucx_transports: [...input.transports],
    env: relevantEnv(),
    cpu_model: input.host.cpu_model,
    cpu_count: input.host.cpu_count,
    loadavg_before: input.loadavgBefore ?? null,
    client_cpu_pct: input.rows.map((r) => r.cpu_client_pct),
  };
}
