/** A loopback port free at the time of the call: the bench's own helper, for tests and scripts alike. */
export { freePort } from '../../src/bench/engine/net.js';
