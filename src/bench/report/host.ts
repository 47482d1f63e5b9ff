/**
 * The report's `host` block. The UCX version comes from the caller: this module must not load the
 * native addon (reports are also written where UCX is absent).
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { loadNative } from '../../transport/native.js';
import type { Host } from './types.js';

let cachedVersion: string | undefined;

/**
 * The package version from package.json, found relative to this file: ../../../package.json is the
 * package root from both src/bench/report (tsx) and dist/bench/report (built). "unknown" if
 * unreadable, so a report is still written.
 */
export function packageVersion(): string {
  if (cachedVersion !== undefined) return cachedVersion;
  try {
    const pkg: unknown = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'));
    const v = typeof pkg === 'object' && pkg !== null ? (pkg as { version?: unknown }).version : undefined;
    cachedVersion = typeof v === 'string' && v ? v : 'unknown';
  } catch {
    cachedVersion = 'unknown';
  }
  return cachedVersion;
}

export interface HostOptions {
  /** The UCX library version the addon reports, or null when UCX is not loaded. */
  ucxVersion: string | null;
}

export function collectHost(options: HostOptions): Host {
  const cpus = os.cpus();
  // os.cpus() can be empty (some containers); availableParallelism still knows the count.
  const cpuModel = cpus[0]?.model.trim().replace(/\s+/g, ' ');
  return {
    platform: os.platform(),
    os_release: os.release(),
    arch: os.arch(),
    cpu_model: cpuModel || 'unknown',
    cpu_count: cpus.length || os.availableParallelism(),
    node_version: process.version,
    package_version: packageVersion(),
    ucx_version: options.ucxVersion,
    hostname: os.hostname(),
    glibc_tunables: process.env.GLIBC_TUNABLES || null,
  };
}

/** This host, with the UCX version of the loaded addon (null when it is not loaded). */
export function collectLocalHost(): Host {
  const native = loadNative();
  return collectHost({ ucxVersion: native.ok ? native.binding.ucx().version : null });
}
