/**
 * The report's `host` block. The UCX version comes from the caller: this module must not load the
 * native addon (reports are also written where UCX is absent).
 */
import os from 'node:os';
import { loadNative } from '../../transport/native.js';
import type { Host } from './types.js';
import { packageVersion } from '../../version.js';

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
