import type { LinuxContainerResources } from '../gen/runtime/v1/api';
import type { OciResources, SpecOpt } from './oci-types';
import { quote } from '../util/bounds';
import { invalidField, toSafeNumber } from './validate';

export type CgroupDriverName = 'cgroupfs' | 'systemd';

/** What this node's cgroup setup can honour. */
export interface CgroupCapabilities {
  /** memory.memsw (v1) or memory.swap.max (v2) exists. */
  swapAvailable?: boolean;
  /** A hugetlb controller is mounted; without one, limits are skipped (nothing could enforce them). */
  hugetlbAvailable?: boolean;
  /** The unified (v2) hierarchy is in use; `unified` keys only mean something there. */
  cgroupV2?: boolean;
}

const CPUSET = /^\d+(-\d+)?(,\d+(-\d+)?)*$/;
const PAGE_SIZE = /^\d+(KB|MB|GB|TB|PB)$/;
const UNIFIED_KEY = /^[a-z_]+\.[a-zA-Z0-9_.]+$/;

/** Default CFS period (100 ms), used when only quotas are known. */
export const DEFAULT_CPU_PERIOD = 100_000n;

/**
 * Translates CRI resources into OCI cgroup settings, with 0/"" meaning
 * "not set" as the CRI defines. Memory swap defaults to the memory limit
 * (no swap) when the node can account swap, so a pod never swaps unless
 * asked to.
 */
export function resourcesToOci(r: LinuxContainerResources, field: string, caps: CgroupCapabilities = {}): OciResources {
  const out: OciResources = {};
  const cpu: NonNullable<OciResources['cpu']> = {};
  const memory: NonNullable<OciResources['memory']> = {};

  if (r.cpuPeriod < 0n) throw invalidField(`${field}.cpu_period`, 'must not be negative');
  if (r.cpuPeriod !== 0n) {
    // The kernel's CFS limits: 1 ms to 1 s.
    if (r.cpuPeriod < 1000n || r.cpuPeriod > 1_000_000n) throw invalidField(`${field}.cpu_period`, 'must be between 1000 and 1000000 microseconds');
    cpu.period = toSafeNumber(r.cpuPeriod, `${field}.cpu_period`);
  }
  if (r.cpuQuota < -1n) throw invalidField(`${field}.cpu_quota`, 'must be -1 (unlimited), 0 (unset) or positive');
  if (r.cpuQuota > 0n && r.cpuQuota < 1000n) throw invalidField(`${field}.cpu_quota`, 'must be at least 1000 microseconds');
  if (r.cpuQuota !== 0n) cpu.quota = toSafeNumber(r.cpuQuota, `${field}.cpu_quota`);
  if (r.cpuShares < 0n) throw invalidField(`${field}.cpu_shares`, 'must not be negative');
  if (r.cpuShares !== 0n) cpu.shares = toSafeNumber(r.cpuShares, `${field}.cpu_shares`);
  if (r.cpusetCpus !== '') {
    if (!CPUSET.test(r.cpusetCpus)) throw invalidField(`${field}.cpuset_cpus`, `invalid cpu list ${quote(r.cpusetCpus)}`);
    cpu.cpus = r.cpusetCpus;
  }
  if (r.cpusetMems !== '') {
    if (!CPUSET.test(r.cpusetMems)) throw invalidField(`${field}.cpuset_mems`, `invalid memory node list ${quote(r.cpusetMems)}`);
    cpu.mems = r.cpusetMems;
  }

  if (r.memoryLimitInBytes < 0n) throw invalidField(`${field}.memory_limit_in_bytes`, 'must not be negative');
  if (r.memorySwapLimitInBytes < -1n) throw invalidField(`${field}.memory_swap_limit_in_bytes`, 'must be -1 (unlimited), 0 (unset) or positive');
  if (r.memoryLimitInBytes !== 0n) {
    memory.limit = toSafeNumber(r.memoryLimitInBytes, `${field}.memory_limit_in_bytes`);
    if (r.memorySwapLimitInBytes === 0n && caps.swapAvailable) memory.swap = memory.limit;
  }
  if (r.memorySwapLimitInBytes !== 0n && caps.swapAvailable) {
    // memory.memsw is memory + swap, so it can never be below the memory limit.
    if (r.memorySwapLimitInBytes > 0n && r.memoryLimitInBytes > 0n && r.memorySwapLimitInBytes < r.memoryLimitInBytes) {
      throw invalidField(`${field}.memory_swap_limit_in_bytes`, 'must not be below memory_limit_in_bytes');
    }
    memory.swap = toSafeNumber(r.memorySwapLimitInBytes, `${field}.memory_swap_limit_in_bytes`);
  }

  const hugepages = r.hugepageLimits.map((h, i) => {
    if (!PAGE_SIZE.test(h.pageSize)) throw invalidField(`${field}.hugepage_limits[${i}].page_size`, `invalid page size ${quote(h.pageSize)}`);
    if (h.limit < 0n) throw invalidField(`${field}.hugepage_limits[${i}].limit`, 'must not be negative');
    return { pageSize: h.pageSize, limit: toSafeNumber(h.limit, `${field}.hugepage_limits[${i}].limit`) };
  });
  if (hugepages.length > 0 && caps.hugetlbAvailable) out.hugepageLimits = hugepages;

  const unifiedKeys = Object.keys(r.unified);
  if (unifiedKeys.length > 0) {
    for (const k of unifiedKeys) {
      if (!UNIFIED_KEY.test(k)) throw invalidField(`${field}.unified[${quote(k)}]`, 'is not a cgroup v2 file name');
    }
    if (!caps.cgroupV2) throw invalidField(`${field}.unified`, 'needs the cgroup v2 hierarchy, and this node uses cgroup v1');
    out.unified = { ...r.unified };
  }

  if (Object.keys(cpu).length > 0) out.cpu = cpu;
  if (Object.keys(memory).length > 0) out.memory = memory;
  return out;
}

/** Merges resource settings into the spec, keeping its device rules. */
export function withResources(res: OciResources): SpecOpt {
  return (spec) => {
    const current = (spec.linux.resources ??= {});
    if (res.cpu) current.cpu = { ...current.cpu, ...res.cpu };
    if (res.memory) current.memory = { ...current.memory, ...res.memory };
    if (res.pids) current.pids = { ...res.pids };
    if (res.hugepageLimits) current.hugepageLimits = [...res.hugepageLimits];
    if (res.unified) current.unified = { ...current.unified, ...res.unified };
  };
}

/**
 * runc cannot give a child a lower oom_score_adj than its own without
 * CAP_SYS_RESOURCE, which these machines lack; asking anyway makes the
 * container fail to start. So the value is raised to `min` (the adapter's
 * own /proc/self/oom_score_adj, read by the caller), which is what
 * containerd's restrict_oom_score_adj does.
 */
export function clampOomScoreAdj(value: number, min: number | undefined, field = 'linux.resources.oom_score_adj'): number {
  if (!Number.isInteger(value) || value < -1000 || value > 1000) {
    throw invalidField(field, `${value} is outside -1000..1000`);
  }
  return min !== undefined && value < min ? Math.min(min, 1000) : value;
}

export function withOomScoreAdj(value: number, min: number | undefined, field?: string): SpecOpt {
  return (spec) => {
    spec.process.oomScoreAdj = clampOomScoreAdj(value, min, field);
  };
}

/** The pause container's OOM score: it holds the pod's namespaces, so it should die last. */
export const SANDBOX_OOM_SCORE_ADJ = -998;

/** Low CPU weight for the pause container: it only sleeps, and should never win contention. */
export const SANDBOX_CPU_SHARES = 2;

/**
 * The cgroup path runc receives.
 * - cgroupfs: `<parent>/<id>`, an absolute path in every hierarchy;
 * - systemd: `<slice>:<prefix>:<id>`, runc's format for "a scope named
 *   <prefix>-<id>.scope under <slice>". The kubelet sends the parent as a
 *   path of slices (or just the last slice); runc wants the last one.
 * With no parent (kubelet without per-pod cgroups) containers still get a
 * cgroup of their own under one the adapter owns.
 */
export function cgroupsPath(parent: string, id: string, driver: CgroupDriverName, field = 'linux.cgroup_parent'): string {
  if (id === '' || id.includes('/')) throw invalidField('id', `invalid container id ${quote(id)}`);
  // The parent names a directory under every cgroup hierarchy (also for the pod stats reader): no step may leave it.
  if (/[\p{Cc}\s]/u.test(parent) || parent.split('/').some((part) => part === '..' || part === '.')) {
    throw invalidField(field, `${quote(parent, 256)} must not contain whitespace, control characters, "." or ".." steps`);
  }
  if (driver === 'systemd') {
    if (parent === '') return `system.slice:cri-adapter:${id}`;
    const base = parent.replace(/\/+$/, '').split('/').pop() ?? '';
    if (!base.endsWith('.slice')) throw invalidField(field, `${quote(parent)} is not a systemd slice (the systemd cgroup driver is in use)`);
    return `${base}:cri-adapter:${id}`;
  }
  if (parent === '') return `/cri-adapter/${id}`;
  if (!parent.startsWith('/')) throw invalidField(field, `${quote(parent)} must be an absolute cgroup path`);
  return `${parent.replace(/\/+$/, '')}/${id}`;
}

export function withCgroupsPath(path: string): SpecOpt {
  return (spec) => {
    spec.linux.cgroupsPath = path;
  };
}

/**
 * What the whole pod may use: the containers' sum plus the pod overhead.
 * CPU quotas are added after scaling the overhead's quota to the pod's
 * period; a missing (0) or unlimited (-1) side makes the sum unlimited,
 * except that an overhead alone stands for itself.
 */
export function podResourceTotals(
  resources: LinuxContainerResources | undefined,
  overhead: LinuxContainerResources | undefined,
): { cpuPeriod: bigint; cpuQuota: bigint; cpuShares: bigint; memoryLimitInBytes: bigint } {
  const zero = { cpuPeriod: 0n, cpuQuota: 0n, cpuShares: 0n, memoryLimitInBytes: 0n };
  if (!resources && !overhead) return zero;
  if (!resources) return { ...zero, cpuPeriod: overhead!.cpuPeriod, cpuQuota: overhead!.cpuQuota, cpuShares: overhead!.cpuShares, memoryLimitInBytes: overhead!.memoryLimitInBytes };
  if (!overhead) return { cpuPeriod: resources.cpuPeriod, cpuQuota: resources.cpuQuota, cpuShares: resources.cpuShares, memoryLimitInBytes: resources.memoryLimitInBytes };

  const period = resources.cpuPeriod > 0n ? resources.cpuPeriod : overhead.cpuPeriod > 0n ? overhead.cpuPeriod : DEFAULT_CPU_PERIOD;
  let quota = 0n;
  if (resources.cpuQuota > 0n) {
    if (overhead.cpuQuota > 0n) {
      const overheadPeriod = overhead.cpuPeriod > 0n ? overhead.cpuPeriod : DEFAULT_CPU_PERIOD;
      const scaled = (overhead.cpuQuota * period + overheadPeriod - 1n) / overheadPeriod;
      quota = resources.cpuQuota + scaled;
    } else if (overhead.cpuQuota === 0n) {
      quota = resources.cpuQuota;
    } else {
      quota = -1n;
    }
  } else if (resources.cpuQuota < 0n) {
    quota = -1n;
  }
  const memory = resources.memoryLimitInBytes > 0n ? resources.memoryLimitInBytes + (overhead.memoryLimitInBytes > 0n ? overhead.memoryLimitInBytes : 0n) : 0n;
  return {
    cpuPeriod: quota !== 0n ? period : resources.cpuPeriod,
    cpuQuota: quota,
    cpuShares: resources.cpuShares + overhead.cpuShares,
    memoryLimitInBytes: memory,
  };
}
