/**
 * A bare TCP echo server on 127.0.0.1:<port> in its own process (bench-exists.ts: the floor of a
 * round trip from Node on this host). Prints {"ready":true} and serves until stdin ends.
 */
import net from 'node:net';

const port = Number(process.argv[2]);
const server = net.createServer((s) => {
  s.setNoDelay(true);
  s.on('data', (d) => s.write(d));
  s.on('error', () => {});
});
server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ ready: true })));
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
