/**
 * What this host's data plane can do, for `peercache-bench doctor`: the addon, UCX, the
 * transports and RDMA devices UCX sees, and whether each protocol really runs (each is tried,
 * not guessed).
 */
import { readdirSync, readFileSync, statfsSync } from 'node:fs';
import { join } from 'node:path';
import { loadNative } from './native.js';
import { TcpTransport } from './tcp/index.js';
import { UcxTransport } from './ucx.js';
import { errorText } from '../errors.js';
import type { Protocol } from './types.js';

export interface RdmaPort {
  port: number;
  state: string;
  linkLayer: string;
  /** Non-zero GID table entries (RoCE needs one for its address; UCX picks RoCE v2 by default). */
  gidCount: number;
  rate: string | null;
}

export interface RdmaDevice {
  name: string;
  ports: RdmaPort[];
}

export interface ProtocolCheck {
  protocol: Protocol;
  ok: boolean;
  /** What ran, or why not and what to install / change. */
  detail: string;
  transports: string[];
}

export interface UcxResource {
  transport: string;
  device: string;
}

export interface HostProbe {
  addon: { loaded: boolean; path: string | null; error: string | null };
  ucx: { found: boolean; library: string | null; version: string | null; error: string | null };
  /** Every transport/device UCX can open on this host (`transport/device`). */
  ucxResources: UcxResource[];
  rdmaDevices: RdmaDevice[];
  limits: { lockedMemoryBytes: number | null; shmmaxBytes: number | null; devShmFreeBytes: number | null };
  protocols: ProtocolCheck[];
}

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return null;
  }
}

/** RDMA devices and ports from sysfs (no libibverbs needed). */
export function rdmaDevices(sysfs = '/sys/class/infiniband'): RdmaDevice[] {
  let names: string[];
  try {
    names = readdirSync(sysfs).sort();
  } catch {
    return [];
  }
  return names.map((name) => {
    const portsDir = join(sysfs, name, 'ports');
    let ports: string[] = [];
    try {
      ports = readdirSync(portsDir).sort((a, b) => Number(a) - Number(b));
    } catch {
      /* a device without ports */
    }
    return {
      name,
      ports: ports.map((p) => {
        let gidCount = 0;
        try {
          for (const g of readdirSync(join(portsDir, p, 'gids'))) {
            const v = readText(join(portsDir, p, 'gids', g));
            if (v && !/^[0:]+$/.test(v)) gidCount++;
          }
        } catch {
          /* no gid table */
        }
        return {
          port: Number(p),
          state: (readText(join(portsDir, p, 'state')) ?? 'unknown').replace(/^\d+:\s*/, ''),
          linkLayer: readText(join(portsDir, p, 'link_layer')) ?? 'unknown',
          gidCount,
          rate: readText(join(portsDir, p, 'rate')),
        };
      }),
    };
  });
}

/** Parses `ucp_context_print_info` resource lines: "resource 1 : md 1 dev 1 flags -- tcp/lo". */
export function parseUcxResources(text: string): UcxResource[] {
  const out: UcxResource[] = [];
  for (const m of text.matchAll(/resource\s+\d+\s*:.*--\s+(\S+)\/(\S+)/g)) out.push({ transport: m[1], device: m[2] });
  return out;
}

function lockedMemory(): number | null {
  const limits = readText('/proc/self/limits');
  const m = limits?.match(/Max locked memory\s+(\S+)/);
  if (!m) return null;
  return m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
}

async function checkUcx(protocol: 'rdma' | 'shm', devices: readonly string[], name: (option: string) => string): Promise<ProtocolCheck> {
  let a: UcxTransport | undefined;
  let b: UcxTransport | undefined;
  try {
    a = UcxTransport.open({ protocol, devices });
    b = UcxTransport.open({ protocol, devices });
    // A real one-sided READ between two workers, not just a context that opens.
    const region = a.allocate(1 << 20);
    region.bytes.fill(0x5a, 0, 4096);
    const ep = b.connectSync(a.address());
    const dst = new Uint8Array(4096);
    await ep.read(ep.attach(region.descriptor()), [b.register(dst)], new Float64Array([0, 0, 0, 4096]), 1, { timeoutMs: 5000 });
    const lanes = ep.lanes();
    ep.close();
    region.free();
    if (!dst.every((x) => x === 0x5a)) return { protocol, ok: false, detail: 'a test READ returned wrong bytes', transports: lanes };
    return { protocol, ok: true, detail: `a one-sided READ ran over ${lanes.join(', ') || a.transports}`, transports: lanes };
  } catch (err) {
    return { protocol, ok: false, detail: errorText(err, name), transports: [] };
  } finally {
    await b?.close();
    await a?.close();
  }
}

async function checkTcp(name: (option: string) => string): Promise<ProtocolCheck> {
  try {
    const node = await TcpTransport.open({ protocol: 'tcp' });
    const transports = node.transports;
    await node.close();
    return { protocol: 'tcp', ok: true, detail: `${transports}: a functional fallback, never a performance figure`, transports: ['tcp'] };
  } catch (err) {
    return { protocol: 'tcp', ok: false, detail: errorText(err, name), transports: [] };
  }
}

/** `optionName`: how error texts name an option (default: as the library spells it; the CLI passes its flags). */
export async function probeHost(options: { devices?: readonly string[]; optionName?: (option: string) => string } = {}): Promise<HostProbe> {
  const name = options.optionName ?? ((option: string) => option);
  const load = loadNative();
  const status = load.ok ? load.binding.ucx() : null;
  let ucxResources: UcxResource[] = [];
  if (load.ok && status?.available) {
    try {
      ucxResources = parseUcxResources(load.binding.describeHost());
    } catch {
      /* reported through the protocol checks */
    }
  }
  let devShmFreeBytes: number | null = null;
  try {
    const s = statfsSync('/dev/shm');
    devShmFreeBytes = s.bavail * s.bsize;
  } catch {
    /* no /dev/shm */
  }
  const shmmax = readText('/proc/sys/kernel/shmmax');
  return {
    addon: { loaded: load.ok, path: load.ok ? load.path : null, error: load.ok ? null : load.error },
    ucx: {
      found: status?.available ?? false,
      library: status?.library ?? null,
      version: status?.version ?? null,
      error: status ? status.error : load.ok ? null : 'the native addon did not load, so UCX was not looked for',
    },
    ucxResources,
    rdmaDevices: rdmaDevices(),
    limits: { lockedMemoryBytes: lockedMemory(), shmmaxBytes: shmmax ? Number(shmmax) : null, devShmFreeBytes },
    protocols: [await checkUcx('rdma', options.devices ?? [], name), await checkUcx('shm', [], name), await checkTcp(name)],
  };
}
