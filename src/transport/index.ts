/** Opens the transport a protocol names; never falls back to another one. */
import { TcpTransport } from './tcp/index.js';
import { UcxTransport } from './ucx.js';
import { PROTOCOLS, TransportError, type TransportNode, type TransportOptions } from './types.js';

export async function openTransport(options: TransportOptions): Promise<TransportNode> {
  if (!PROTOCOLS.includes(options.protocol)) {
    throw new TransportError('ERR_INVALID_ARG', `unknown protocol '${String(options.protocol)}' (expected ${PROTOCOLS.join(', ')})`);
  }
  if (options.protocol === 'tcp') return TcpTransport.open(options);
  return UcxTransport.open(options);
}

export * from './types.js';
export { UcxTransport, UcxEndpoint, parseLanes } from './ucx.js';
export { TcpTransport, TCP_SERVER_LIMITS } from './tcp/index.js';
export { loadNative } from './native.js';
export { OpList } from './op-list.js';
