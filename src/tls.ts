/**
 * TLS for the embedded directory and the tcp data plane (issue 24, item 5). Without it the
 * directory's token travels in cleartext in every hello (an on-path observer who captures one can
 * replay it, join, and learn every member's region access tokens) and a tcp READ carries its
 * region token and bytes in the clear. With it both are encrypted, and a client talks only to a
 * server whose certificate its CA signed.
 *
 * Certificates are given by path (PEM), as operators keep them. Any node may serve (the embedded
 * directory, its own data plane), so a node is given a server pair (cert, key) and the CA.
 */
import { readFileSync } from 'node:fs';
import tls from 'node:tls';
import { ConfigError } from './errors.js';

export interface TlsFiles {
  /** PEM certificate chain the server presents (needed where this process may serve). */
  certFile?: string;
  /** PEM private key of that certificate. */
  keyFile?: string;
  /** PEM CA bundle a client trusts for the server's certificate (default: Node's public CAs). */
  caFile?: string;
  /** Name the server's certificate must carry (default: the host connected to). */
  servername?: string;
}

export class TlsConfigError extends ConfigError {
  override name = 'TlsConfigError';
}

function read(what: string, path: string, who: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TlsConfigError(`${who} TLS: cannot read the ${what} ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/** The server side: a secure context from cert and key (throws naming a missing or bad file). */
export function serverContext(options: TlsFiles, who = 'directory'): tls.SecureContext {
  if (!options.certFile || !options.keyFile) throw new TlsConfigError(`${who} TLS: serving needs both a certificate (certFile) and its key (keyFile)`);
  try {
    return tls.createSecureContext({ cert: read('certificate', options.certFile, who), key: read('key', options.keyFile, who), minVersion: 'TLSv1.2' });
  } catch (err) {
    if (err instanceof TlsConfigError) throw err;
    throw new TlsConfigError(`${who} TLS: ${options.certFile} / ${options.keyFile}: ${(err as Error).message}`);
  }
}

/** The client side's options for tls.connect: the server is always verified. */
export function clientOptions(options: TlsFiles, host: string, who = 'directory'): tls.ConnectionOptions {
  const out: tls.ConnectionOptions = { rejectUnauthorized: true, minVersion: 'TLSv1.2' };
  if (options.caFile) out.ca = read('CA bundle', options.caFile, who);
  // SNI takes names only; an IP address is checked against the certificate's IP SANs by Node.
  const name = options.servername ?? host;
  if (!/^[\d.]+$/.test(name) && !name.includes(':')) out.servername = name;
  if (options.servername) out.checkServerIdentity = (_h, cert) => tls.checkServerIdentity(options.servername as string, cert);
  return out;
}

/** The directory's TLS settings (the same files). */
export type DirectoryTls = TlsFiles;
