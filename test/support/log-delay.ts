/**
 * How long a container's log line took to reach its CRI log file: the
 * container prints the kernel's uptime (/proc/uptime, 10 ms resolution), the
 * runtime stamps the line when it reads it, and the difference, once both are
 * on the wall clock, is the delay. Shared by the log tests and the bench, so
 * both measure the adapter and containerd's CRI plugin the same way.
 */
import { readFileSync } from 'node:fs';

/** Prints its uptime every `intervalMs` (busybox sh: `read` and `usleep`). */
export function uptimePrinter(intervalMs: number): string[] {
  return ['sh', '-c', `while true; do read up idle < /proc/uptime; echo "$up"; usleep ${intervalMs * 1000}; done`];
}

/** Boot time on the wall clock, in ns; take it after the lines are written (the clocks may be stepped). */
export function bootWallNs(): bigint {
  const [uptime] = readFileSync('/proc/uptime', 'utf8').split(' ');
  return BigInt(Date.now()) * 1_000_000n - BigInt(Math.round(Number(uptime) * 1e9));
}

const RECORD = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z stdout F (\d+\.\d\d)$/;

/** The delays, in ms and sorted, of the uptime lines in a CRI log file. */
export function uptimeLineDelaysMs(logFile: string, bootNs = bootWallNs()): number[] {
  const delays: number[] = [];
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    const m = RECORD.exec(line);
    if (!m) continue;
    const stampedNs = BigInt(Date.parse(`${m[1]}Z`)) * 1_000_000n + BigInt((m[2] ?? '').padEnd(9, '0'));
    const printedNs = bootNs + BigInt(Math.round(Number(m[3]) * 1e9));
    delays.push(Number(stampedNs - printedNs) / 1e6);
  }
  return delays.sort((a, b) => a - b);
}
