import { DeepPartial, Mount, MountPropagation } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { newBaseSpec } from '../../../src/oci/defaults';
import {
  BindMount,
  bindToOci,
  criMountToBind,
  imageVolumeBinds,
  imageVolumesToCreate,
  mergeBinds,
  propagationOption,
  sandboxFileBinds,
  sortMounts,
  withBindMounts,
  withSandboxMounts,
} from '../../../src/oci/mounts';

const mount = (p: DeepPartial<Mount>) => Mount.fromPartial(p);
const opts = { recursiveReadOnlySupported: true };
const bind = (containerPath: string, over: Partial<BindMount> = {}): BindMount => ({
  containerPath,
  hostPath: `/host${containerPath}`,
  readonly: false,
  propagation: 'rprivate',
  recursiveReadOnly: false,
  extraOptions: [],
  ...over,
});

describe('propagation', () => {
  it('maps CRI modes to recursive OCI options', () => {
    expect(propagationOption(MountPropagation.PROPAGATION_PRIVATE, 'f')).toBe('rprivate');
    expect(propagationOption(MountPropagation.PROPAGATION_HOST_TO_CONTAINER, 'f')).toBe('rslave');
    expect(propagationOption(MountPropagation.PROPAGATION_BIDIRECTIONAL, 'f')).toBe('rshared');
    expect(() => propagationOption(7 as MountPropagation, 'f')).toThrow(InvalidArgumentError);
  });
});

describe('criMountToBind', () => {
  it('turns a CRI mount into an rbind with ro/rw', () => {
    const b = criMountToBind(mount({ containerPath: '/data/', hostPath: '/srv/data', readonly: true }), 0, opts);
    expect(b).toEqual({ containerPath: '/data', hostPath: '/srv/data', readonly: true, propagation: 'rprivate', recursiveReadOnly: false, extraOptions: [] });
    expect(bindToOci(b)).toEqual({ destination: '/data', type: 'bind', source: '/srv/data', options: ['rbind', 'rprivate', 'ro'] });
    expect(bindToOci({ ...b, readonly: false }).options).toEqual(['rbind', 'rprivate', 'rw']);
  });

  it('ignores selinux_relabel', () => {
    const b = criMountToBind(mount({ containerPath: '/d', hostPath: '/h', selinuxRelabel: true }), 0, opts);
    expect(bindToOci(b).options).toEqual(['rbind', 'rprivate', 'rw']);
  });

  it('emits rro only for readonly + recursive_read_only + private + runtime support', () => {
    const m = mount({ containerPath: '/d', hostPath: '/h', readonly: true, recursiveReadOnly: true });
    expect(bindToOci(criMountToBind(m, 0, opts)).options).toEqual(['rbind', 'rprivate', 'rro']);
    expect(() => criMountToBind(m, 3, { recursiveReadOnlySupported: false })).toThrow(/mounts\[3\]\.recursive_read_only: .*does not support recursive read-only/);
    expect(() => criMountToBind({ ...m, readonly: false }, 0, opts)).toThrow(/requires readonly/);
    expect(() => criMountToBind({ ...m, propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER }, 0, opts)).toThrow(
      /requires PROPAGATION_PRIVATE/,
    );
  });

  it('validates paths, naming the field', () => {
    expect(() => criMountToBind(mount({ containerPath: '', hostPath: '/h' }), 2, opts)).toThrow(/mounts\[2\]\.container_path/);
    expect(() => criMountToBind(mount({ containerPath: 'rel', hostPath: '/h' }), 0, opts)).toThrow(/container_path/);
    expect(() => criMountToBind(mount({ containerPath: '/', hostPath: '/h' }), 0, opts)).toThrow(/container root/);
    expect(() => criMountToBind(mount({ containerPath: '/d', hostPath: '' }), 0, opts)).toThrow(/mounts\[0\]\.host_path/);
    expect(() => criMountToBind(mount({ containerPath: '/d', hostPath: 'rel' }), 0, opts)).toThrow(/host_path/);
  });

  it('checks host propagation when a lookup is given', () => {
    const lookup = (p: string) => (p === '/shared' ? 'shared' : p === '/slave' ? 'slave' : 'private') as 'shared' | 'slave' | 'private';
    const o = { ...opts, lookupPropagation: lookup };
    const bi = MountPropagation.PROPAGATION_BIDIRECTIONAL;
    const h2c = MountPropagation.PROPAGATION_HOST_TO_CONTAINER;
    expect(criMountToBind(mount({ containerPath: '/d', hostPath: '/shared', propagation: bi }), 0, o).propagation).toBe('rshared');
    expect(() => criMountToBind(mount({ containerPath: '/d', hostPath: '/slave', propagation: bi }), 0, o)).toThrow(/mounts\[0\]\.propagation/);
    expect(criMountToBind(mount({ containerPath: '/d', hostPath: '/slave', propagation: h2c }), 0, o).propagation).toBe('rslave');
    expect(() => criMountToBind(mount({ containerPath: '/d', hostPath: '/other', propagation: h2c }), 0, o)).toThrow(/shared or slave/);
  });

  it('accepts whitelisted mount_options and rejects others', () => {
    const b = criMountToBind(mount({ containerPath: '/d', hostPath: '/h', mountOptions: ['noexec', 'nosuid'] }), 0, opts);
    expect(bindToOci(b).options).toEqual(['rbind', 'rprivate', 'rw', 'noexec', 'nosuid']);
    expect(() => criMountToBind(mount({ containerPath: '/d', hostPath: '/h', mountOptions: ['rw'] }), 0, opts)).toThrow(/mount_options\[0\]/);
  });

  it('refuses idmapped mounts and unresolved image volumes', () => {
    expect(() => criMountToBind(mount({ containerPath: '/d', hostPath: '/h', uidMappings: [{ hostId: 1, containerId: 0, length: 1 }] }), 0, opts)).toThrow(
      InvalidArgumentError,
    );
    const img = mount({ containerPath: '/models', image: { image: 'registry/models:1' } });
    expect(() => criMountToBind(img, 1, opts)).toThrow(/mounts\[1\]\.image/);
    expect(criMountToBind(img, 1, { ...opts, imageMountSources: new Map([[1, '/snap/models']]) }).hostPath).toBe('/snap/models');
  });
});

describe('sortMounts', () => {
  it('puts parents before children, stable otherwise', () => {
    const sorted = sortMounts([
      { destination: '/a/b/c' },
      { destination: '/z' },
      { destination: '/a/b' },
      { destination: '/a' },
      { destination: '/y' },
    ]);
    expect(sorted.map((m) => m.destination)).toEqual(['/z', '/a', '/y', '/a/b', '/a/b/c']);
  });
});

describe('withBindMounts', () => {
  it('adds binds after defaults in depth order', () => {
    const spec = newBaseSpec();
    withBindMounts([bind('/var/lib/data'), bind('/etc/hosts'), bind('/data')])(spec);
    const dests = spec.mounts.map((m) => m.destination);
    expect(dests.indexOf('/data')).toBeLessThan(dests.indexOf('/etc/hosts'));
    expect(dests.indexOf('/etc/hosts')).toBeLessThan(dests.indexOf('/var/lib/data'));
    expect(dests.indexOf('/dev')).toBeLessThan(dests.indexOf('/dev/pts'));
  });

  it('replaces a default mount with the same destination', () => {
    const spec = newBaseSpec();
    withBindMounts([bind('/dev/shm'), bind('/sys/fs/cgroup/')])(spec);
    const shm = spec.mounts.filter((m) => m.destination === '/dev/shm');
    expect(shm).toHaveLength(1);
    expect(shm[0].type).toBe('bind');
    expect(spec.mounts.filter((m) => m.destination === '/sys/fs/cgroup')).toHaveLength(1);
    expect(spec.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.type).toBe('bind');
  });

  it('drops every default under /dev when /dev itself is bound', () => {
    const spec = newBaseSpec();
    withBindMounts([bind('/dev')])(spec);
    expect(spec.mounts.filter((m) => m.destination.startsWith('/dev'))).toEqual([
      { destination: '/dev', type: 'bind', source: '/host/dev', options: ['rbind', 'rprivate', 'rw'] },
    ]);
  });

  it('sets rootfsPropagation like containerd: rshared wins, rslave otherwise', () => {
    let spec = newBaseSpec();
    withBindMounts([bind('/a')])(spec);
    expect(spec.linux.rootfsPropagation).toBeUndefined();
    spec = newBaseSpec();
    withBindMounts([bind('/a', { propagation: 'rslave' })])(spec);
    expect(spec.linux.rootfsPropagation).toBe('rslave');
    spec = newBaseSpec();
    withBindMounts([bind('/a', { propagation: 'rshared' }), bind('/b', { propagation: 'rslave' })])(spec);
    expect(spec.linux.rootfsPropagation).toBe('rshared');
  });
});

describe('sandbox-provided files', () => {
  const files = { hostsPath: '/s/hosts', hostnamePath: '/s/hostname', resolvConfPath: '/s/resolv.conf', shmPath: '/s/shm' };

  it('binds hosts, hostname, resolv.conf rw and the pod shm rw', () => {
    const binds = sandboxFileBinds(files, false, false);
    expect(binds.map((b) => [b.containerPath, b.hostPath, b.readonly])).toEqual([
      ['/etc/hostname', '/s/hostname', false],
      ['/etc/hosts', '/s/hosts', false],
      ['/etc/resolv.conf', '/s/resolv.conf', false],
      ['/dev/shm', '/s/shm', false],
    ]);
  });

  it('makes the files read-only with a read-only rootfs, but not /dev/shm', () => {
    const binds = sandboxFileBinds(files, true, false);
    expect(binds.filter((b) => b.readonly).map((b) => b.containerPath)).toEqual(['/etc/hostname', '/etc/hosts', '/etc/resolv.conf']);
  });

  it('shares the host /dev/shm with host IPC, and leaves the private tmpfs without a pod shm', () => {
    expect(sandboxFileBinds(files, false, true).find((b) => b.containerPath === '/dev/shm')?.hostPath).toBe('/dev/shm');
    expect(sandboxFileBinds({}, false, false)).toEqual([]);
  });

  it('lets CRI mounts override them', () => {
    const merged = mergeBinds([bind('/etc/hosts', { hostPath: '/kubelet/etc-hosts' })], sandboxFileBinds(files, false, false));
    expect(merged.filter((b) => b.containerPath === '/etc/hosts')).toEqual([bind('/etc/hosts', { hostPath: '/kubelet/etc-hosts' })]);
    expect(merged).toHaveLength(4);
  });
});

describe('image volumes', () => {
  it('lists VOLUMEs not covered by a CRI mount', () => {
    expect(imageVolumesToCreate({ '/data': {}, '/cache/': {}, 'rel': {} }, [bind('/data')])).toEqual(['/cache', '/rel']);
    expect(imageVolumesToCreate(undefined, [])).toEqual([]);
  });

  it('binds created volumes rw', () => {
    expect(imageVolumeBinds([{ containerPath: '/cache', hostPath: '/v/1' }])).toEqual([bind('/cache', { hostPath: '/v/1' })]);
  });
});

describe('withSandboxMounts', () => {
  it('binds the pod shm and resolv.conf read-only and drops the cgroup mount', () => {
    const spec = newBaseSpec();
    withSandboxMounts({ shmPath: '/s/shm', resolvConfPath: '/s/resolv.conf' }, false)(spec);
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')).toEqual({
      destination: '/dev/shm',
      type: 'bind',
      source: '/s/shm',
      options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'],
    });
    expect(spec.mounts.find((m) => m.destination === '/etc/resolv.conf')?.options).toContain('ro');
    expect(spec.mounts.some((m) => m.destination === '/sys/fs/cgroup')).toBe(false);
  });

  it('uses the host /dev/shm with host IPC and keeps the tmpfs without a pod shm', () => {
    let spec = newBaseSpec();
    withSandboxMounts({ shmPath: '/s/shm' }, true)(spec);
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')?.source).toBe('/dev/shm');
    spec = newBaseSpec();
    withSandboxMounts({}, false)(spec);
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')?.type).toBe('tmpfs');
  });
});
