/**
 * iperf3 over loopback, the anchor of the tcp ratios: a one-off server on a free port and one
 * client run, both supervised (a killed benchmark leaves neither behind).
 */
import { ChildProc, runChild } from '../../src/bench/child-process.js';
import { freePort } from '../../test/helpers/ports.js';

export interface IperfRate {
  /** GB/s received over all streams. */
  gbps: number;
  /** CPU seconds per GB of the sending (server-like) and receiving side, from iperf3's own figures. */
  serverCpu: number;
  clientCpu: number;
}

interface IperfJson {
  error?: string;
  end?: { sum_received?: { bits_per_second: number }; cpu_utilization_percent: { host_total: number; remote_total: number } };
}

export async function iperf3Loopback(streams: number, seconds: number): Promise<IperfRate> {
  const port = await freePort();
  const server = new ChildProc({ label: 'iperf3 server', command: 'iperf3', args: ['-s', '-1', '-B', '127.0.0.1', '-p', String(port)], lifetime: 'supervised' });
  try {
    for (let i = 0; i < 50; i++) {
      const r = await runChild({ label: 'iperf3 client', command: 'iperf3', args: ['-c', '127.0.0.1', '-p', String(port), '-P', String(streams), '-t', String(seconds), '-J'], lifetime: 'supervised' });
      let parsed: IperfJson = {};
      try {
        parsed = JSON.parse(r.stdout) as IperfJson;
      } catch {
        // not JSON: judged by the message below
      }
      // iperf3 3.12 with -J exits 0 even when it could not connect: its JSON then has "error".
      const end = parsed.end;
      if (r.code === 0 && parsed.error === undefined && end?.sum_received !== undefined) {
        const gbps = end.sum_received.bits_per_second / 8 / 1e9;
        // iperf3's CPU figures: % of one core over the run, sender (host) and receiver (remote).
        return { gbps, serverCpu: end.cpu_utilization_percent.host_total / 100 / gbps, clientCpu: end.cpu_utilization_percent.remote_total / 100 / gbps };
      }
      // Refused: not listening yet. Busy: another run's iperf3 server got the port (shared host).
      if (!/Connection refused|unable to connect|busy/.test(`${parsed.error ?? ''} ${r.stdout} ${r.stderr}`)) throw new Error(`iperf3 failed: ${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`);
      await new Promise((res) => setTimeout(res, 100));
    }
    throw new Error('iperf3 server did not start');
  } finally {
    await server.stop();
  }
}
