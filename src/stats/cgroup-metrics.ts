/**
 * containerd task metrics (a cgroup v1 or v2 sample wrapped in an Any) turned
 * into the CRI's CPU, memory and process figures. Pure: the rate of CPU use
 * needs the previous sample, which the caller keeps.
 *
 * The definitions follow what the kubelet and cAdvisor mean by them, so that
 * eviction and `kubectl top` read the same numbers as on containerd's plugin:
 * - working set = usage minus inactive file pages (page cache the kernel can
 *   drop first), never below zero;
 * - available = limit minus working set, only when a limit is set;
 * - rss = anonymous memory (v1 total_rss, v2 anon).
 */
import { nowNs } from '../util/time';
import { Metrics as V1Metrics } from '../gen/containerd/cgroups/v1/metrics';
import { Metrics as V2Metrics } from '../gen/containerd/cgroups/v2/metrics';
import type { Metric } from '../gen/containerd/types/metrics';
import type { Timestamp } from '../gen/google/protobuf/timestamp';

export const CGROUPS_V1_METRICS = 'io.containerd.cgroups.v1.Metrics';
export const CGROUPS_V2_METRICS = 'io.containerd.cgroups.v2.Metrics';

/** One task's sample, independent of the cgroup version. */
export interface TaskSample {
  id: string;
  /** Nanoseconds since the epoch. */
  timestampNs: bigint;
  cpuUsageNs: bigint;
  memory: {
    usage: bigint;
    workingSet: bigint;
    rss: bigint;
    pageFaults: bigint;
    majorPageFaults: bigint;
    /** undefined when the cgroup has no memory limit. */
    limit?: bigint;
  };
  /** Processes (v1: tasks in the pids controller) in the cgroup. */
  processes: bigint;
  /** The finer figures cAdvisor-style metrics report; only samples decoded from containerd's task metrics carry them. */
  detail?: CgroupDetail;
}

/** Figures of one cgroup beyond the CRI stats, as the cAdvisor metric families name them. */
export interface CgroupDetail {
  cpuUserNs: bigint;
  cpuSystemNs: bigint;
  cfsPeriods: bigint;
  cfsThrottledPeriods: bigint;
  cfsThrottledNs: bigint;
  /** Page cache. */
  cache: bigint;
  mappedFile: bigint;
  swap: bigint;
  /** v1: times usage hit the limit; v2: memory.events "max". */
  failcnt: bigint;
  maxUsage: bigint;
  oomKills: bigint;
  /** 0 when the pids controller sets no limit. */
  pidsLimit: bigint;
}

/**
 * Limits at or above this are "no limit": v1 reports PAGE_COUNTER_MAX pages
 * (0x7FFFFFFFFFFFF000 on 4 KiB pages), v2 reports "max" as 2^64-1.
 */
const UNLIMITED_FROM = 1n << 62n;

export function timestampToNs(ts: Timestamp | undefined): bigint {
  if (!ts) return 0n;
  return ts.seconds * 1_000_000_000n + BigInt(ts.nanos);
}

/** The raw figures of one cgroup, as either cgroup version names them. */
export interface CgroupFigures {
  cpuUsageNs: bigint;
  memoryUsage: bigint;
  inactiveFile: bigint;
  rss: bigint;
  pageFaults: bigint;
  majorPageFaults: bigint;
  /** As the kernel reports it: 0 or a huge value mean no limit. */
  memoryLimit: bigint;
  processes: bigint;
}

/**
 * One sample from a cgroup's figures, whoever read them (containerd's task
 * metrics, or the pod cgroup's files): the working set and the limit are
 * derived here, once, the way the kubelet and cAdvisor define them.
 */
export function toTaskSample(id: string, timestampNs: bigint, f: CgroupFigures): TaskSample {
  return {
    id,
    timestampNs,
    cpuUsageNs: f.cpuUsageNs,
    memory: {
      usage: f.memoryUsage,
      workingSet: f.memoryUsage > f.inactiveFile ? f.memoryUsage - f.inactiveFile : 0n,
      rss: f.rss,
      pageFaults: f.pageFaults,
      majorPageFaults: f.majorPageFaults,
      limit: f.memoryLimit > 0n && f.memoryLimit < UNLIMITED_FROM ? f.memoryLimit : undefined,
    },
    processes: f.processes,
  };
}

/** The type name of an Any's URL ("types.example/x.y.Z" and "x.y.Z" both give "x.y.Z"). */
function typeName(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf('/') + 1);
}

/** Decodes one containerd Metric; undefined for a payload of a kind we do not know. */
export function decodeTaskMetric(metric: Metric): TaskSample | undefined {
  const data = metric.data;
  if (!data) return undefined;
  const timestampNs = timestampToNs(metric.timestamp) || nowNs();
  const kind = typeName(data.typeUrl);
  if (kind === CGROUPS_V1_METRICS) {
    const m = V1Metrics.decode(data.value);
    const mem = m.memory;
    const detail: CgroupDetail = {
      cpuUserNs: m.cpu?.usage?.user ?? 0n,
      cpuSystemNs: m.cpu?.usage?.kernel ?? 0n,
      cfsPeriods: m.cpu?.throttling?.periods ?? 0n,
      cfsThrottledPeriods: m.cpu?.throttling?.throttledPeriods ?? 0n,
      cfsThrottledNs: m.cpu?.throttling?.throttledTime ?? 0n,
      cache: mem?.totalCache ?? 0n,
      mappedFile: mem?.totalMappedFile ?? 0n,
      // v1 reports memory+swap; swap alone is the difference.
      swap: swapOnly(mem?.swap?.usage ?? 0n, mem?.usage?.usage ?? 0n),
      failcnt: mem?.usage?.failcnt ?? 0n,
      maxUsage: mem?.usage?.max ?? 0n,
      oomKills: m.memoryOomControl?.oomKill ?? 0n,
      pidsLimit: m.pids?.limit ?? 0n,
    };
    return withDetail(detail, toTaskSample(metric.id, timestampNs, {
      cpuUsageNs: m.cpu?.usage?.total ?? 0n,
      memoryUsage: mem?.usage?.usage ?? 0n,
      inactiveFile: mem?.totalInactiveFile ?? 0n,
      rss: mem?.totalRss ?? 0n,
      pageFaults: mem?.totalPgFault ?? 0n,
      majorPageFaults: mem?.totalPgMajFault ?? 0n,
      memoryLimit: mem?.usage?.limit ?? 0n,
      processes: m.pids?.current ?? 0n,
    }));
  }
  if (kind === CGROUPS_V2_METRICS) {
    const m = V2Metrics.decode(data.value);
    const mem = m.memory;
    const detail: CgroupDetail = {
      cpuUserNs: (m.cpu?.userUsec ?? 0n) * 1000n,
      cpuSystemNs: (m.cpu?.systemUsec ?? 0n) * 1000n,
      cfsPeriods: m.cpu?.nrPeriods ?? 0n,
      cfsThrottledPeriods: m.cpu?.nrThrottled ?? 0n,
      cfsThrottledNs: (m.cpu?.throttledUsec ?? 0n) * 1000n,
      cache: mem?.file ?? 0n,
      mappedFile: mem?.fileMapped ?? 0n,
      swap: mem?.swapUsage ?? 0n,
      failcnt: m.memoryEvents?.max ?? 0n,
      // cgroup v2 keeps no high-water mark before memory.peak (not in containerd 1.6's metrics).
      maxUsage: 0n,
      oomKills: m.memoryEvents?.oomKill ?? 0n,
      pidsLimit: m.pids?.limit ?? 0n,
    };
    return withDetail(detail, toTaskSample(metric.id, timestampNs, {
      cpuUsageNs: (m.cpu?.usageUsec ?? 0n) * 1000n,
      memoryUsage: mem?.usage ?? 0n,
      inactiveFile: mem?.inactiveFile ?? 0n,
      rss: mem?.anon ?? 0n,
      pageFaults: mem?.pgfault ?? 0n,
      majorPageFaults: mem?.pgmajfault ?? 0n,
      memoryLimit: mem?.usageLimit ?? 0n,
      processes: m.pids?.current ?? 0n,
    }));
  }
  return undefined;
}

function withDetail(detail: CgroupDetail, sample: TaskSample): TaskSample {
  sample.detail = detail;
  return sample;
}

function swapOnly(memoryAndSwap: bigint, memory: bigint): bigint {
  return memoryAndSwap > memory ? memoryAndSwap - memory : 0n;
}

/** Several samples as one (a pod's tasks); the newest timestamp, limits only if every task has one. */
export function sumSamples(id: string, samples: readonly TaskSample[]): TaskSample | undefined {
  if (samples.length === 0) return undefined;
  const total: TaskSample = {
    id,
    timestampNs: 0n,
    cpuUsageNs: 0n,
    memory: { usage: 0n, workingSet: 0n, rss: 0n, pageFaults: 0n, majorPageFaults: 0n, limit: 0n },
    processes: 0n,
  };
  for (const s of samples) {
    if (s.timestampNs > total.timestampNs) total.timestampNs = s.timestampNs;
    total.cpuUsageNs += s.cpuUsageNs;
    total.memory.usage += s.memory.usage;
    total.memory.workingSet += s.memory.workingSet;
    total.memory.rss += s.memory.rss;
    total.memory.pageFaults += s.memory.pageFaults;
    total.memory.majorPageFaults += s.memory.majorPageFaults;
    total.memory.limit = s.memory.limit === undefined || total.memory.limit === undefined ? undefined : total.memory.limit + s.memory.limit;
    total.processes += s.processes;
  }
  return total;
}

/**
 * CPU use as a rate, from cumulative CPU time: needs the previous sample of
 * the same cgroup. undefined when there is none (or time did not move), so
 * the caller leaves the field unset and the kubelet computes the rate itself
 * rather than reading a false zero.
 */
export function nanoCores(prev: { timestampNs: bigint; cpuUsageNs: bigint } | undefined, cur: TaskSample): bigint | undefined {
  if (!prev || cur.timestampNs <= prev.timestampNs || cur.cpuUsageNs < prev.cpuUsageNs) return undefined;
  return ((cur.cpuUsageNs - prev.cpuUsageNs) * 1_000_000_000n) / (cur.timestampNs - prev.timestampNs);
}

/**
 * Remembers the last sample per cgroup for nanoCores. Entries for IDs that
 * stop being asked about are dropped by prune().
 */
export class CpuRateTracker {
  private readonly last = new Map<string, { timestampNs: bigint; cpuUsageNs: bigint }>();

  /** The rate since the previous sample of `key`, and `sample` becomes the previous one. */
  rate(key: string, sample: TaskSample): bigint | undefined {
    const prev = this.last.get(key);
    const rate = nanoCores(prev, sample);
    if (!prev || sample.timestampNs > prev.timestampNs) {
      this.last.set(key, { timestampNs: sample.timestampNs, cpuUsageNs: sample.cpuUsageNs });
    }
    return rate;
  }

  /** Forgets every key for which `keep` is false. */
  prune(keep: (key: string) => boolean): void {
    for (const key of this.last.keys()) if (!keep(key)) this.last.delete(key);
  }
}
