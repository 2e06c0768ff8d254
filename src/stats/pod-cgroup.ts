/**
 * A pod's own cgroup (the kubelet's per-pod parent), read from the cgroup
 * filesystem. It holds the CPU time of containers that already exited, which
 * a sum over running tasks loses, and it is what cAdvisor reports for a pod.
 * Only with a parent the kubelet set: without one, pods share the adapter's
 * cgroup and have none of their own.
 */
import { nowNs } from '../util/time';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { TaskSample, toTaskSample } from './cgroup-metrics';

/**
 * The pod cgroup's path inside a hierarchy. cgroupfs: the parent as given.
 * systemd: a slice name stands for its ancestors too, one per dash
 * ("kubepods-burstable-pod1.slice" lives in kubepods.slice/kubepods-burstable.slice).
 */
export function podCgroupPath(parent: string, driver: 'cgroupfs' | 'systemd'): string | undefined {
  const trimmed = parent.replace(/\/+$/, '');
  if (trimmed === '') return undefined;
  if (driver === 'cgroupfs') return trimmed.startsWith('/') ? trimmed : undefined;
  const slice = trimmed.split('/').pop()!;
  if (!slice.endsWith('.slice') || slice === '-.slice') return undefined;
  const parts = slice.slice(0, -'.slice'.length).split('-');
  const dirs = parts.map((_, i) => `${parts.slice(0, i + 1).join('-')}.slice`);
  return `/${dirs.join('/')}`;
}

/** "key value" lines (memory.stat, cpu.stat) as numbers. */
export function parseKeyValues(text: string): Map<string, bigint> {
  const out = new Map<string, bigint>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value && /^\d+$/.test(value)) out.set(key, BigInt(value));
  }
  return out;
}

async function readText(file: string): Promise<string | undefined> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
}

function toNumber(text: string | undefined): bigint | undefined {
  const t = text?.trim();
  return t && /^\d+$/.test(t) ? BigInt(t) : undefined;
}

/** The pod cgroup's figures, or undefined when it is not there (or not readable). */
export async function readPodCgroup(
  id: string,
  cgroupPath: string,
  cgroupV2: boolean,
  root = '/sys/fs/cgroup',
): Promise<TaskSample | undefined> {
  const timestampNs = nowNs();
  if (cgroupV2) {
    const dir = path.join(root, cgroupPath);
    const [cpuStat, current, max, memStat, pids] = await Promise.all(
      ['cpu.stat', 'memory.current', 'memory.max', 'memory.stat', 'pids.current'].map((f) => readText(path.join(dir, f))),
    );
    if (cpuStat === undefined || current === undefined) return undefined;
    const mem = parseKeyValues(memStat ?? '');
    return toTaskSample(id, timestampNs, {
      cpuUsageNs: (parseKeyValues(cpuStat).get('usage_usec') ?? 0n) * 1000n,
      memoryUsage: toNumber(current) ?? 0n,
      inactiveFile: mem.get('inactive_file') ?? 0n,
      rss: mem.get('anon') ?? 0n,
      pageFaults: mem.get('pgfault') ?? 0n,
      majorPageFaults: mem.get('pgmajfault') ?? 0n,
      // "max" is not a number: no limit.
      memoryLimit: toNumber(max) ?? 0n,
      processes: toNumber(pids) ?? 0n,
    });
  }
  const [cpuUsage, usageText, limitText, memStat, pids] = await Promise.all([
    readText(path.join(root, 'cpuacct', cgroupPath, 'cpuacct.usage')),
    readText(path.join(root, 'memory', cgroupPath, 'memory.usage_in_bytes')),
    readText(path.join(root, 'memory', cgroupPath, 'memory.limit_in_bytes')),
    readText(path.join(root, 'memory', cgroupPath, 'memory.stat')),
    readText(path.join(root, 'pids', cgroupPath, 'pids.current')),
  ]);
  if (cpuUsage === undefined || usageText === undefined) return undefined;
  const mem = parseKeyValues(memStat ?? '');
  return toTaskSample(id, timestampNs, {
    cpuUsageNs: toNumber(cpuUsage) ?? 0n,
    memoryUsage: toNumber(usageText) ?? 0n,
    inactiveFile: mem.get('total_inactive_file') ?? 0n,
    rss: mem.get('total_rss') ?? 0n,
    pageFaults: mem.get('total_pgfault') ?? 0n,
    majorPageFaults: mem.get('total_pgmajfault') ?? 0n,
    memoryLimit: toNumber(limitText) ?? 0n,
    processes: toNumber(pids) ?? 0n,
  });
}
