/**
 * Processes, threads and open file descriptors of a container, counted from
 * the host: the cgroup of the container's init process (from
 * /proc/<pid>/cgroup) lists every process in it, and /proc/<pid>/task and
 * /proc/<pid>/fd hold each one's threads and descriptors. No containerd call:
 * the kubelet asks for these with every metrics scrape.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

export interface ProcessCounts {
  processes: bigint;
  threads: bigint;
  fileDescriptors: bigint;
}

/**
 * A container with more processes than this is counted from the first ones
 * only (and its counts are a floor): a fork bomb must not make one metrics
 * request read a million directories.
 */
export const MAX_PROCESSES_COUNTED = 4096;

/** The cgroup path of a process in the hierarchy that lists processes: the pids controller (v1) or the unified one (v2). */
export function cgroupOfProcess(procCgroup: string, cgroupV2: boolean): string | undefined {
  for (const line of procCgroup.split('\n')) {
    const first = line.indexOf(':');
    const second = line.indexOf(':', first + 1);
    if (first < 0 || second < 0) continue;
    const controllers = line.slice(first + 1, second);
    const cgroupPath = line.slice(second + 1);
    if (cgroupV2 ? line.startsWith('0::') : controllers.split(',').includes('pids')) return cgroupPath;
  }
  return undefined;
}

async function entries(dir: string): Promise<number> {
  try {
    return (await readdir(dir)).length;
  } catch {
    // The process exited between listing and counting: it has nothing left to count.
    return 0;
  }
}

/** Counts for the cgroup that holds `pid`; undefined when the process or its cgroup is gone. */
export async function readProcessCounts(pid: number, cgroupV2: boolean, cgroupRoot = '/sys/fs/cgroup'): Promise<ProcessCounts | undefined> {
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  let procs: string;
  try {
    const cgroupPath = cgroupOfProcess(await readFile(`/proc/${pid}/cgroup`, 'utf8'), cgroupV2);
    if (cgroupPath === undefined) return undefined;
    const dir = cgroupV2 ? path.join(cgroupRoot, cgroupPath) : path.join(cgroupRoot, 'pids', cgroupPath);
    procs = await readFile(path.join(dir, 'cgroup.procs'), 'utf8');
  } catch {
    return undefined;
  }
  const pids = procs.split('\n').filter((p) => /^\d+$/.test(p)).slice(0, MAX_PROCESSES_COUNTED);
  const [threads, fds] = await Promise.all([
    Promise.all(pids.map((p) => entries(`/proc/${p}/task`))),
    Promise.all(pids.map((p) => entries(`/proc/${p}/fd`))),
  ]);
  const sum = (xs: number[]): bigint => BigInt(xs.reduce((a, b) => a + b, 0));
  return { processes: BigInt(pids.length), threads: sum(threads), fileDescriptors: sum(fds) };
}
