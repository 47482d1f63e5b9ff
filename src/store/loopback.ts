/** Whether an address names this host's loopback (127.0.0.0/8, ::1, localhost): reachable from this host only. */
export function isLoopback(addr: string): boolean {
  const a = addr.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  return a === 'localhost' || a === '::1' || /^127\./.test(a) || /^::ffff:127\./.test(a);
}
