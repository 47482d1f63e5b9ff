/** Whether the transports a row's data went over are the ones its protocol promises. */

/** The UCX transport names each protocol is restricted to (native/context.cc), and tcp's own. */
const PROTOCOL_TRANSPORTS: Record<string, RegExp> = {
  shm: /^(posix|sysv|cma|self|knem|xpmem)$/,
  rdma: /^(rc|ud|dc)(_\w+)?$/,
  tcp: /^tcp$/,
};

/**
 * Why a row's transports (the lanes UCX reports, e.g. 'sysv/memory', 'rc_mlx5/mlx5_0:1') are not
 * the ones its protocol promises, or null. No lanes (nothing connected, the noop driver): null.
 */
export function transportMismatch(protocol: string, lanes: readonly string[]): string | null {
  const want = PROTOCOL_TRANSPORTS[protocol];
  if (!want || lanes.length === 0) return null;
  const wrong = lanes.filter((l) => !want.test(l.split('/')[0]));
  return wrong.length ? `the data went over ${wrong.join(', ')}, not ${protocol}'s transports: no figure is published under ${protocol}` : null;
}
