/**
 * The tcp data-plane server's limits: their defaults and their validation. What each bounds is
 * documented on TcpServerLimits (../types.ts) and how they are enforced in server.ts.
 */
import { TransportError, type TcpServerLimits } from '../types.js';
import { MAX_REASON_BYTES, RESPONSE_HEADER } from './wire.js';

/** The defaults of every server limit (override per node with TransportOptions.tcpLimits). */
export const TCP_SERVER_LIMITS: Readonly<TcpServerLimits> = Object.freeze({
  helloTimeoutMs: 5_000,
  idleTimeoutMs: 60_000,
  maxConnections: 1_024,
  maxQueuedAnswerBytes: 32 << 20,
  maxTotalAnswerBytes: 256 << 20,
  maxUnauthenticated: 64,
  authTimeoutMs: 10_000,
});

/** Answer bytes (with overhead) one unauthenticated connection may have queued: its refusals and HELLO answer. */
export const UNAUTHENTICATED_ANSWER_BYTES = 64 << 10;

/** What one queued answer costs beyond its bytes (its write request and callback): many tiny answers count. */
export const ANSWER_OVERHEAD_BYTES = 1024;
const MAX_TIMER_MS = 0x7fffffff;
/** The smallest answer budget accepted: an error with its longest reason fits. */
const MIN_ANSWER_BUDGET = RESPONSE_HEADER + MAX_REASON_BYTES + ANSWER_OVERHEAD_BYTES;

/** The limits `given` asks for over the defaults; throws ERR_INVALID_ARG naming a bad one. */
export function serverLimits(given: Partial<TcpServerLimits> | undefined): TcpServerLimits {
  const limits = { ...TCP_SERVER_LIMITS, ...given };
  const mins: Record<keyof TcpServerLimits, number> = {
    helloTimeoutMs: 1,
    idleTimeoutMs: 1,
    maxConnections: 1,
    maxQueuedAnswerBytes: MIN_ANSWER_BUDGET,
    maxTotalAnswerBytes: MIN_ANSWER_BUDGET,
    maxUnauthenticated: 1,
    authTimeoutMs: 1,
  };
  for (const key of Object.keys(mins) as (keyof TcpServerLimits)[]) {
    const v = limits[key];
    const max = key.endsWith('Ms') ? MAX_TIMER_MS : Number.MAX_SAFE_INTEGER;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < mins[key] || v > max) {
      throw new TransportError('ERR_INVALID_ARG', `tcpLimits.${key} must be an integer from ${mins[key]} to ${max} (got ${String(v)})`);
    }
  }
  return limits;
}
