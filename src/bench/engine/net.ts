/** Ports for the bench's own nodes. */
import { createServer } from 'node:net';

/** A TCP port free on `host` at the time of the call (the OS picks it; the socket is closed again). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}
