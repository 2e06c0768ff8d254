import { MountPropagation, NamespaceMode } from '../../../src/gen/runtime/v1/api';
import { FailedPreconditionError, InvalidArgumentError } from '../../../src/errors';
import { ALL_CAPABILITIES } from '../../../src/oci/capabilities';
import { buildContainerSpec, ContainerSpecInput } from '../../../src/oci';
import { DEFAULT_MASKED_PATHS } from '../../../src/oci/defaults';
import { containerConfig, containerInput, env, sandboxConfig, securityContext } from './fixtures';

const build = (over: Partial<ContainerSpecInput> = {}) => buildContainerSpec(containerInput(over));
const sc = securityContext;

describe('buildContainerSpec: an ordinary container', () => {
  const { spec, user } = build();

  it('runs the image command as root with the image env, HOSTNAME and default cwd', () => {
    expect(spec.process.args).toEqual(['sh']);
    expect(spec.process.env).toEqual(['PATH=/usr/local/bin:/usr/bin:/bin', 'HOSTNAME=web']);
    expect(spec.process.cwd).toBe('/');
    expect(spec.process.terminal).toBeUndefined();
    expect(user).toEqual({ uid: 0, gid: 0, additionalGids: [0, 10], username: 'root' });
    expect(spec.process.user).toEqual({ uid: 0, gid: 0, additionalGids: [0, 10] });
  });

  it('joins the pod namespaces and leaves the hostname to the pod UTS namespace', () => {
    expect(spec.linux.namespaces).toEqual([
      { type: 'mount' },
      { type: 'network', path: '/proc/4242/ns/net' },
      { type: 'uts', path: '/proc/4242/ns/uts' },
      { type: 'ipc', path: '/proc/4242/ns/ipc' },
      { type: 'pid' },
    ]);
    expect(spec.hostname).toBeUndefined();
  });

  it('mounts the sandbox files and the pod shm', () => {
    const m = (d: string) => spec.mounts.find((x) => x.destination === d);
    expect(m('/etc/hosts')).toEqual({ destination: '/etc/hosts', type: 'bind', source: '/var/lib/cri-adapter/sandboxes/s1/hosts', options: ['rbind', 'rprivate', 'rw'] });
    expect(m('/etc/hostname')?.source).toBe('/var/lib/cri-adapter/sandboxes/s1/hostname');
    expect(m('/etc/resolv.conf')?.source).toBe('/var/lib/cri-adapter/sandboxes/s1/resolv.conf');
    expect(m('/dev/shm')).toEqual({ destination: '/dev/shm', type: 'bind', source: '/run/cri-adapter/sandboxes/s1/shm', options: ['rbind', 'rprivate', 'rw'] });
    expect(spec.mounts.filter((x) => x.destination === '/dev/shm')).toHaveLength(1);
    expect(m('/sys/fs/cgroup')?.options).toContain('ro');
  });

  it('has the default security settings', () => {
    expect(spec.process.capabilities?.bounding).toHaveLength(14);
    expect(spec.process.noNewPrivileges).toBe(false);
    expect(spec.linux.maskedPaths).toEqual([...DEFAULT_MASKED_PATHS]);
    expect(spec.linux.seccomp).toBeUndefined();
    expect(spec.root).toEqual({ path: 'rootfs' });
  });

  it('goes into a cgroup under the pod parent and carries the CRI annotations', () => {
    expect(spec.linux.cgroupsPath).toBe('/kubepods/besteffort/podpod-uid-1/c1');
    expect(spec.annotations).toEqual({
      'io.kubernetes.cri.container-type': 'container',
      'io.kubernetes.cri.sandbox-id': 's1',
      'io.kubernetes.cri.sandbox-namespace': 'default',
      'io.kubernetes.cri.sandbox-uid': 'pod-uid-1',
      'io.kubernetes.cri.sandbox-name': 'web',
      'io.kubernetes.cri.container-name': 'app',
      'io.kubernetes.cri.image-name': 'docker.io/library/busybox:1.36',
    });
  });

  it('is plain JSON', () => {
    expect(JSON.parse(JSON.stringify(spec))).toEqual(spec);
  });
});

describe('buildContainerSpec: process', () => {
  it('applies command/args/env/working dir/tty from the config', () => {
    const { spec } = build({
      config: containerConfig({
        command: ['/bin/app'],
        args: ['--port', '80'],
        workingDir: '/srv',
        tty: true,
        envs: [{ key: 'PATH', value: Buffer.from('/opt/bin') }, { key: 'MODE', value: Buffer.from('prod') }],
        ...sc({}),
      }),
      imageConfig: { Entrypoint: ['/entry'], Cmd: ['x'], WorkingDir: '/img', Env: ['MODE=dev', 'LANG=C'] },
    });
    expect(spec.process.args).toEqual(['/bin/app', '--port', '80']);
    expect(spec.process.cwd).toBe('/srv');
    expect(spec.process.terminal).toBe(true);
    expect(spec.process.env).toEqual(['PATH=/opt/bin', 'TERM=xterm', 'HOSTNAME=web', 'MODE=prod', 'LANG=C']);
  });

  it('fails with "no command specified" when neither config nor image has one', () => {
    expect(() => build({ imageConfig: {} })).toThrow(InvalidArgumentError);
    expect(() => build({ imageConfig: {} })).toThrow(/no command specified/);
  });

  it('uses the node hostname for HOSTNAME when the sandbox has none (host network)', () => {
    const host = { network: NamespaceMode.NODE, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD };
    const { spec } = build({
      sandboxConfig: sandboxConfig({ hostname: '', linux: { securityContext: { namespaceOptions: host } } }),
      config: containerConfig({ linux: { securityContext: { namespaceOptions: host } } }),
      env: env({ nodeHostname: 'node-1' }),
    });
    expect(spec.process.env).toContain('HOSTNAME=node-1');
    expect(spec.hostname).toBeUndefined();
    expect(spec.linux.namespaces?.map((n) => n.type)).toEqual(['mount', 'ipc', 'pid']);
  });
});

describe('buildContainerSpec: user', () => {
  it('resolves run_as_user against the image passwd and returns the identity', () => {
    const { spec, user } = build({ config: containerConfig(sc({ runAsUser: { value: 1000n }, supplementalGroups: [4000n] })) });
    expect(user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29, 1000, 4000], username: 'app' });
    expect(spec.process.user).toEqual({ uid: 1000, gid: 1000, additionalGids: [10, 29, 1000, 4000] });
  });

  it('resolves run_as_username and run_as_group', () => {
    const { user } = build({ config: containerConfig(sc({ runAsUsername: 'daemon', runAsGroup: { value: 3000n } })) });
    expect(user).toMatchObject({ uid: 1, gid: 3000 });
  });

  it('falls back to the image User', () => {
    expect(build({ imageConfig: { Cmd: ['sh'], User: 'nobody' } }).user).toMatchObject({ uid: 65534, gid: 65534 });
    expect(build({ imageConfig: { Cmd: ['sh'], User: '1234:5678' }, imageEtc: undefined }).user).toEqual({ uid: 1234, gid: 5678, additionalGids: [5678] });
  });

  it('fails naming the field for unknown users and a group without user', () => {
    expect(() => build({ config: containerConfig(sc({ runAsUsername: 'ghost' })) })).toThrow(/linux\.security_context\.run_as_username/);
    expect(() => build({ imageConfig: { Cmd: ['sh'], User: 'ghost' } })).toThrow(/image config User/);
    expect(() => build({ config: containerConfig(sc({ runAsGroup: { value: 5n } })) })).toThrow(/linux\.security_context\.run_as_group/);
  });
});

describe('buildContainerSpec: mounts and devices', () => {
  it('adds CRI mounts with propagation and adjusts rootfsPropagation', () => {
    const { spec } = build({
      config: containerConfig({
        mounts: [
          { containerPath: '/data/sub', hostPath: '/srv/sub', propagation: MountPropagation.PROPAGATION_HOST_TO_CONTAINER },
          { containerPath: '/data', hostPath: '/srv/data', readonly: true },
          { containerPath: '/etc/hosts', hostPath: '/var/lib/kubelet/pods/x/etc-hosts' },
        ],
        ...sc({}),
      }),
    });
    const dests = spec.mounts.map((m) => m.destination);
    expect(dests.indexOf('/data')).toBeLessThan(dests.indexOf('/data/sub'));
    expect(spec.mounts.find((m) => m.destination === '/data/sub')?.options).toEqual(['rbind', 'rslave', 'rw']);
    expect(spec.mounts.find((m) => m.destination === '/data')?.options).toEqual(['rbind', 'rprivate', 'ro']);
    expect(spec.mounts.filter((m) => m.destination === '/etc/hosts')).toEqual([
      { destination: '/etc/hosts', type: 'bind', source: '/var/lib/kubelet/pods/x/etc-hosts', options: ['rbind', 'rprivate', 'rw'] },
    ]);
    expect(spec.linux.rootfsPropagation).toBe('rslave');
  });

  it('uses rro only when the runtime supports it', () => {
    const config = containerConfig({ mounts: [{ containerPath: '/ro', hostPath: '/h', readonly: true, recursiveReadOnly: true }], ...sc({}) });
    expect(() => build({ config })).toThrow(/mounts\[0\]\.recursive_read_only/);
    const { spec } = build({ config, env: env({ recursiveReadOnlyMounts: true }) });
    expect(spec.mounts.find((m) => m.destination === '/ro')?.options).toEqual(['rbind', 'rprivate', 'rro']);
  });

  it('makes the sandbox files read-only with a read-only rootfs', () => {
    const { spec } = build({ config: containerConfig(sc({ readonlyRootfs: true })) });
    expect(spec.root.readonly).toBe(true);
    expect(spec.mounts.find((m) => m.destination === '/etc/resolv.conf')?.options).toContain('ro');
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')?.options).toContain('rw');
  });

  it('shares the host /dev/shm with host IPC', () => {
    const host = { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.NODE };
    const { spec } = build({
      sandboxConfig: sandboxConfig({ linux: { securityContext: { namespaceOptions: host } } }),
      config: containerConfig({ linux: { securityContext: { namespaceOptions: host } } }),
    });
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')?.source).toBe('/dev/shm');
    expect(spec.linux.namespaces?.some((n) => n.type === 'ipc')).toBe(false);
  });

  it('adds image volumes that no CRI mount covers', () => {
    const { spec } = build({ imageVolumes: [{ containerPath: '/var/cache', hostPath: '/var/lib/cri-adapter/containers/c1/volumes/a' }] });
    expect(spec.mounts.find((m) => m.destination === '/var/cache')?.source).toBe('/var/lib/cri-adapter/containers/c1/volumes/a');
  });

  it('exposes CRI devices through the passed-in lookup', () => {
    const { spec } = build({
      config: containerConfig({ devices: [{ hostPath: '/dev/fuse', containerPath: '/dev/fuse', permissions: 'mrw' }], ...sc({}) }),
      lookupDevice: () => ({ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }),
    });
    expect(spec.linux.devices).toEqual([{ path: '/dev/fuse', type: 'c', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 }]);
    expect(spec.linux.resources?.devices).toContainEqual({ allow: true, type: 'c', major: 10, minor: 229, access: 'rwm' });
  });

  it('gives devices to the container user when device ownership follows the security context', () => {
    const { spec } = build({
      config: containerConfig({ devices: [{ hostPath: '/dev/fuse', containerPath: '/dev/fuse', permissions: 'rw' }], ...sc({ runAsUser: { value: 1000n } }) }),
      lookupDevice: () => ({ path: '/dev/fuse', type: 'c', major: 10, minor: 229, uid: 0, gid: 0 }),
      env: env({ deviceOwnershipFromSecurityContext: true }),
    });
    expect(spec.linux.devices?.[0]).toMatchObject({ uid: 1000, gid: 1000 });
  });
});

describe('buildContainerSpec: security', () => {
  it('applies capabilities add/drop', () => {
    const { spec } = build({ config: containerConfig(sc({ capabilities: { addCapabilities: ['NET_ADMIN'], dropCapabilities: ['ALL'] } })) });
    expect(spec.process.capabilities).toEqual({ bounding: ['CAP_NET_ADMIN'], effective: ['CAP_NET_ADMIN'], permitted: ['CAP_NET_ADMIN'] });
  });

  it('rejects unknown capabilities naming the field', () => {
    expect(() => build({ config: containerConfig(sc({ capabilities: { addCapabilities: ['WIZARD'] } })) })).toThrow(
      /linux\.security_context\.capabilities\.add_capabilities\[0\]: unknown capability/,
    );
  });

  it('makes a privileged container privileged', () => {
    const available = ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE');
    const { spec } = build({
      sandboxConfig: sandboxConfig({ linux: { cgroupParent: '/kubepods/p', securityContext: { privileged: true } } }),
      config: containerConfig(sc({ privileged: true, seccomp: { profileType: 0 }, maskedPaths: ['/proc/kcore'] })),
      hostDevices: [{ path: '/dev/kmsg', type: 'c', major: 1, minor: 11 }],
      env: env({ availableCapabilities: available }),
    });
    expect(spec.process.capabilities?.bounding).toEqual(available);
    expect(spec.linux.maskedPaths).toEqual([]);
    expect(spec.linux.readonlyPaths).toEqual([]);
    expect(spec.linux.seccomp).toBeUndefined();
    expect(spec.mounts.find((m) => m.destination === '/sys')?.options).toContain('rw');
    expect(spec.mounts.find((m) => m.destination === '/sys/fs/cgroup')?.options).toContain('rw');
    expect(spec.linux.devices).toEqual([{ path: '/dev/kmsg', type: 'c', major: 1, minor: 11 }]);
    expect(spec.linux.resources?.devices).toEqual([{ allow: true, access: 'rwm' }]);
  });

  it('refuses a privileged container in a non-privileged sandbox', () => {
    expect(() => build({ config: containerConfig(sc({ privileged: true })) })).toThrow(/linux\.security_context\.privileged/);
  });

  it('applies the RuntimeDefault seccomp profile tailored to the capabilities', () => {
    const { spec } = build({ config: containerConfig(sc({ seccomp: { profileType: 0 }, capabilities: { addCapabilities: ['SYS_ADMIN'] } })) });
    const allow = spec.linux.seccomp?.syscalls?.[0];
    expect(spec.linux.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(allow?.names).toContain('mount');
  });

  it('uses a passed-in Localhost profile, and names the field when none was read', () => {
    const config = containerConfig(sc({ seccomp: { profileType: 2, localhostRef: '/var/lib/kubelet/seccomp/audit.json' } }));
    expect(build({ config, seccompProfile: { defaultAction: 'SCMP_ACT_LOG' } }).spec.linux.seccomp).toEqual({ defaultAction: 'SCMP_ACT_LOG' });
    expect(() => build({ config })).toThrow(/linux\.security_context\.seccomp\.localhost_ref/);
    expect(() => build({ config, seccompProfile: { nope: 1 } })).toThrow(InvalidArgumentError);
  });

  it('applies masked/readonly paths, no_new_privs and ignores AppArmor defaults', () => {
    const { spec } = build({
      config: containerConfig(sc({ maskedPaths: ['/proc/a'], readonlyPaths: ['/proc/b'], noNewPrivs: true, apparmor: { profileType: 0 } })),
    });
    expect(spec.linux.maskedPaths).toEqual(['/proc/a']);
    expect(spec.linux.readonlyPaths).toEqual(['/proc/b']);
    expect(spec.process.noNewPrivileges).toBe(true);
    expect(spec.process.apparmorProfile).toBeUndefined();
  });

  it('refuses a Localhost AppArmor profile and user namespaces', () => {
    expect(() => build({ config: containerConfig(sc({ apparmor: { profileType: 2, localhostRef: 'p' } })) })).toThrow(/apparmor/);
    expect(() =>
      build({
        config: containerConfig(
          sc({ namespaceOptions: { usernsOptions: { mode: NamespaceMode.POD, uids: [{ hostId: 1, containerId: 0, length: 1 }] } } }),
        ),
      }),
    ).toThrow(/userns_options/);
  });

  it('reports an unavailable explicit capability as FailedPrecondition', () => {
    expect(() =>
      build({
        config: containerConfig(sc({ capabilities: { addCapabilities: ['SYS_RESOURCE'] } })),
        env: env({ availableCapabilities: ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE') }),
      }),
    ).toThrow(FailedPreconditionError);
  });

  it('joins a target container\'s PID namespace', () => {
    const { spec } = build({
      config: containerConfig(sc({ namespaceOptions: { network: NamespaceMode.POD, ipc: NamespaceMode.POD, pid: NamespaceMode.TARGET, targetId: 'c0' } })),
      targetPid: 5151,
    });
    expect(spec.linux.namespaces).toContainEqual({ type: 'pid', path: '/proc/5151/ns/pid' });
  });
});

describe('buildContainerSpec: resources', () => {
  it('maps resources and clamps oom_score_adj', () => {
    const { spec } = build({
      config: containerConfig({
        ...sc({}),
        linux: {
          ...sc({}).linux,
          resources: { cpuPeriod: 100000n, cpuQuota: 50000n, cpuShares: 512n, memoryLimitInBytes: 134217728n, oomScoreAdj: -997n },
        },
      }),
      env: env({ minOomScoreAdj: -500, cgroup: { swapAvailable: true } }),
    });
    expect(spec.linux.resources?.cpu).toEqual({ period: 100000, quota: 50000, shares: 512 });
    expect(spec.linux.resources?.memory).toEqual({ limit: 134217728, swap: 134217728 });
    expect(spec.process.oomScoreAdj).toBe(-500);
  });

  it('rejects negative CPU naming the field', () => {
    const config = containerConfig({ linux: { ...sc({}).linux, resources: { cpuShares: -1n } } });
    expect(() => build({ config })).toThrow(/linux\.resources\.cpu_shares/);
  });

  it('uses the systemd cgroup path form', () => {
    const { spec } = build({
      sandboxConfig: sandboxConfig({ linux: { cgroupParent: 'kubepods-besteffort-podx.slice' } }),
      env: env({ cgroupDriver: 'systemd' }),
    });
    expect(spec.linux.cgroupsPath).toBe('kubepods-besteffort-podx.slice:cri-adapter:c1');
  });

  it('adds a cgroup namespace on cgroup v2', () => {
    expect(build({ env: env({ cgroup: { cgroupV2: true } }) }).spec.linux.namespaces).toContainEqual({ type: 'cgroup' });
  });
});

describe('buildContainerSpec: annotations', () => {
  it('passes through annotations matching the runtime handler patterns', () => {
    const { spec } = build({
      sandboxConfig: sandboxConfig({ annotations: { 'io.katacontainers.pod': 'p', other: 'x' } }),
      config: containerConfig({ annotations: { 'io.katacontainers.ctr': 'c', 'io.kubernetes.cri.sandbox-id': 'spoof' }, ...sc({}) }),
      env: env({ podAnnotationPassthrough: ['io.katacontainers.*'], containerAnnotationPassthrough: ['io.katacontainers.*', 'io.kubernetes.cri.*'] }),
    });
    expect(spec.annotations?.['io.katacontainers.pod']).toBe('p');
    expect(spec.annotations?.['io.katacontainers.ctr']).toBe('c');
    expect(spec.annotations?.other).toBeUndefined();
    expect(spec.annotations?.['io.kubernetes.cri.sandbox-id']).toBe('s1');
  });

  it('requires container metadata', () => {
    expect(() => build({ config: containerConfig({ metadata: { name: '' } }) })).toThrow(/metadata\.name/);
  });
});
