/**
 * bench-attach.ts's publisher: allocates a UCX region of argv[2] bytes over shm (UCX's allocation
 * order as configured), writes only its first and last 4 KiB (the rest stays unbacked: sizes past
 * this host's memory are measured without using it), prints {address, descriptor, allocMs} and
 * idles until stdin ends.
 */
import { UcxTransport } from '../../src/transport/ucx.js';

const bytes = Number(process.argv[2]);
const node = UcxTransport.open({ protocol: 'shm' });
const t0 = performance.now();
const region = node.allocate(bytes);
const allocMs = performance.now() - t0;
const view = (offset: number) => region.view(offset, 4096);
view(0).fill(0x5a);
view(bytes - 4096).fill(0xa5);
console.log(JSON.stringify({ address: Buffer.from(node.address()).toString('base64'), descriptor: Buffer.from(region.descriptor()).toString('base64'), allocMs }));
process.stdin.resume();
process.stdin.on('end', () => {
  region.free();
  void node.close().then(() => process.exit(0));
});
