/**
 * The connection options every bench mode takes (protocol, RDMA rails, the address nodes
 * advertise), resolved once, and the store configuration the producer and every worker's store
 * client get from them.
 */
import { openTransport } from '../../transport/index.js';
import type { DataPlaneOptions, Protocol } from '../../transport/types.js';

/** The connection options every bench mode takes: the data plane's (one declaration, DataPlaneOptions). */
export type ConnectionOptions = DataPlaneOptions;

/** ConnectionOptions with their defaults applied. */
export interface Connection {
  protocol: Protocol;
  devices: string[];
  ibPort: number;
  gidIndex: number | undefined;
  localHost: string;
}

/** What a bench node's store client is opened with; JSON-serialisable (child processes get it). */
export interface StoreConfig {
  discoveryAddr: string;
  /** A redis:// directory instead of the embedded one at discoveryAddr. */
  directoryUrl?: string;
  protocol: Protocol;
  devices: string[];
  ibPort: number;
  gidIndex: number | undefined;
  authToken: string | undefined;
  localHost: string;
  timeoutMs: number;
  /** Keep a key replica of the embedded directory. */
  directoryReplica?: boolean;
}

/** The rails: `devices`, else the one `deviceName`, else none (UCX picks). */
export function resolveDevices(o: Pick<ConnectionOptions, 'deviceName' | 'devices'>): string[] {
  return o.devices ? [...o.devices] : o.deviceName ? [o.deviceName] : [];
}

/** The defaults: ibPort 1, localHost `localHost` (127.0.0.1 unless the caller chose the address). */
export function resolveConnection(o: ConnectionOptions, localHost = o.localHost ?? '127.0.0.1'): Connection {
  return { protocol: o.protocol, devices: resolveDevices(o), ibPort: o.ibPort ?? 1, gidIndex: o.gidIndex, localHost };
}

/** The store configuration of a node on connection `c` joining the directory at `at`. */
export function storeConfig(c: Connection, at: { discoveryAddr: string; directoryUrl?: string; authToken?: string; directoryReplica?: boolean }): StoreConfig {
  return {
    directoryReplica: at.directoryReplica,
    discoveryAddr: at.discoveryAddr,
    directoryUrl: at.directoryUrl,
    protocol: c.protocol,
    devices: c.devices,
    ibPort: c.ibPort,
    gidIndex: c.gidIndex,
    authToken: at.authToken,
    localHost: c.localHost,
    timeoutMs: 10_000,
  };
}

/** Opens and closes one node: rdma without a NIC (or no UCX) fails here, with the transport's own reason. */
export async function checkProtocol(c: Connection): Promise<void> {
  await (await openTransport({ protocol: c.protocol, devices: c.devices, ibPort: c.ibPort, gidIndex: c.gidIndex, host: c.localHost })).close();
}
