import { DeepPartial, LinuxContainerResources } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { newBaseSpec } from '../../../src/oci/defaults';
import {
  cgroupsPath,
  clampOomScoreAdj,
  podResourceTotals,
  resourcesToOci,
  withCgroupsPath,
  withOomScoreAdj,
  withResources,
} from '../../../src/oci/resources';

const res = (p: DeepPartial<LinuxContainerResources>) => LinuxContainerResources.fromPartial(p);
const F = 'linux.resources';

describe('resourcesToOci', () => {
  it('maps CPU and memory, leaving zero values unset', () => {
    expect(resourcesToOci(res({}), F)).toEqual({});
    expect(
      resourcesToOci(res({ cpuPeriod: 100000n, cpuQuota: 50000n, cpuShares: 512n, cpusetCpus: '0-1', cpusetMems: '0', memoryLimitInBytes: 268435456n }), F),
    ).toEqual({ cpu: { period: 100000, quota: 50000, shares: 512, cpus: '0-1', mems: '0' }, memory: { limit: 268435456 } });
  });

  it('sets swap equal to the limit when swap is accountable, or the requested swap', () => {
    expect(resourcesToOci(res({ memoryLimitInBytes: 1000n }), F, { swapAvailable: true }).memory).toEqual({ limit: 1000, swap: 1000 });
    expect(resourcesToOci(res({ memoryLimitInBytes: 1000n, memorySwapLimitInBytes: 3000n }), F, { swapAvailable: true }).memory).toEqual({
      limit: 1000,
      swap: 3000,
    });
    expect(resourcesToOci(res({ memoryLimitInBytes: 1000n, memorySwapLimitInBytes: 3000n }), F, { swapAvailable: false }).memory).toEqual({ limit: 1000 });
    expect(() => resourcesToOci(res({ memoryLimitInBytes: 1000n, memorySwapLimitInBytes: 500n }), F, { swapAvailable: true })).toThrow(
      /memory_swap_limit_in_bytes/,
    );
  });

  it('accepts an unlimited quota (-1)', () => {
    expect(resourcesToOci(res({ cpuQuota: -1n }), F).cpu).toEqual({ quota: -1 });
  });

  it('rejects negative or out-of-range values naming the field', () => {
    const cases: [Parameters<typeof res>[0], RegExp][] = [
      [{ cpuShares: -2n }, /linux\.resources\.cpu_shares/],
      [{ cpuQuota: -5n }, /linux\.resources\.cpu_quota/],
      [{ cpuQuota: 10n }, /cpu_quota: must be at least 1000/],
      [{ cpuPeriod: -1n }, /cpu_period/],
      [{ cpuPeriod: 500n }, /cpu_period/],
      [{ memoryLimitInBytes: -1n }, /memory_limit_in_bytes/],
      [{ memorySwapLimitInBytes: -2n }, /memory_swap_limit_in_bytes/],
      [{ cpusetCpus: '0-a' }, /cpuset_cpus/],
      [{ cpusetMems: 'x' }, /cpuset_mems/],
      [{ memoryLimitInBytes: 2n ** 62n }, /out of range/],
    ];
    for (const [r, re] of cases) {
      expect(() => resourcesToOci(res(r), F)).toThrow(InvalidArgumentError);
      expect(() => resourcesToOci(res(r), F)).toThrow(re);
    }
  });

  it('skips hugepage limits without a hugetlb controller, validating them anyway', () => {
    const r = res({ hugepageLimits: [{ pageSize: '2MB', limit: 4194304n }] });
    expect(resourcesToOci(r, F).hugepageLimits).toBeUndefined();
    expect(resourcesToOci(r, F, { hugetlbAvailable: true }).hugepageLimits).toEqual([{ pageSize: '2MB', limit: 4194304 }]);
    expect(() => resourcesToOci(res({ hugepageLimits: [{ pageSize: '2M', limit: 1n }] }), F)).toThrow(/hugepage_limits\[0\]\.page_size/);
    expect(() => resourcesToOci(res({ hugepageLimits: [{ pageSize: '2MB', limit: -1n }] }), F)).toThrow(/hugepage_limits\[0\]\.limit/);
  });

  it('passes unified only on cgroup v2 and validates its keys', () => {
    const r = res({ unified: { 'memory.high': '1000000' } });
    expect(resourcesToOci(r, F, { cgroupV2: true }).unified).toEqual({ 'memory.high': '1000000' });
    expect(() => resourcesToOci(r, F, { cgroupV2: false })).toThrow(/linux\.resources\.unified: needs the cgroup v2/);
    expect(() => resourcesToOci(res({ unified: { '../etc': 'x' } }), F, { cgroupV2: true })).toThrow(/unified\["\.\.\/etc"\]/);
  });
});

describe('withResources', () => {
  it('merges into the spec and keeps the device rules', () => {
    const spec = newBaseSpec();
    withResources({ cpu: { shares: 2 } })(spec);
    withResources({ cpu: { quota: 1000 }, memory: { limit: 5 } })(spec);
    expect(spec.linux.resources).toEqual({ devices: [{ allow: false, access: 'rwm' }], cpu: { shares: 2, quota: 1000 }, memory: { limit: 5 } });
  });
});

describe('oom_score_adj', () => {
  it('clamps to the adapter\'s own value, as restrict_oom_score_adj does', () => {
    expect(clampOomScoreAdj(-998, -500)).toBe(-500);
    expect(clampOomScoreAdj(1000, -500)).toBe(1000);
    expect(clampOomScoreAdj(-998, undefined)).toBe(-998);
    expect(clampOomScoreAdj(-998, 0)).toBe(0);
  });

  it('rejects values outside -1000..1000', () => {
    expect(() => clampOomScoreAdj(1001, undefined)).toThrow(/oom_score_adj/);
    expect(() => withOomScoreAdj(-1001, undefined)(newBaseSpec())).toThrow(InvalidArgumentError);
  });

  it('sets process.oomScoreAdj', () => {
    const spec = newBaseSpec();
    withOomScoreAdj(-997, -999)(spec);
    expect(spec.process.oomScoreAdj).toBe(-997);
  });
});

describe('cgroupsPath', () => {
  it('joins parent and id for cgroupfs', () => {
    expect(cgroupsPath('/kubepods/burstable/pod123', 'abc', 'cgroupfs')).toBe('/kubepods/burstable/pod123/abc');
    expect(cgroupsPath('/kubepods/pod1/', 'abc', 'cgroupfs')).toBe('/kubepods/pod1/abc');
    expect(cgroupsPath('', 'abc', 'cgroupfs')).toBe('/cri-adapter/abc');
    expect(() => cgroupsPath('kubepods', 'abc', 'cgroupfs')).toThrow(/linux\.cgroup_parent/);
  });

  it('uses slice:prefix:name for systemd', () => {
    expect(cgroupsPath('/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice', 'abc', 'systemd')).toBe(
      'kubepods-burstable-pod123.slice:cri-adapter:abc',
    );
    expect(cgroupsPath('kubepods-pod1.slice', 'abc', 'systemd')).toBe('kubepods-pod1.slice:cri-adapter:abc');
    expect(cgroupsPath('', 'abc', 'systemd')).toBe('system.slice:cri-adapter:abc');
    expect(() => cgroupsPath('/kubepods/pod1', 'abc', 'systemd')).toThrow(/not a systemd slice/);
  });

  it('is applied by withCgroupsPath', () => {
    const spec = newBaseSpec();
    withCgroupsPath('/x/y')(spec);
    expect(spec.linux.cgroupsPath).toBe('/x/y');
  });
});

describe('podResourceTotals', () => {
  it('adds overhead to the containers\' sum', () => {
    const t = podResourceTotals(
      res({ cpuPeriod: 100000n, cpuQuota: 200000n, cpuShares: 2048n, memoryLimitInBytes: 1000n }),
      res({ cpuPeriod: 50000n, cpuQuota: 25000n, cpuShares: 256n, memoryLimitInBytes: 100n }),
    );
    expect(t).toEqual({ cpuPeriod: 100000n, cpuQuota: 250000n, cpuShares: 2304n, memoryLimitInBytes: 1100n });
  });

  it('stays unlimited when the containers are unlimited', () => {
    const t = podResourceTotals(res({ cpuShares: 2n }), res({ cpuQuota: 25000n, memoryLimitInBytes: 100n }));
    expect(t).toEqual({ cpuPeriod: 0n, cpuQuota: 0n, cpuShares: 2n, memoryLimitInBytes: 0n });
  });

  it('uses either side alone', () => {
    expect(podResourceTotals(undefined, res({ cpuQuota: 5000n, cpuPeriod: 100000n }))).toMatchObject({ cpuQuota: 5000n, cpuPeriod: 100000n });
    expect(podResourceTotals(res({ memoryLimitInBytes: 7n }), undefined)).toMatchObject({ memoryLimitInBytes: 7n });
    expect(podResourceTotals(undefined, undefined)).toEqual({ cpuPeriod: 0n, cpuQuota: 0n, cpuShares: 0n, memoryLimitInBytes: 0n });
  });
});
