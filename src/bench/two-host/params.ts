/**
 * The two-host mode (`serve` and `drive`; the original's `dist.py`, whose names its data keeps:
 * report mode "dist", hicache-dist-* files, these keys, ERR_DIST_MISMATCH).
 * What serve and drive must agree on, and how they check it: each side publishes its parameters
 * as node attributes when it joins the directory, and the driver compares the serve node's
 * attributes with its own before it measures anything (the original only said "must match").
 */
import type { Layout } from '../../store/host-pool.js';
import type { NodeInfo } from '../../store/types.js';
import type { Protocol } from '../../transport/types.js';
import { resolveDevices, type ConnectionOptions } from '../engine/connection.js';
import { ConfigError, PeercacheError } from '../../errors.js';

/** The connection and page parameters both subcommands take (the RDMA rails, `devices`, must match in count on both sides). */
export interface TwoHostCommonOptions extends ConnectionOptions {
  /** host:port of the directory; serve hosts it (the first node there serves it). */
  discoveryAddr: string;
  /** The address this node advertises; '' or undefined = detect (see net.ts). */
  localHost?: string;
  layout?: Layout;
  /** Bytes per component object (default 131072). */
  pageBytes?: number;
  tokensPerPage?: number;
  /** Distinct pages serve publishes and drive reads (default 4096). */
  workingSet?: number;
  nodeId?: string;
  /** Deadline of every wait: directory, serve node, working set, workers, child processes (default 60 s). */
  connectTimeoutMs?: number;
  authToken?: string;
  /** serve: host the directory on a non-loopback address without a token. */
  insecure?: boolean;
}

/** The working set's key prefix: `<prefix>/<i>` for i in [0, working set), the original's (its dist.py). */
export const TWO_HOST_KEY_PREFIX = 'pcbench/dist/get';

/** Attribute names (prefixed: the store adds its own `layout` and `pageBytes`). */
export const ATTR = {
  role: 'pcbench_role',
  layout: 'pcbench_layout',
  pageSize: 'pcbench_page_size',
  workingSet: 'pcbench_working_set',
  protocol: 'pcbench_protocol',
  rails: 'pcbench_rails',
  railList: 'pcbench_devices',
  tokensPerPage: 'pcbench_tokens_per_page',
  keyPrefix: 'pcbench_key_prefix',
  readers: 'pcbench_readers',
  transports: 'pcbench_transports',
  version: 'pcbench_version',
  /** Set on the drive parent of --processes N: it checks and watches serve, its children measure. */
  coordinator: 'pcbench_coordinator',
} as const;

export type TwoHostRole = 'serve' | 'drive';

/** What both sides publish and compare. */
export interface Agreement {
  layout: Layout;
  pageBytes: number;
  workingSet: number;
  protocol: Protocol;
  devices: string[];
}

export function agreementAttributes(role: TwoHostRole, a: Agreement): Record<string, string | number | boolean> {
  return {
    [ATTR.role]: role,
    [ATTR.layout]: a.layout,
    [ATTR.pageSize]: a.pageBytes,
    [ATTR.workingSet]: a.workingSet,
    [ATTR.protocol]: a.protocol,
    [ATTR.rails]: a.devices.length,
    [ATTR.railList]: a.devices.join(','),
  };
}

/** A parameter the two sides disagree on (the error names both values and the flag). */
export interface Mismatch {
  flag: string;
  serve: string;
  drive: string;
}

/** serve and drive were started with different parameters; the message says which and how to fix it. */
export class TwoHostMismatchError extends PeercacheError {
  override readonly name = 'TwoHostMismatchError';
  constructor(
    readonly serveNode: string,
    readonly mismatches: Mismatch[],
  ) {
    const what = mismatches.map((m) => `${m.flag}: serve ${m.serve}, drive ${m.drive}`).join('; ');
    super(
      'ERR_DIST_MISMATCH',
      `serve node '${serveNode}' and this driver disagree on ${mismatches.map((m) => m.flag).join(', ')} (${what}); ` +
        'both hosts must use the same layout, page size, working set, protocol and number of rails: rerun with the same values on both sides',
    );
  }
}

const rails = (count: unknown, list: unknown): string =>
  Number(count) > 0 ? `${String(count)} rail${Number(count) === 1 ? '' : 's'} (--devices ${String(list)})` : '0 rails (no --devices: UCX picks)';

/** Compares the serve node (its published attributes and protocol) with this driver's parameters. */
export function compareAgreement(serve: NodeInfo, mine: Agreement): Mismatch[] {
  const at = serve.attributes;
  const out: Mismatch[] = [];
  const check = (flag: string, theirs: unknown, ours: string | number) => {
    if (String(theirs) !== String(ours)) out.push({ flag, serve: String(theirs ?? '(not published)'), drive: String(ours) });
  };
  check('--layout', at[ATTR.layout], mine.layout);
  check('--page-size', at[ATTR.pageSize], mine.pageBytes);
  check('--working-set', at[ATTR.workingSet], mine.workingSet);
  // The node's own protocol is what its transport runs; the attribute is what was asked for.
  check('--protocol', serve.protocol, mine.protocol);
  if (Number(at[ATTR.rails] ?? 0) !== mine.devices.length) {
    out.push({ flag: '--devices', serve: rails(at[ATTR.rails] ?? 0, at[ATTR.railList]), drive: rails(mine.devices.length, mine.devices.join(',')) });
  }
  return out;
}

export function isServeNode(n: NodeInfo): boolean {
  return n.attributes[ATTR.role] === 'serve';
}

export function isDriveNode(n: NodeInfo): boolean {
  return n.attributes[ATTR.role] === 'drive';
}

/** Validated defaults of the common options. */
export function commonDefaults(o: TwoHostCommonOptions): Required<Pick<TwoHostCommonOptions, 'layout' | 'pageBytes' | 'tokensPerPage' | 'workingSet' | 'connectTimeoutMs'>> & { devices: string[] } {
  const d = {
    layout: o.layout ?? 'mla',
    pageBytes: o.pageBytes ?? 131072,
    tokensPerPage: o.tokensPerPage ?? 64,
    workingSet: o.workingSet ?? 4096,
    connectTimeoutMs: o.connectTimeoutMs ?? 60_000,
    devices: resolveDevices(o),
  };
  for (const [name, v] of [['pageBytes', d.pageBytes], ['tokensPerPage', d.tokensPerPage], ['workingSet', d.workingSet]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new TwoHostConfigError(`${name} must be a positive integer, got ${v}`);
  }
  if (d.pageBytes % 4 !== 0) throw new TwoHostConfigError(`pageBytes must be a multiple of 4, got ${d.pageBytes}`);
  if (!(d.connectTimeoutMs > 0)) throw new TwoHostConfigError('connectTimeoutMs must be > 0');
  return d;
}

/** A bad option value or combination; the CLI turns it into a usage error. */
export class TwoHostConfigError extends ConfigError {
  override name = 'TwoHostConfigError';
}
