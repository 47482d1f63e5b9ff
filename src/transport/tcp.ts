/** Pure-TypeScript TCP fallback transport (smoke tests only). Being written; see issue 5. */
import { TransportError, type TransportNode, type TransportOptions } from './types.js';

export class TcpTransport {
  static async open(options: TransportOptions): Promise<TransportNode> {
    throw new TransportError('ERR_PROTOCOL_UNAVAILABLE', `protocol '${options.protocol}' is not available in this build yet`);
  }
}
