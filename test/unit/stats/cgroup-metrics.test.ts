import { DeepPartial, Metrics as V1Metrics } from '../../../src/gen/containerd/cgroups/v1/metrics';
import { DeepPartial as DeepPartial2, Metrics as V2Metrics } from '../../../src/gen/containerd/cgroups/v2/metrics';
import type { Metric } from '../../../src/gen/containerd/types/metrics';
import { CpuRateTracker, decodeTaskMetric, nanoCores, sumSamples, TaskSample } from '../../../src/stats/cgroup-metrics';

const TS = { seconds: 1_700_000_000n, nanos: 5 };
const TS_NS = 1_700_000_000_000_000_005n;

function v1(partial: DeepPartial<V1Metrics>, typeUrl = 'io.containerd.cgroups.v1.Metrics'): Metric {
  return { id: 'c1', timestamp: TS, data: { typeUrl, value: Buffer.from(V1Metrics.encode(V1Metrics.fromPartial(partial)).finish()) } };
}

function v2(partial: DeepPartial2<V2Metrics>): Metric {
  return { id: 'c2', timestamp: TS, data: { typeUrl: 'io.containerd.cgroups.v2.Metrics', value: Buffer.from(V2Metrics.encode(V2Metrics.fromPartial(partial)).finish()) } };
}

describe('decodeTaskMetric', () => {
  it('reads a cgroup v1 sample: working set is usage minus inactive file, rss and faults are the hierarchy totals', () => {
    const s = decodeTaskMetric(
      v1({
        cpu: { usage: { total: 123_456_789n } },
        memory: {
          usage: { usage: 50_000_000n, limit: 100_000_000n },
          totalInactiveFile: 8_000_000n,
          inactiveFile: 1n, // the non-hierarchical figure is not the one used
          totalRss: 30_000_000n,
          totalPgFault: 1000n,
          totalPgMajFault: 7n,
        },
        pids: { current: 3n },
      }),
    )!;
    const { detail, ...figures } = s;
    expect(figures).toEqual({
      id: 'c1',
      timestampNs: TS_NS,
      cpuUsageNs: 123_456_789n,
      memory: { usage: 50_000_000n, workingSet: 42_000_000n, rss: 30_000_000n, pageFaults: 1000n, majorPageFaults: 7n, limit: 100_000_000n },
      processes: 3n,
    });
    expect(detail).toBeDefined();
  });

  it('keeps the v1 figures the cAdvisor metrics need: user/kernel CPU, throttling, cache, swap alone, OOM kills', () => {
    const s = decodeTaskMetric(
      v1({
        cpu: { usage: { total: 9n, user: 6n, kernel: 3n }, throttling: { periods: 40n, throttledPeriods: 12n, throttledTime: 777n } },
        memory: {
          usage: { usage: 1000n, max: 1500n, failcnt: 4n },
          swap: { usage: 1300n }, // memory+swap on v1
          totalCache: 200n,
          cache: 1n, // the non-hierarchical figure is not the one used
          totalMappedFile: 50n,
        },
        memoryOomControl: { oomKill: 2n },
        pids: { current: 3n, limit: 64n },
      }),
    )!;
    expect(s.detail).toEqual({
      cpuUserNs: 6n,
      cpuSystemNs: 3n,
      cfsPeriods: 40n,
      cfsThrottledPeriods: 12n,
      cfsThrottledNs: 777n,
      cache: 200n,
      mappedFile: 50n,
      swap: 300n,
      failcnt: 4n,
      maxUsage: 1500n,
      oomKills: 2n,
      pidsLimit: 64n,
    });
  });

  it('keeps the v2 figures in nanoseconds, with memory.events max as failcnt', () => {
    const s = decodeTaskMetric(
      v2({
        cpu: { usageUsec: 9n, userUsec: 6n, systemUsec: 3n, nrPeriods: 5n, nrThrottled: 2n, throttledUsec: 7n },
        memory: { file: 100n, fileMapped: 10n, swapUsage: 20n },
        memoryEvents: { max: 3n, oomKill: 1n },
        pids: { limit: 9n },
      }),
    )!;
    expect(s.detail).toEqual({
      cpuUserNs: 6_000n,
      cpuSystemNs: 3_000n,
      cfsPeriods: 5n,
      cfsThrottledPeriods: 2n,
      cfsThrottledNs: 7_000n,
      cache: 100n,
      mappedFile: 10n,
      swap: 20n,
      failcnt: 3n,
      maxUsage: 0n,
      oomKills: 1n,
      pidsLimit: 9n,
    });
  });

  it('treats the v1 "no limit" value as no limit and never lets the working set go negative', () => {
    const s = decodeTaskMetric(v1({ memory: { usage: { usage: 10n, limit: 0x7ffffffffffff000n }, totalInactiveFile: 20n } }))!;
    expect(s.memory.limit).toBeUndefined();
    expect(s.memory.workingSet).toBe(0n);
  });

  it('reads a cgroup v2 sample, with CPU time in microseconds and "max" as no limit', () => {
    const s = decodeTaskMetric(
      v2({
        cpu: { usageUsec: 2_500n },
        memory: { usage: 9_000n, usageLimit: 18446744073709551615n, inactiveFile: 1_000n, anon: 4_000n, pgfault: 11n, pgmajfault: 2n },
        pids: { current: 5n },
      }),
    )!;
    expect(s.cpuUsageNs).toBe(2_500_000n);
    expect(s.memory).toEqual({ usage: 9_000n, workingSet: 8_000n, rss: 4_000n, pageFaults: 11n, majorPageFaults: 2n, limit: undefined });
    expect(s.processes).toBe(5n);
  });

  it('accepts a type URL with a host prefix, and returns undefined for a payload it does not know', () => {
    expect(decodeTaskMetric(v1({ cpu: { usage: { total: 1n } } }, 'types.containerd.io/io.containerd.cgroups.v1.Metrics'))?.cpuUsageNs).toBe(1n);
    expect(decodeTaskMetric({ id: 'x', timestamp: TS, data: { typeUrl: 'example.Other', value: Buffer.alloc(0) } })).toBeUndefined();
    expect(decodeTaskMetric({ id: 'x', timestamp: TS, data: undefined })).toBeUndefined();
  });
});

function sample(ts: bigint, cpu: bigint, limit?: bigint): TaskSample {
  return { id: 'x', timestampNs: ts, cpuUsageNs: cpu, memory: { usage: 10n, workingSet: 8n, rss: 4n, pageFaults: 2n, majorPageFaults: 1n, limit }, processes: 1n };
}

describe('CPU rate', () => {
  it('is CPU time over wall time in nano-cores, and unknown without an earlier sample', () => {
    expect(nanoCores(undefined, sample(10n, 5n))).toBeUndefined();
    // 0.5 s of CPU in 2 s of wall time is a quarter of a core.
    expect(nanoCores({ timestampNs: 1_000_000_000n, cpuUsageNs: 0n }, sample(3_000_000_000n, 500_000_000n))).toBe(250_000_000n);
    expect(nanoCores({ timestampNs: 5n, cpuUsageNs: 0n }, sample(5n, 9n))).toBeUndefined();
    expect(nanoCores({ timestampNs: 1n, cpuUsageNs: 100n }, sample(5n, 9n))).toBeUndefined(); // counter reset
  });

  it('tracks the previous sample per key and forgets pruned keys', () => {
    const t = new CpuRateTracker();
    expect(t.rate('a', sample(1_000_000_000n, 0n))).toBeUndefined();
    expect(t.rate('a', sample(2_000_000_000n, 1_000_000_000n))).toBe(1_000_000_000n);
    expect(t.rate('b', sample(2_000_000_000n, 1n))).toBeUndefined();
    t.prune((k) => k !== 'a');
    expect(t.rate('a', sample(3_000_000_000n, 1_000_000_000n))).toBeUndefined();
    expect(t.rate('b', sample(3_000_000_000n, 500_000_001n))).toBe(500_000_000n);
  });
});

describe('sumSamples', () => {
  it('adds up a pod\'s tasks, keeps the newest timestamp, and has a limit only if every task has one', () => {
    const total = sumSamples('pod', [sample(5n, 10n, 100n), sample(7n, 20n, 50n)])!;
    expect(total).toEqual({
      id: 'pod',
      timestampNs: 7n,
      cpuUsageNs: 30n,
      memory: { usage: 20n, workingSet: 16n, rss: 8n, pageFaults: 4n, majorPageFaults: 2n, limit: 150n },
      processes: 2n,
    });
    expect(sumSamples('pod', [sample(5n, 10n, 100n), sample(7n, 20n)])!.memory.limit).toBeUndefined();
    expect(sumSamples('pod', [])).toBeUndefined();
  });
});
