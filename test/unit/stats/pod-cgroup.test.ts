import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseKeyValues, podCgroupPath, readPodCgroup } from '../../../src/stats/pod-cgroup';
import { nowNs } from '../../../src/util/time';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'cgroup-'));
  dirs.push(root);
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(root, rel)), { recursive: true });
    fs.writeFileSync(path.join(root, rel), text);
  }
  return root;
}

describe('podCgroupPath', () => {
  it('takes a cgroupfs parent as it is, and expands a systemd slice into its ancestors', () => {
    expect(podCgroupPath('/kubepods/burstable/pod1/', 'cgroupfs')).toBe('/kubepods/burstable/pod1');
    expect(podCgroupPath('kubepods-burstable-pod1.slice', 'systemd')).toBe('/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice');
    expect(podCgroupPath('/kubepods.slice/kubepods-pod2.slice', 'systemd')).toBe('/kubepods.slice/kubepods-pod2.slice');
  });

  it('has no pod cgroup without a parent, or with one that does not fit the driver', () => {
    expect(podCgroupPath('', 'cgroupfs')).toBeUndefined();
    expect(podCgroupPath('relative/path', 'cgroupfs')).toBeUndefined();
    expect(podCgroupPath('/not/a/slice', 'systemd')).toBeUndefined();
  });
});

describe('readPodCgroup', () => {
  it('reads cgroup v1 files: CPU time, usage minus inactive file, hierarchy totals, pids', async () => {
    const root = tree({
      'cpuacct/pod/cpuacct.usage': '123456789\n',
      'memory/pod/memory.usage_in_bytes': '50000\n',
      'memory/pod/memory.limit_in_bytes': '9223372036854771712\n',
      'memory/pod/memory.stat': 'inactive_file 1\ntotal_inactive_file 8000\ntotal_rss 30000\ntotal_pgfault 12\ntotal_pgmajfault 3\n',
      'pids/pod/pids.current': '4\n',
    });
    const before = nowNs();
    const sample = await readPodCgroup('p', '/pod', false, root);
    expect(sample?.timestampNs).toBeGreaterThanOrEqual(before);
    expect(sample?.timestampNs).toBeLessThanOrEqual(nowNs());
    expect(sample).toEqual({
      id: 'p',
      timestampNs: sample?.timestampNs,
      cpuUsageNs: 123456789n,
      memory: { usage: 50000n, workingSet: 42000n, rss: 30000n, pageFaults: 12n, majorPageFaults: 3n, limit: undefined },
      processes: 4n,
    });
  });

  it('reads cgroup v2 files, with "max" as no limit and a number as one', async () => {
    const root = tree({
      'pod/cpu.stat': 'usage_usec 2500\nuser_usec 2000\n',
      'pod/memory.current': '9000\n',
      'pod/memory.max': '65536\n',
      'pod/memory.stat': 'anon 4000\ninactive_file 1000\npgfault 11\npgmajfault 2\n',
      'pod/pids.current': '5\n',
    });
    const s = (await readPodCgroup('p', '/pod', true, root))!;
    expect(s.cpuUsageNs).toBe(2_500_000n);
    expect(s.memory).toEqual({ usage: 9000n, workingSet: 8000n, rss: 4000n, pageFaults: 11n, majorPageFaults: 2n, limit: 65536n });
    expect(s.processes).toBe(5n);
  });

  it('gives undefined for a cgroup that is not there', async () => {
    expect(await readPodCgroup('p', '/missing', false, tree({}))).toBeUndefined();
    expect(await readPodCgroup('p', '/missing', true, tree({}))).toBeUndefined();
  });

  it('parses key/value files and skips what is not a number', () => {
    expect([...parseKeyValues('a 1\nb x\n\nc 3 extra\n')]).toEqual([
      ['a', 1n],
      ['c', 3n],
    ]);
  });
});
