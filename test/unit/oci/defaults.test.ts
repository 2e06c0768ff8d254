import { DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_PATH_ENV, DEFAULT_READONLY_PATHS, defaultMounts, newBaseSpec } from '../../../src/oci/defaults';
import { applyOpts, OCI_VERSION } from '../../../src/oci/oci-types';

describe('newBaseSpec', () => {
  const spec = newBaseSpec();

  it('is an OCI 1.0.2 spec with a relative rootfs and PATH', () => {
    expect(spec.ociVersion).toBe(OCI_VERSION);
    expect(spec.ociVersion).toBe('1.0.2');
    expect(spec.root).toEqual({ path: 'rootfs' });
    expect(spec.process.env).toEqual([DEFAULT_PATH_ENV]);
    expect(spec.process.cwd).toBe('/');
    expect(spec.process.user).toEqual({ uid: 0, gid: 0 });
  });

  it('grants the fourteen default capabilities in bounding, effective and permitted only', () => {
    expect(DEFAULT_CAPABILITIES).toHaveLength(14);
    expect(spec.process.capabilities).toEqual({
      bounding: [...DEFAULT_CAPABILITIES],
      effective: [...DEFAULT_CAPABILITIES],
      permitted: [...DEFAULT_CAPABILITIES],
    });
    expect(DEFAULT_CAPABILITIES).toContain('CAP_NET_BIND_SERVICE');
    expect(DEFAULT_CAPABILITIES).not.toContain('CAP_SYS_ADMIN');
  });

  it('sets no rlimits, no seccomp, no apparmor, and allows privilege escalation until asked', () => {
    expect(spec.process.rlimits).toBeUndefined();
    expect(spec.linux.seccomp).toBeUndefined();
    expect(spec.process.apparmorProfile).toBeUndefined();
    expect(spec.process.noNewPrivileges).toBe(false);
  });

  it('has the default mounts, without /run, with read-only sysfs and cgroupfs', () => {
    expect(spec.mounts.map((m) => m.destination)).toEqual(['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup']);
    expect(spec.mounts.find((m) => m.destination === '/sys')?.options).toContain('ro');
    expect(spec.mounts.find((m) => m.destination === '/sys/fs/cgroup')).toEqual({
      destination: '/sys/fs/cgroup',
      type: 'cgroup',
      source: 'cgroup',
      options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'],
    });
    expect(spec.mounts.find((m) => m.destination === '/dev/pts')?.options).toEqual(
      expect.arrayContaining(['newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5']),
    );
  });

  it('masks and write-protects the usual /proc and /sys entries', () => {
    expect(spec.linux.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS]);
    expect(spec.linux.maskedPaths).toContain('/proc/kcore');
    expect(spec.linux.readonlyPaths).toEqual([...DEFAULT_READONLY_PATHS]);
    expect(spec.linux.readonlyPaths).toContain('/proc/sys');
  });

  it('denies all devices in the device cgroup by default and creates all namespaces', () => {
    expect(spec.linux.resources?.devices).toEqual([{ allow: false, access: 'rwm' }]);
    expect(spec.linux.namespaces?.map((n) => n.type).sort()).toEqual(['ipc', 'mount', 'network', 'pid', 'uts']);
  });

  it('returns independent copies', () => {
    const a = newBaseSpec();
    a.mounts.pop();
    a.process.capabilities!.bounding!.pop();
    expect(newBaseSpec().mounts).toHaveLength(defaultMounts().length);
    expect(newBaseSpec().process.capabilities!.bounding).toHaveLength(14);
  });

  it('serialises to plain JSON with no undefined or null values', () => {
    const json = JSON.stringify(spec);
    expect(json).not.toContain('null');
    expect(JSON.parse(json)).toEqual(spec);
  });

  it('takes a custom rootfs path', () => {
    expect(newBaseSpec('/abs/rootfs').root.path).toBe('/abs/rootfs');
  });
});

describe('applyOpts', () => {
  it('applies options left to right', () => {
    const spec = applyOpts(
      newBaseSpec(),
      (s) => void (s.hostname = 'a'),
      (s) => void (s.hostname = `${s.hostname}b`),
    );
    expect(spec.hostname).toBe('ab');
  });
});
