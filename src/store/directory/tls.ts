/**
 * TLS for the embedded directory (issue 24, item 5). Without it the directory's token travels in
 * cleartext in every hello: an on-path observer who captures one can replay it, join, and learn
 * every member's region access tokens. With it the token, the member records and the key
 * locations are encrypted, and a client talks only to a server whose certificate its CA signed.
 *
 * Certificates are given by path (PEM), as operators keep them. In the embedded mode any node may
 * end up serving, so a node is given the server pair (cert, key) and the CA that signed it.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError } from '../../errors.js';

export interface DirectoryTls {
  /** PEM certificate chain the server presents (needed where this process may serve). */
  certFile?: string;
  /** PEM private key of that certificate. */
  keyFile?: string;
  /** PEM CA bundle a client trusts for the server's certificate (default: Node's public CAs). */
  caFile?: string;
  /** Name the server's certificate must carry (default: the host connected to). */
  servername?: string;
}

export class DirectoryTlsError extends ConfigError {
  override name = 'DirectoryTlsError';
}

function read(what: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new DirectoryTlsError(`directory TLS: cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The server side: a secure context from cert and key (throws naming a missing or bad file). */
export function serverContext(options: DirectoryTls): tls.SecureContext {
  if (!options.certFile || !options.keyFile) throw new DirectoryTlsError('directory TLS: serving needs both a certificate (certFile) and its key (keyFile)');
  try {
    return tls.createSecureContext({ cert: read('certificate', options.certFile), key: read('key', options.keyFile), minVersion: 'TLSv1.2' });
  } catch (err) {
    if (err instanceof DirectoryTlsError) throw err;
    throw new DirectoryTlsError(`directory TLS: ${options.certFile} / ${options.keyFile}: ${(err as Error).message}`);
  }
}

/** The client side's options for tls.connect: the server is always verified. */
export function clientOptions(options: DirectoryTls, host: string): tls.ConnectionOptions {
  const out: tls.ConnectionOptions = { rejectUnauthorized: true, minVersion: 'TLSv1.2' };
  if (options.caFile) out.ca = read('CA bundle', options.caFile);
  // SNI takes names only; an IP address is checked against the certificate's IP SANs by Node.
  const name = options.servername ?? host;
  if (!/^[\d.]+$/.test(name) && !name.includes(':')) out.servername = name;
  if (options.servername) out.checkServerIdentity = (_h, cert) => tls.checkServerIdentity(options.servername as string, cert);
  return out;
}
