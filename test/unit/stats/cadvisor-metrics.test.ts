import { MetricType } from '../../../src/gen/runtime/v1/api';
import { buildMetrics, FAMILIES, METRIC_DESCRIPTORS } from '../../../src/stats/cadvisor-metrics';
import { toTaskSample } from '../../../src/stats/cgroup-metrics';
import { cgroupOfProcess } from '../../../src/stats/process-counts';

const LABELS = ['cid', 'k8s_c_p', 'img:1', 'p', 'ns', 'c'];

function sample() {
  const s = toTaskSample('cid', 5_000_000_000n, {
    cpuUsageNs: 3_700_000_000n,
    memoryUsage: 1000n,
    inactiveFile: 300n,
    rss: 500n,
    pageFaults: 1n,
    majorPageFaults: 0n,
    memoryLimit: 0n,
    processes: 2n,
  });
  s.detail = {
    cpuUserNs: 2_900_000_000n,
    cpuSystemNs: 800_000_000n,
    cfsPeriods: 40n,
    cfsThrottledPeriods: 12n,
    cfsThrottledNs: 1_500_000_000n,
    cache: 300n,
    mappedFile: 7n,
    swap: 0n,
    failcnt: 3n,
    maxUsage: 1200n,
    oomKills: 1n,
    pidsLimit: 0n,
  };
  return s;
}

const byName = (ms: ReturnType<typeof buildMetrics>, name: string) => ms.filter((m) => m.name === name);

describe('cAdvisor metric families', () => {
  it('have unique names, and every metric built names a described family with matching label counts', () => {
    const names = METRIC_DESCRIPTORS.map((d) => d.name);
    expect(new Set(names).size).toBe(names.length);
    const ms = buildMetrics({
      labels: LABELS,
      nowNs: 9_000_000_000n,
      sample: sample(),
      network: [{ name: 'eth0', rxBytes: 1n, rxPackets: 2n, rxErrors: 3n, rxDropped: 4n, txBytes: 5n, txPackets: 6n, txErrors: 7n, txDropped: 8n }],
      filesystem: { mountpoint: '/var/lib', usedBytes: 10n, capacityBytes: 100n, inodes: 50n, inodesFree: 40n },
      processes: { processes: 2n, threads: 5n, fileDescriptors: 9n },
      spec: { linux: { resources: { cpu: { quota: 50000, period: 100000, shares: 2 }, memory: { limit: 4096, reservation: 1024, swap: 8192 } } } } as never,
      startedAtNs: 4_200_000_000n,
    });
    for (const m of ms) {
      const d = METRIC_DESCRIPTORS.find((x) => x.name === m.name)!;
      expect(m.labelValues).toHaveLength(d.labelKeys.length);
    }
    expect(new Set(ms.map((m) => m.name)).size).toBe(names.length);
  });

  it('turns nanoseconds into whole seconds and keeps counters and gauges apart', () => {
    const ms = buildMetrics({ labels: LABELS, nowNs: 9_000_000_000n, sample: sample() });
    const cpu = byName(ms, 'container_cpu_usage_seconds_total')[0]!;
    expect(cpu.value!.value).toBe(3n);
    expect(cpu.metricType).toBe(MetricType.COUNTER);
    expect(cpu.timestamp).toBe(5_000_000_000n);
    expect(byName(ms, 'container_cpu_user_seconds_total')[0]!.value!.value).toBe(2n);
    expect(byName(ms, 'container_cpu_cfs_throttled_seconds_total')[0]!.value!.value).toBe(1n);
    const ws = byName(ms, 'container_memory_working_set_bytes')[0]!;
    expect(ws.value!.value).toBe(700n);
    expect(ws.metricType).toBe(MetricType.GAUGE);
    expect(byName(ms, 'container_oom_events_total')[0]!.value!.value).toBe(1n);
    expect(byName(ms, 'container_last_seen')[0]!.value!.value).toBe(9n);
  });

  it('adds the interface and device label values after the base ones', () => {
    const ms = buildMetrics({
      labels: LABELS,
      nowNs: 1n,
      network: [{ name: 'eth0', rxBytes: 11n, rxPackets: 0n, rxErrors: 0n, rxDropped: 0n, txBytes: 0n, txPackets: 0n, txErrors: 0n, txDropped: 0n }],
      filesystem: { mountpoint: '/var/lib', usedBytes: 10n, capacityBytes: 100n, inodes: 50n, inodesFree: 40n },
    });
    expect(byName(ms, FAMILIES.rxBytes.name)[0]!.labelValues).toEqual([...LABELS, 'eth0']);
    expect(byName(ms, FAMILIES.fsUsage.name)[0]!.labelValues).toEqual([...LABELS, '/var/lib']);
  });

  it('leaves out what is not known instead of reporting zero', () => {
    const ms = buildMetrics({ labels: LABELS, nowNs: 1n });
    expect(ms.map((m) => m.name)).toEqual(['container_last_seen']);
  });
});

describe('cgroupOfProcess', () => {
  const v1 = '12:pids:/kubepods/pod1/abc\n11:cpu,cpuacct:/kubepods/pod1/abc\n0::/\n';
  it('finds the pids controller path on cgroup v1 and the unified path on v2', () => {
    expect(cgroupOfProcess(v1, false)).toBe('/kubepods/pod1/abc');
    expect(cgroupOfProcess('0::/system.slice/x.scope\n', true)).toBe('/system.slice/x.scope');
    expect(cgroupOfProcess('3:memory:/a\n', false)).toBeUndefined();
  });
});
