/**
 * Interface counters of a pod's network namespace, from /proc/<pid>/net/dev
 * of a process inside it (the sandbox's pause process): the file shows the
 * namespace of the process that is read, so no setns is needed.
 */
import { readFile } from 'node:fs/promises';

export interface InterfaceCounters {
  name: string;
  rxBytes: bigint;
  rxPackets: bigint;
  rxErrors: bigint;
  rxDropped: bigint;
  txBytes: bigint;
  txPackets: bigint;
  txErrors: bigint;
  txDropped: bigint;
}

/**
 * Parses the net/dev table: two header lines, then "name: 16 counters"
 * (8 receive, 8 transmit; bytes, packets, errs and drop are the first four of each half).
 * The loopback interface is left out: the kubelet reports pod traffic, and
 * containerd's plugin leaves lo out too.
 */
export function parseNetDev(text: string): InterfaceCounters[] {
  const out: InterfaceCounters[] = [];
  for (const line of text.split('\n').slice(2)) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const fields = line.slice(colon + 1).trim().split(/\s+/);
    if (!name || name === 'lo' || fields.length < 16 || fields.some((f) => !/^\d+$/.test(f))) continue;
    out.push({
      name,
      rxBytes: BigInt(fields[0]!),
      rxPackets: BigInt(fields[1]!),
      rxErrors: BigInt(fields[2]!),
      rxDropped: BigInt(fields[3]!),
      txBytes: BigInt(fields[8]!),
      txPackets: BigInt(fields[9]!),
      txErrors: BigInt(fields[10]!),
      txDropped: BigInt(fields[11]!),
    });
  }
  return out;
}

/** The counters of the namespace `pid` lives in; undefined when the process is gone. */
export async function readNetDev(pid: number, procRoot = '/proc'): Promise<InterfaceCounters[] | undefined> {
  if (!(pid > 0)) return undefined;
  try {
    return parseNetDev(await readFile(`${procRoot}/${pid}/net/dev`, 'utf8'));
  } catch {
    return undefined;
  }
}
