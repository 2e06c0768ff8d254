import type { ContainerStats, CpuUsage, MemoryUsage, PodSandboxStats, UInt64Value } from '../gen/runtime/v1/api';
import type { TaskSample } from '../stats/cgroup-metrics';
import type { ContainerUsage, SandboxUsage } from '../stats/service';

const u64 = (value: bigint): UInt64Value => ({ value });

function cpuOf(sample: TaskSample, nanoCores: bigint | undefined): CpuUsage {
  return {
    timestamp: sample.timestampNs,
    usageCoreNanoSeconds: u64(sample.cpuUsageNs),
    // Left unset on the first sample: the kubelet then derives the rate itself.
    usageNanoCores: nanoCores === undefined ? undefined : u64(nanoCores),
  };
}

function memoryOf(sample: TaskSample): MemoryUsage {
  const m = sample.memory;
  return {
    timestamp: sample.timestampNs,
    workingSetBytes: u64(m.workingSet),
    // The spec defines available as limit - working set; with no limit there is nothing to report.
    availableBytes: m.limit === undefined ? undefined : u64(m.limit > m.workingSet ? m.limit - m.workingSet : 0n),
    usageBytes: u64(m.usage),
    rssBytes: u64(m.rss),
    pageFaults: u64(m.pageFaults),
    majorPageFaults: u64(m.majorPageFaults),
  };
}

export function toCriContainerStats(u: ContainerUsage): ContainerStats {
  const r = u.record;
  const layer = u.writableLayer;
  return {
    attributes: { id: r.id, metadata: r.config.metadata, labels: r.config.labels, annotations: r.config.annotations },
    cpu: u.sample && cpuOf(u.sample, u.nanoCores),
    memory: u.sample && memoryOf(u.sample),
    writableLayer: layer && {
      timestamp: layer.timestampNs,
      fsId: { mountpoint: layer.mountpoint },
      usedBytes: u64(layer.usedBytes),
      inodesUsed: u64(layer.inodesUsed),
    },
  };
}

/** The interface CNI set up as the pod's own (the CRI's default name), else the first one. */
const DEFAULT_INTERFACE = 'eth0';

export function toCriPodSandboxStats(u: SandboxUsage): PodSandboxStats {
  const r = u.record;
  const interfaces = (u.network?.interfaces ?? []).map((i) => ({
    name: i.name,
    rxBytes: u64(i.rxBytes),
    rxErrors: u64(i.rxErrors),
    txBytes: u64(i.txBytes),
    txErrors: u64(i.txErrors),
  }));
  const defaultInterface = interfaces.find((i) => i.name === DEFAULT_INTERFACE) ?? interfaces[0];
  return {
    attributes: { id: r.id, metadata: r.config.metadata, labels: r.config.labels, annotations: r.config.annotations },
    linux: {
      cpu: u.sample && cpuOf(u.sample, u.nanoCores),
      memory: u.sample && memoryOf(u.sample),
      network: u.network && {
        timestamp: u.network.timestampNs,
        defaultInterface,
        interfaces: interfaces.filter((i) => i !== defaultInterface),
      },
      process: u.sample && { timestamp: u.sample.timestampNs, processCount: u64(u.sample.processes) },
      containers: u.containers.map(toCriContainerStats),
    },
  };
}
