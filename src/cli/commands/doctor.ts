/** `peercache-bench doctor`: what a user runs first on a new host. */
import { defineCommand } from 'citty';
import { probeHost, type HostProbe } from '../../transport/probe.js';
import { packageVersion } from '../../version.js';
import { parseNameList } from '../parse.js';
import { flagFor } from '../flags.js';
import { globalArgs, loggerFromArgs, type CommandResult } from '../shared.js';

const mib = (b: number | null) => (b === null ? 'unknown' : b === Number.POSITIVE_INFINITY ? 'unlimited' : `${(b / 2 ** 20).toFixed(0)} MiB`);

export function renderDoctor(p: HostProbe): string {
  const out: string[] = [];
  const mark = (ok: boolean) => (ok ? 'ok  ' : 'FAIL');
  out.push(`peercache ${packageVersion()} on node ${process.version} (${process.platform}-${process.arch})`);
  out.push('');
  out.push(`addon   ${p.addon.loaded ? `loaded: ${p.addon.path}` : `NOT loaded: ${p.addon.error}`}`);
  out.push(`UCX     ${p.ucx.found ? `${p.ucx.version} (${p.ucx.library})` : `not found: ${p.ucx.error}`}`);
  if (p.ucxResources.length) {
    const byTransport = new Map<string, string[]>();
    for (const r of p.ucxResources) byTransport.set(r.transport, [...(byTransport.get(r.transport) ?? []), r.device]);
    out.push(`        transports UCX can open: ${[...byTransport].map(([t, d]) => `${t} (${d.join(', ')})`).join('; ')}`);
  }
  if (p.rdmaDevices.length === 0) {
    out.push('RDMA    no RDMA devices (/sys/class/infiniband is empty or absent)');
  } else {
    out.push('RDMA    devices:');
    for (const d of p.rdmaDevices) {
      for (const port of d.ports) {
        out.push(`        ${d.name} port ${port.port}: ${port.state}, ${port.linkLayer}${port.linkLayer === 'Ethernet' ? ` (RoCE, ${port.gidCount} GIDs)` : ''}${port.rate ? `, ${port.rate}` : ''}`);
      }
    }
  }
  const locked = p.limits.lockedMemoryBytes;
  // RDMA pins (registers) the host pool and the published pool: a few MiB of locked memory is not enough.
  const lowLocked = locked !== null && locked !== Number.POSITIVE_INFINITY && locked < 2 ** 30;
  out.push(`limits  locked memory ${mib(locked)} (RDMA registers host buffers: raise with \`ulimit -l unlimited\`), /dev/shm free ${mib(p.limits.devShmFreeBytes)}`);
  if (lowLocked && p.rdmaDevices.length) out.push(`WARNING locked memory ${mib(locked)} is too low for --protocol rdma: raise it (\`ulimit -l unlimited\`, memlock in /etc/security/limits.conf, or LimitMEMLOCK=infinity)`);
  out.push('');
  out.push('protocols:');
  for (const c of p.protocols) out.push(`  ${mark(c.ok)} ${c.protocol.padEnd(5)} ${c.detail}`);
  const runnable = p.protocols.filter((c) => c.ok).map((c) => c.protocol);
  out.push('');
  out.push(
    runnable.includes('rdma')
      ? 'Headline numbers: --protocol rdma.'
      : runnable.includes('shm')
        ? 'No RDMA here: --protocol shm measures the same one-sided path between processes on this host; tcp is a smoke test only.'
        : 'Only --protocol tcp runs here: a functional smoke test, not a performance figure. Install UCX (`apt-get install libucx0`) for shm.',
  );
  return out.join('\n') + '\n';
}

export default defineCommand({
  meta: { name: 'doctor', description: 'Check what this host can run: the addon, UCX, transports, RDMA devices, and each protocol (tried, not guessed)' },
  args: {
    ...globalArgs,
    'device-name': { type: 'string', description: 'RDMA device(s) to try for --protocol rdma, comma separated (default: any)', default: '' },
    json: { type: 'boolean', description: 'Print the findings as JSON on stdout', default: false },
  },
  async run({ args }): Promise<CommandResult> {
    loggerFromArgs(args);
    const deviceText = String(args['device-name'] ?? '').trim();
    const devices = deviceText ? parseNameList('--device-name', deviceText) : [];
    const probe = await probeHost({ devices, optionName: flagFor });
    process.stdout.write(args.json ? JSON.stringify(probe, (_k, v: unknown) => (v === Number.POSITIVE_INFINITY ? 'unlimited' : v), 2) + '\n' : renderDoctor(probe));
    // Doctor reports; it fails only when nothing at all can run.
    return { exitCode: probe.protocols.some((c) => c.ok) ? 0 : 1 };
  },
});
