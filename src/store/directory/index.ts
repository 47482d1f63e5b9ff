/**
 * The directory as the other layers use it: the embedded server, the socket client, the
 * discovery address and the `--directory` choice. RedisDirectory is not here on purpose: it loads
 * ioredis, so it is reached through url.ts's lazy import (a redis:// directory) or `peercache/redis`.
 */
export { DirectoryServer, type DirectoryServerOptions, type DirectoryServerStats } from './server.js';
export { DirectoryClient, DirectoryError } from './client.js';
export { parseDiscoveryAddr } from './open.js';
export { connectDirectoryClient, parseDirectoryChoice } from './url.js';
