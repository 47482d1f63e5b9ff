/**
 * The directory of the sidecar's Unix socket. Whoever can write to it can replace the socket and
 * have the host's ranks talk to an impostor, so (as OpenSSH's StrictModes) a directory others may
 * write to is refused unless it has the sticky bit (then nobody else may remove or rename our
 * socket: /tmp). An existing directory is never changed: it may be shared (/tmp, /run) and a
 * symlink may stand for it; one that is absent is created 0700, without following a symlink put in
 * its place.
 */
import { lstatSync, mkdirSync, statSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { ConfigError } from '../errors.js';

/** A socket path that must not be used; the CLI exits 2 with this one line. */
export class SocketPathError extends ConfigError {
  override name = 'SocketPathError';
}

function statOrNull(path: string, follow: boolean): Stats | null {
  try {
    return follow ? statSync(path) : lstatSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new SocketPathError(`{socketPath}: cannot inspect ${path}: ${(err as Error).message}`);
  }
}

/** Makes sure the socket at `socketPath` may live in its directory (see the header); throws SocketPathError. */
export function prepareSocketDirectory(socketPath: string): void {
  const dir = dirname(socketPath);
  const uid = process.getuid?.() ?? 0;
  if (!statOrNull(dir, false)) {
    try {
      mkdirSync(dirname(dir), { recursive: true, mode: 0o700 });
      mkdirSync(dir, { mode: 0o700 }); // not recursive: EEXIST on anything put there since, a symlink included
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new SocketPathError(`{socketPath}: cannot create ${dir}: ${(err as Error).message}`);
    }
  }
  const st = statOrNull(dir, true);
  if (!st || !st.isDirectory()) throw new SocketPathError(`{socketPath}: ${dir} is not a directory`);
  const mode = `0${(st.mode & 0o7777).toString(8)}`;
  if (st.uid !== uid && st.uid !== 0) {
    throw new SocketPathError(`{socketPath}: ${dir} belongs to uid ${st.uid}, not to this user (${uid}) or root: its owner could replace the socket`);
  }
  if ((st.mode & 0o022) !== 0 && (st.mode & 0o1000) === 0) {
    throw new SocketPathError(`{socketPath}: ${dir} (mode ${mode}) is writable by other users and not sticky: they could replace the socket; use a directory only this user can write (e.g. /run/peercache)`);
  }
}
