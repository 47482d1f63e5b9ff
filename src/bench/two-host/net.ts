/**
 * Which address a two-host node (serve, drive) advertises. The original auto-detected it by connecting a UDP
 * socket towards the discovery host; for `--discovery-addr 0.0.0.0:P` (its documented command)
 * that yields 127.0.0.1, so the serve node told remote readers to READ from their own loopback
 * (a defect of the original PeerCache bench). Here a serve node that would advertise loopback to other hosts refuses, and
 * says which flag fixes it.
 */
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { parseDiscoveryAddr } from '../../store/directory/index.js';
import { TwoHostConfigError, type TwoHostRole } from './params.js';

export { isLoopback } from '../../store/loopback.js';
import { isLoopback } from '../../store/loopback.js';

export function isWildcard(addr: string): boolean {
  return addr === '0.0.0.0' || addr === '::' || addr === '[::]';
}

/** This host's non-loopback addresses (IPv4 first), to suggest in messages. */
export function hostAddresses(): string[] {
  const all = Object.values(networkInterfaces()).flatMap((list) => list ?? []);
  const usable = all.filter((i) => !i.internal && !(i.family === 'IPv6' && i.address.startsWith('fe80:')));
  return [...usable.filter((i) => i.family === 'IPv4'), ...usable.filter((i) => i.family === 'IPv6')].map((i) => i.address);
}

/** The source address the kernel would use to reach `host` (the original's UDP trick); null if none. */
async function routeSource(host: string): Promise<string | null> {
  const family = isIP(host) === 6 ? 'udp6' : 'udp4';
  return new Promise((resolve) => {
    const s = createSocket(family);
    const done = (v: string | null) => {
      try {
        s.close();
      } catch {
        /* already closed */
      }
      resolve(v);
    };
    s.once('error', () => done(null));
    // A UDP connect sends nothing; it only picks the route.
    s.connect(9, host, () => {
      try {
        done(s.address().address);
      } catch {
        done(null);
      }
    });
  });
}

async function resolveHost(host: string): Promise<string> {
  if (isIP(host)) return host;
  try {
    return (await lookup(host)).address;
  } catch {
    throw new TwoHostConfigError(`--discovery-addr: cannot resolve host '${host}'`);
  }
}

export interface LocalHostChoice {
  host: string;
  /** How it was chosen, for the banner and the report. */
  how: 'given' | 'loopback run' | 'route to the discovery host';
}

function fix(addr: string): string {
  const candidates = hostAddresses();
  const example = candidates[0] ?? '<this host\'s address>';
  return `Pass --local-host <this host's address>${candidates.length ? ` (this host has ${candidates.join(', ')})` : ''}, e.g. --local-host ${example}, and run drive with --discovery-addr ${example}:${parseDiscoveryAddr(addr).port}`;
}

/**
 * Picks the address to advertise. A serve node refuses to advertise loopback when its discovery
 * address is not loopback: readers on other hosts would be sent to their own 127.0.0.1.
 */
export async function chooseLocalHost(discoveryAddr: string, given: string | undefined, role: TwoHostRole): Promise<LocalHostChoice> {
  let parsed: { host: string; port: number };
  try {
    parsed = parseDiscoveryAddr(discoveryAddr);
  } catch (err) {
    throw new TwoHostConfigError(`--discovery-addr: ${(err as Error).message}`);
  }
  const discoveryHost = parsed.host;
  const wildcard = isWildcard(discoveryHost);
  const local = wildcard ? discoveryHost : await resolveHost(discoveryHost);
  const oneHost = !wildcard && isLoopback(local);
  const g = given?.trim();
  if (g) {
    if (isWildcard(g)) throw new TwoHostConfigError(`--local-host ${g}: a node advertises this address to the others; a wildcard cannot be reached: ${fix(discoveryAddr)}`);
    if (role === 'serve' && isLoopback(g) && !oneHost) {
      throw new TwoHostConfigError(
        `refusing to serve: --local-host ${g} is a loopback address, but --discovery-addr ${discoveryAddr} lets other hosts join; ` +
          `they would be told to READ from their own ${g}. ${fix(discoveryAddr)} (or use a loopback --discovery-addr for a one-host run)`,
      );
    }
    return { host: g, how: 'given' };
  }
  if (oneHost) return { host: isIP(local) === 6 ? '::1' : '127.0.0.1', how: 'loopback run' };
  if (wildcard) {
    if (role === 'serve') {
      throw new TwoHostConfigError(
        `refusing to serve: --discovery-addr ${discoveryAddr} without --local-host would advertise 127.0.0.1 (the address a socket ` +
          `towards ${discoveryHost} gets), so readers on other hosts would READ from themselves. ${fix(discoveryAddr)}`,
      );
    }
    return { host: '127.0.0.1', how: 'loopback run' };
  }
  const src = await routeSource(local);
  if (!src || isWildcard(src) || (isLoopback(src) && role === 'serve')) {
    throw new TwoHostConfigError(
      `${role === 'serve' ? 'refusing to serve: ' : ''}cannot tell which address of this host reaches ${discoveryHost} ` +
        `(${src ? `the route gives ${src}` : 'no route'}). ${fix(discoveryAddr)}`,
    );
  }
  return { host: src, how: 'route to the discovery host' };
}
