/** bench-attach.ts's reader: connect, attach, a first READ of 4 KiB at each end of the region; prints the times (ms) as JSON. argv: address descriptor (base64) bytes */
import { UcxTransport } from '../../src/transport/ucx.js';
const [addr, desc, bytesArg] = process.argv.slice(2);
const bytes = Number(bytesArg);
const node = UcxTransport.open({ protocol: 'shm' });
const dst = new Uint8Array(8192);
const local = node.register(dst);
const t0 = performance.now();
const ep = await node.connect(Buffer.from(addr, 'base64'));
const t1 = performance.now();
const remote = ep.attach(Buffer.from(desc, 'base64'));
const t2 = performance.now();
await ep.read(remote, [local], new Float64Array([0, 0, 0, 4096, bytes - 4096, 0, 4096, 4096]), 2);
const t3 = performance.now();
console.log(JSON.stringify({ connectMs: t1 - t0, attachMs: t2 - t1, firstReadMs: t3 - t2, ok: dst[0] === 0x5a && dst[4096] === 0xa5 }));
await node.close();
