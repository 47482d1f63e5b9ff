/**
 * The soak's victim node: joins the directory at argv[2] over shm, publishes argv[3] pages under
 * `soak/victim/<i>`, prints {"ready":true} and serves until it is killed (the soak kills it).
 */
import { HostKVPool, PeerCacheStore } from '../../src/index.js';
import { publishedPoolBytes } from '../../src/store/published-pool.js';

const [addr, countArg] = process.argv.slice(2);
const count = Number(countArg ?? 64);
const pageBytes = 131072;
const host = new HostKVPool({ layout: 'mla', pageBytes, pages: count, tokensPerPage: 64 });
const store = await PeerCacheStore.open({ discoveryAddr: addr, protocol: 'shm', hostPool: host, globalSegmentBytes: publishedPoolBytes(count + 8, pageBytes), nodeId: `soak-victim-${process.pid}` });
const keys = Array.from({ length: count }, (_, i) => `soak/victim/${i}`);
await store.batchSetV1(keys, host.tokenIndices(keys.map((_, i) => i)));
console.log(JSON.stringify({ ready: true, pid: process.pid }));
setInterval(() => {}, 1 << 30);
