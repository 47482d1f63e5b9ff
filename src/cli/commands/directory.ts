/**
 * `peercache directory`: the embedded directory run on its own (no store in the process). The one
 * place to serve tenants: the process that serves them holds every tenant's token, so it belongs on
 * a host all tenants trust, not on one tenant's node (docs/security.md, tenants).
 */
import { readFileSync } from 'node:fs';
import { defineCommand } from 'citty';
import { DirectoryServer, parseDiscoveryAddr } from '../../store/directory/index.js';
import { UsageError } from '../parse.js';
import { toProgramError, withInterrupts } from '../run-report.js';
import { globalArgs, loggerFromArgs, str, type CommandResult } from '../shared.js';

/** A tenants file: a JSON object of tenant name → token. */
function readTenants(path: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`--tenants: cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--tenants: ${path} is not JSON: ${(err as Error).message}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed) || !Object.values(parsed).every((v) => typeof v === 'string')) {
    throw new UsageError(`--tenants: ${path} must hold one JSON object of tenant name → token (strings), e.g. {"model-a": "…", "model-b": "…"}`);
  }
  return parsed as Record<string, string>;
}

export default defineCommand({
  meta: {
    name: 'directory',
    description:
      'serve the embedded directory on its own at --listen (nodes join it with --discovery-addr); with --tenants, each tenant token opens its own directory. Runs until Ctrl-C/SIGTERM.',
  },
  args: {
    listen: { type: 'string', description: 'host:port to serve (the nodes\' --discovery-addr)', default: '127.0.0.1:7600', valueHint: 'host:port' },
    'auth-token': { type: 'string', description: 'Shared secret of the directory (default: $PEERCACHE_AUTH_TOKEN); with --tenants, a default tenant', default: '', valueHint: 'token' },
    tenants: { type: 'string', description: 'JSON file of tenant name → token: a node joins the tenant its --auth-token names and sees nothing of the others', default: '', valueHint: 'path' },
    'tls-cert': { type: 'string', description: 'Serve over TLS: the PEM certificate (with --tls-key); nodes pass --directory-tls-ca', default: '', valueHint: 'path' },
    'tls-key': { type: 'string', description: 'The PEM key of --tls-cert', default: '', valueHint: 'path' },
    insecure: { type: 'boolean', description: 'Serve a non-loopback address without a token (trusted networks only)', default: false },
    ...globalArgs,
  },
  async run({ args }): Promise<CommandResult> {
    const logger = loggerFromArgs(args);
    let where: { host: string; port: number };
    try {
      where = parseDiscoveryAddr(str(args, 'listen').trim());
    } catch (err) {
      throw new UsageError(`--listen: ${(err as Error).message}`);
    }
    const { host, port } = where;
    const tenantsFile = str(args, 'tenants').trim();
    const tenants = tenantsFile ? readTenants(tenantsFile) : undefined;
    const certFile = str(args, 'tls-cert').trim();
    const keyFile = str(args, 'tls-key').trim();
    if (Boolean(certFile) !== Boolean(keyFile)) throw new UsageError('--tls-cert and --tls-key go together');
    let server: DirectoryServer;
    try {
      server = await DirectoryServer.listen({
        host,
        port,
        authToken: str(args, 'auth-token') || process.env.PEERCACHE_AUTH_TOKEN || undefined,
        tenants,
        tls: certFile ? { certFile, keyFile } : undefined,
        insecure: args.insecure === true,
        logger,
      });
    } catch (err) {
      if (err instanceof RangeError) throw new UsageError(err.message);
      throw toProgramError(err);
    }
    const n = Object.keys(tenants ?? {}).length;
    process.stdout.write(`peercache directory listening on ${server.address.host}:${server.address.port}${certFile ? ' (TLS)' : ''}${n ? `, ${n} tenants` : ''}\n`);
    await withInterrupts('\nstopping the directory\n', (signal) => new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true })));
    await server.close();
    process.stdout.write('peercache directory stopped\n');
    return { exitCode: 0 };
  },
});
