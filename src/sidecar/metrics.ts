/**
 * The sidecar's own Prometheus metrics, beside the store's (store/metrics.ts) on the same
 * /metrics: connections, requests, refusals, mapped client pools. Read from the server at scrape time.
 */
import type { Registry } from 'prom-client';
import { pulledMetric } from '../store/pulled-metric.js';
import type { SidecarServer } from './server.js';

export function registerSidecarMetrics(registry: Registry, server: () => SidecarServer | null): void {
  const gauge = (name: string, help: string, read: (s: SidecarServer) => number) =>
    pulledMetric('gauge', registry, name, help, [], (emit) => {
      const s = server();
      emit(s ? read(s) : 0);
    });
  const counter = (name: string, help: string, read: (s: SidecarServer) => number) =>
    pulledMetric('counter', registry, name, help, [], (emit) => {
      const s = server();
      if (s) emit(read(s));
    });
  gauge('peercache_sidecar_connections', 'Client connections open on the Unix socket.', (s) => s.connectionCount);
  gauge('peercache_sidecar_pools', 'Client host pools mapped (one per file, shared by its connections).', (s) => s.mappings.count);
  gauge('peercache_sidecar_mapped_bytes', 'Bytes of client host pools mapped.', (s) => s.mappings.mappedBytes);
  counter('peercache_sidecar_connections_total', 'Connections accepted.', (s) => s.counters.connections);
  counter('peercache_sidecar_connections_refused_total', 'Connections refused (--max-connections).', (s) => s.counters.connectionsRefused);
  counter('peercache_sidecar_requests_total', 'Requests served.', (s) => s.counters.requests);
  counter('peercache_sidecar_bad_requests_total', 'Requests answered with an error (bad input).', (s) => s.counters.badRequests);
  counter('peercache_sidecar_busy_poll_seconds_total', 'Seconds spent polling the socket after answers (--busy-poll-us).', (s) => s.busyPoll.spunSeconds);
  gauge('peercache_sidecar_lanes', 'Connections with a lane (polling clients; see docs/tuning.md).', (s) => s.laneCount);
  counter('peercache_sidecar_lane_requests_total', 'Requests taken from lanes instead of the socket.', (s) => s.counters.laneRequests);
  counter('peercache_sidecar_lane_wakeups_total', 'Lane answers whose client was not polling and was woken by an event frame.', (s) => s.counters.laneWakeups);
  counter('peercache_sidecar_protocol_errors_total', 'Connections closed for a protocol violation.', (s) => s.counters.protocolErrors);
  counter('peercache_sidecar_closed_not_reading_total', 'Connections closed for leaving their answers unread.', (s) => s.counters.closedNotReading);
  counter('peercache_sidecar_idle_closed_total', 'Connections closed for making no request after hello in time.', (s) => s.counters.closedIdle);
  counter('peercache_sidecar_idle_evicted_total', 'Idle connections closed to make room for a new one (--max-connections, --idle-evict-ms).', (s) => s.counters.evictedIdle);
}
