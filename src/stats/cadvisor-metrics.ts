/**
 * The cAdvisor-compatible metric families of ListMetricDescriptors and
 * ListPodSandboxMetrics. With PodAndContainerStatsFromCRI the kubelet serves
 * its /metrics/cadvisor endpoint from these, so the names, label keys and
 * units are the ones dashboards and alerts already query (the same families
 * containerd 2.2+ and CRI-O return).
 *
 * Pure: the caller gathers the samples (one containerd metrics call for every
 * task of the request, host reads for the rest) and this module only names
 * and orders them. Values are unsigned integers on the wire, so seconds are
 * whole seconds, as CRI-O reports them.
 */
import type { Metric, MetricDescriptor } from '../gen/runtime/v1/api';
import { MetricType } from '../gen/runtime/v1/api';
import type { OciSpec } from '../oci/oci-types';
import type { TaskSample } from './cgroup-metrics';
import type { InterfaceCounters } from './net-dev';
import type { ProcessCounts } from './process-counts';

/** The labels every family carries, in this order. */
export const BASE_LABEL_KEYS = ['id', 'name', 'image', 'pod', 'namespace', 'container'] as const;
const NETWORK_LABEL_KEYS = [...BASE_LABEL_KEYS, 'interface'];
const DISK_LABEL_KEYS = [...BASE_LABEL_KEYS, 'device'];

/** The `container` label value of pod-level figures, as cAdvisor names the pod's own cgroup. */
export const POD_CONTAINER_LABEL = 'POD';

interface Family {
  name: string;
  help: string;
  type: MetricType;
  labelKeys: readonly string[];
}

const family = (name: string, help: string, type: MetricType, labelKeys: readonly string[] = BASE_LABEL_KEYS): Family => ({
  name,
  help,
  type,
  labelKeys,
});
const { COUNTER, GAUGE } = MetricType;

export const FAMILIES = {
  cpuUsage: family('container_cpu_usage_seconds_total', 'Cumulative CPU time consumed in seconds.', COUNTER),
  cpuUser: family('container_cpu_user_seconds_total', 'Cumulative user CPU time consumed in seconds.', COUNTER),
  cpuSystem: family('container_cpu_system_seconds_total', 'Cumulative system CPU time consumed in seconds.', COUNTER),
  cfsPeriods: family('container_cpu_cfs_periods_total', 'Number of elapsed enforcement period intervals.', COUNTER),
  cfsThrottledPeriods: family('container_cpu_cfs_throttled_periods_total', 'Number of throttled period intervals.', COUNTER),
  cfsThrottledSeconds: family('container_cpu_cfs_throttled_seconds_total', 'Total time duration the container has been throttled.', COUNTER),
  memoryUsage: family('container_memory_usage_bytes', 'Current memory usage in bytes, including all memory regardless of when it was accessed.', GAUGE),
  memoryWorkingSet: family('container_memory_working_set_bytes', 'Current working set in bytes.', GAUGE),
  memoryRss: family('container_memory_rss', 'Size of RSS in bytes.', GAUGE),
  memoryCache: family('container_memory_cache', 'Number of bytes of page cache memory.', GAUGE),
  memorySwap: family('container_memory_swap', 'Container swap usage in bytes.', GAUGE),
  memoryMappedFile: family('container_memory_mapped_file', 'Size of memory mapped files in bytes.', GAUGE),
  memoryFailcnt: family('container_memory_failcnt', 'Number of memory usage hits limits.', COUNTER),
  memoryMaxUsage: family('container_memory_max_usage_bytes', 'Maximum memory usage recorded in bytes.', GAUGE),
  oomEvents: family('container_oom_events_total', 'Count of out of memory events observed for the container.', COUNTER),
  rxBytes: family('container_network_receive_bytes_total', 'Cumulative count of bytes received.', COUNTER, NETWORK_LABEL_KEYS),
  rxPackets: family('container_network_receive_packets_total', 'Cumulative count of packets received.', COUNTER, NETWORK_LABEL_KEYS),
  rxErrors: family('container_network_receive_errors_total', 'Cumulative count of errors encountered while receiving.', COUNTER, NETWORK_LABEL_KEYS),
  rxDropped: family('container_network_receive_packets_dropped_total', 'Cumulative count of packets dropped while receiving.', COUNTER, NETWORK_LABEL_KEYS),
  txBytes: family('container_network_transmit_bytes_total', 'Cumulative count of bytes transmitted.', COUNTER, NETWORK_LABEL_KEYS),
  txPackets: family('container_network_transmit_packets_total', 'Cumulative count of packets transmitted.', COUNTER, NETWORK_LABEL_KEYS),
  txErrors: family('container_network_transmit_errors_total', 'Cumulative count of errors encountered while transmitting.', COUNTER, NETWORK_LABEL_KEYS),
  txDropped: family('container_network_transmit_packets_dropped_total', 'Cumulative count of packets dropped while transmitting.', COUNTER, NETWORK_LABEL_KEYS),
  fsUsage: family('container_fs_usage_bytes', 'Number of bytes that are consumed by the container on this filesystem.', GAUGE, DISK_LABEL_KEYS),
  fsLimit: family('container_fs_limit_bytes', 'Number of bytes that can be consumed by the container on this filesystem.', GAUGE, DISK_LABEL_KEYS),
  fsInodes: family('container_fs_inodes_total', 'Number of inodes on the filesystem.', GAUGE, DISK_LABEL_KEYS),
  fsInodesFree: family('container_fs_inodes_free', 'Number of available inodes on the filesystem.', GAUGE, DISK_LABEL_KEYS),
  processes: family('container_processes', 'Number of processes running inside the container.', GAUGE),
  threads: family('container_threads', 'Number of threads running inside the container.', GAUGE),
  threadsMax: family('container_threads_max', 'Maximum number of threads allowed inside the container, infinity if value is zero.', GAUGE),
  fileDescriptors: family('container_file_descriptors', 'Number of open file descriptors for the container.', GAUGE),
  specCpuShares: family('container_spec_cpu_shares', 'CPU share of the container.', GAUGE),
  specCpuQuota: family('container_spec_cpu_quota', 'CPU quota of the container.', GAUGE),
  specCpuPeriod: family('container_spec_cpu_period', 'CPU period of the container.', GAUGE),
  specMemoryLimit: family('container_spec_memory_limit_bytes', 'Memory limit for the container.', GAUGE),
  specMemoryReservation: family('container_spec_memory_reservation_limit_bytes', 'Memory reservation limit for the container.', GAUGE),
  specMemorySwapLimit: family('container_spec_memory_swap_limit_bytes', 'Memory swap limit for the container.', GAUGE),
  startTime: family('container_start_time_seconds', 'Start time of the container since unix epoch in seconds.', GAUGE),
  lastSeen: family('container_last_seen', 'Last time a container was seen by the exporter.', GAUGE),
} as const;

/** ListMetricDescriptors' answer: it never changes while the daemon runs. */
export const METRIC_DESCRIPTORS: readonly MetricDescriptor[] = Object.values(FAMILIES).map((f) => ({
  name: f.name,
  help: f.help,
  labelKeys: [...f.labelKeys],
}));

/** The writable layer and the filesystem that holds it. */
export interface FilesystemFigures {
  mountpoint: string;
  usedBytes: bigint;
  capacityBytes: bigint;
  inodes: bigint;
  inodesFree: bigint;
}

/** What is known of one container (or of the pod itself) at the time of the request. */
export interface MetricInputs {
  /** id, name, image, pod, namespace, container: in BASE_LABEL_KEYS order. */
  labels: readonly string[];
  nowNs: bigint;
  sample?: TaskSample;
  network?: readonly InterfaceCounters[];
  filesystem?: FilesystemFigures;
  processes?: ProcessCounts;
  spec?: OciSpec;
  /** Nanoseconds since the epoch; 0 when never started. */
  startedAtNs?: bigint;
}

const NS_PER_SECOND = 1_000_000_000n;

/** The metrics of one container or pod, each family present only where its figure is known. */
export function buildMetrics(input: MetricInputs): Metric[] {
  const out: Metric[] = [];
  const labels = [...input.labels];
  const add = (f: Family, value: bigint | number | undefined, timestamp: bigint, extra: readonly string[] = []): void => {
    if (value === undefined) return;
    const v = typeof value === 'number' ? BigInt(Math.max(0, Math.trunc(value))) : value < 0n ? 0n : value;
    out.push({ name: f.name, timestamp, metricType: f.type, labelValues: extra.length ? [...labels, ...extra] : labels, value: { value: v } });
  };
  const s = input.sample;
  if (s) {
    const t = s.timestampNs;
    add(FAMILIES.cpuUsage, s.cpuUsageNs / NS_PER_SECOND, t);
    add(FAMILIES.memoryUsage, s.memory.usage, t);
    add(FAMILIES.memoryWorkingSet, s.memory.workingSet, t);
    add(FAMILIES.memoryRss, s.memory.rss, t);
    const d = s.detail;
    if (d) {
      add(FAMILIES.cpuUser, d.cpuUserNs / NS_PER_SECOND, t);
      add(FAMILIES.cpuSystem, d.cpuSystemNs / NS_PER_SECOND, t);
      add(FAMILIES.cfsPeriods, d.cfsPeriods, t);
      add(FAMILIES.cfsThrottledPeriods, d.cfsThrottledPeriods, t);
      add(FAMILIES.cfsThrottledSeconds, d.cfsThrottledNs / NS_PER_SECOND, t);
      add(FAMILIES.memoryCache, d.cache, t);
      add(FAMILIES.memorySwap, d.swap, t);
      add(FAMILIES.memoryMappedFile, d.mappedFile, t);
      add(FAMILIES.memoryFailcnt, d.failcnt, t);
      add(FAMILIES.memoryMaxUsage, d.maxUsage, t);
      add(FAMILIES.oomEvents, d.oomKills, t);
      add(FAMILIES.threadsMax, d.pidsLimit, t);
    }
  }
  for (const i of input.network ?? []) {
    const t = input.nowNs;
    add(FAMILIES.rxBytes, i.rxBytes, t, [i.name]);
    add(FAMILIES.rxPackets, i.rxPackets, t, [i.name]);
    add(FAMILIES.rxErrors, i.rxErrors, t, [i.name]);
    add(FAMILIES.rxDropped, i.rxDropped, t, [i.name]);
    add(FAMILIES.txBytes, i.txBytes, t, [i.name]);
    add(FAMILIES.txPackets, i.txPackets, t, [i.name]);
    add(FAMILIES.txErrors, i.txErrors, t, [i.name]);
    add(FAMILIES.txDropped, i.txDropped, t, [i.name]);
  }
  const fs = input.filesystem;
  if (fs) {
    const device = [fs.mountpoint];
    add(FAMILIES.fsUsage, fs.usedBytes, input.nowNs, device);
    add(FAMILIES.fsLimit, fs.capacityBytes, input.nowNs, device);
    add(FAMILIES.fsInodes, fs.inodes, input.nowNs, device);
    add(FAMILIES.fsInodesFree, fs.inodesFree, input.nowNs, device);
  }
  const p = input.processes;
  if (p) {
    add(FAMILIES.processes, p.processes, input.nowNs);
    add(FAMILIES.threads, p.threads, input.nowNs);
    add(FAMILIES.fileDescriptors, p.fileDescriptors, input.nowNs);
  }
  const resources = input.spec?.linux?.resources;
  if (resources) {
    // Live values (timestamp 0): the spec is what was asked for, not a measurement.
    add(FAMILIES.specCpuShares, resources.cpu?.shares, 0n);
    add(FAMILIES.specCpuQuota, resources.cpu?.quota, 0n);
    add(FAMILIES.specCpuPeriod, resources.cpu?.period, 0n);
    add(FAMILIES.specMemoryLimit, resources.memory?.limit, 0n);
    add(FAMILIES.specMemoryReservation, resources.memory?.reservation, 0n);
    add(FAMILIES.specMemorySwapLimit, resources.memory?.swap, 0n);
  }
  if (input.startedAtNs) add(FAMILIES.startTime, input.startedAtNs / NS_PER_SECOND, 0n);
  add(FAMILIES.lastSeen, input.nowNs / NS_PER_SECOND, 0n);
  return out;
}
