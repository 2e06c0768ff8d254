import { LinuxPodSandboxConfig, LinuxSandboxSecurityContext, NamespaceMode } from '../../../src/gen/runtime/v1/api';
import { InvalidArgumentError } from '../../../src/errors';
import { buildSandboxSpec, SandboxSpecInput, sandboxResources } from '../../../src/oci';
import { DeepPartial, env, sandboxConfig, sandboxInput } from './fixtures';

const build = (over: Partial<SandboxSpecInput> = {}) => buildSandboxSpec(sandboxInput(over));
const withSc = (securityContext: DeepPartial<LinuxSandboxSecurityContext>, linux: DeepPartial<LinuxPodSandboxConfig> = {}) =>
  sandboxConfig({ linux: { cgroupParent: '/kubepods/besteffort/podpod-uid-1', securityContext, ...linux } });

describe('buildSandboxSpec: an ordinary pod', () => {
  const { spec, user } = build();

  it('runs the pause image entrypoint as its User, read-only, without privilege escalation', () => {
    expect(spec.process.args).toEqual(['/pause']);
    expect(user).toEqual({ uid: 65535, gid: 65535, additionalGids: [65535] });
    expect(spec.process.user).toEqual({ uid: 65535, gid: 65535, additionalGids: [65535] });
    expect(spec.root).toEqual({ path: 'rootfs', readonly: true });
    expect(spec.process.noNewPrivileges).toBe(true);
  });

  it('creates namespaces, joins the CNI netns and sets the hostname', () => {
    expect(spec.linux.namespaces).toEqual([
      { type: 'mount' },
      { type: 'network', path: '/var/run/netns/cni-1234' },
      { type: 'uts' },
      { type: 'ipc' },
      { type: 'pid' },
    ]);
    expect(spec.hostname).toBe('web');
  });

  it('binds the pod shm and resolv.conf read-only', () => {
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')).toEqual({
      destination: '/dev/shm',
      type: 'bind',
      source: '/run/cri-adapter/sandboxes/s1/shm',
      options: ['rbind', 'ro', 'nosuid', 'nodev', 'noexec'],
    });
    expect(spec.mounts.find((m) => m.destination === '/etc/resolv.conf')?.options).toContain('ro');
  });

  it('has low CPU weight, the pause OOM score and a cgroup under the pod parent', () => {
    expect(spec.linux.resources?.cpu).toEqual({ shares: 2 });
    expect(spec.process.oomScoreAdj).toBe(-998);
    expect(spec.linux.cgroupsPath).toBe('/kubepods/besteffort/podpod-uid-1/s1');
  });

  it('carries the sandbox CRI annotations', () => {
    expect(spec.annotations).toEqual({
      'io.kubernetes.cri.container-type': 'sandbox',
      'io.kubernetes.cri.sandbox-id': 's1',
      'io.kubernetes.cri.sandbox-namespace': 'default',
      'io.kubernetes.cri.sandbox-uid': 'pod-uid-1',
      'io.kubernetes.cri.sandbox-name': 'web',
      'io.kubernetes.cri.sandbox-log-directory': '/var/log/pods/default_web_pod-uid-1',
      'io.kubernetes.cri.podsandbox.image-name': 'registry.local/pause:3.9',
    });
  });

  it('is plain JSON', () => {
    expect(JSON.parse(JSON.stringify(spec))).toEqual(spec);
  });
});

describe('buildSandboxSpec: options', () => {
  it('clamps the OOM score to what the adapter may set', () => {
    expect(build({ env: env({ minOomScoreAdj: -500 }) }).spec.process.oomScoreAdj).toBe(-500);
    expect(build({ env: env({ minOomScoreAdj: 0 }) }).spec.process.oomScoreAdj).toBe(0);
  });

  it('uses the host namespaces for NODE modes', () => {
    const { spec } = build({
      config: withSc({ namespaceOptions: { network: NamespaceMode.NODE, pid: NamespaceMode.NODE, ipc: NamespaceMode.NODE } }),
    });
    expect(spec.linux.namespaces).toEqual([{ type: 'mount' }]);
    expect(spec.hostname).toBeUndefined();
    expect(spec.mounts.find((m) => m.destination === '/dev/shm')?.source).toBe('/dev/shm');
  });

  it('applies run_as_user/run_as_group and supplemental groups', () => {
    const { user } = build({ config: withSc({ runAsUser: { value: 1000n }, runAsGroup: { value: 3000n }, supplementalGroups: [4000n] }) });
    expect(user).toEqual({ uid: 1000, gid: 3000, additionalGids: [3000, 4000] });
    expect(() => build({ config: withSc({ runAsGroup: { value: 3000n } }) })).toThrow(/linux\.security_context\.run_as_group/);
  });

  it('mounts sysfs read-write for a privileged pod, so its privileged containers get a writable /sys', () => {
    expect(build({ config: withSc({ privileged: true }) }).spec.mounts.find((m) => m.destination === '/sys')?.options).toContain('rw');
    expect(build().spec.mounts.find((m) => m.destination === '/sys')?.options).toContain('ro');
  });

  it('applies seccomp unless privileged', () => {
    expect(build({ config: withSc({ seccomp: { profileType: 0 } }) }).spec.linux.seccomp?.defaultAction).toBe('SCMP_ACT_ERRNO');
    expect(build({ config: withSc({ seccomp: { profileType: 0 }, privileged: true }) }).spec.linux.seccomp).toBeUndefined();
    expect(build({ config: withSc({ seccomp: { profileType: 1 } }) }).spec.linux.seccomp).toBeUndefined();
  });

  it('sets validated sysctls and the opt-in unprivileged port/ICMP ones', () => {
    const config = withSc({}, { sysctls: { 'net.ipv4.ip_unprivileged_port_start': '1024', 'kernel.shm_rmid_forced': '1' } });
    const { spec } = build({ config, env: env({ enableUnprivilegedPorts: true, enableUnprivilegedIcmp: true }) });
    expect(spec.linux.sysctl).toEqual({
      'net.ipv4.ip_unprivileged_port_start': '1024',
      'kernel.shm_rmid_forced': '1',
      'net.ipv4.ping_group_range': '0 2147483647',
    });
    const host = withSc({ namespaceOptions: { network: NamespaceMode.NODE } }, { sysctls: { 'net.core.somaxconn': '1' } });
    expect(() => build({ config: host })).toThrow(/linux\.sysctls\["net\.core\.somaxconn"\]/);
    expect(build({ config: withSc({ namespaceOptions: { network: NamespaceMode.NODE } }), env: env({ enableUnprivilegedPorts: true }) }).spec.linux.sysctl).toBeUndefined();
  });

  it('bounds the pause cgroup by resources + overhead and annotates the resources', () => {
    const config = withSc(
      {},
      {
        resources: { cpuPeriod: 100000n, cpuQuota: 200000n, cpuShares: 2048n, memoryLimitInBytes: 1073741824n },
        overhead: { cpuPeriod: 100000n, cpuQuota: 25000n, cpuShares: 256n, memoryLimitInBytes: 134217728n },
      },
    );
    const { spec } = build({ config });
    expect(spec.linux.resources?.cpu).toEqual({ shares: 2, quota: 225000, period: 100000 });
    expect(spec.linux.resources?.memory).toEqual({ limit: 1207959552 });
    expect(spec.annotations).toMatchObject({
      'io.kubernetes.cri.sandbox-cpu-period': '100000',
      'io.kubernetes.cri.sandbox-cpu-quota': '200000',
      'io.kubernetes.cri.sandbox-cpu-shares': '2048',
      'io.kubernetes.cri.sandbox-memory': '1073741824',
    });
  });

  it('validates resources and overhead naming the field', () => {
    expect(() => sandboxResources(withSc({}, { overhead: { cpuShares: -1n } }))).toThrow(/linux\.overhead\.cpu_shares/);
    expect(() => sandboxResources(withSc({}, { resources: { memoryLimitInBytes: -1n } }))).toThrow(/linux\.resources\.memory_limit_in_bytes/);
  });

  it('uses the systemd cgroup path form', () => {
    const config = sandboxConfig({ linux: { cgroupParent: '/kubepods.slice/kubepods-podx.slice' } });
    expect(build({ config, env: env({ cgroupDriver: 'systemd' }) }).spec.linux.cgroupsPath).toBe('kubepods-podx.slice:cri-adapter:s1');
  });

  it('falls back to Cmd and rejects a pause image without a command', () => {
    expect(build({ imageConfig: { Cmd: ['/pause', '-v'] } }).spec.process.args).toEqual(['/pause', '-v']);
    expect(() => build({ imageConfig: {} })).toThrow(InvalidArgumentError);
  });

  it('refuses a Localhost AppArmor profile for the sandbox', () => {
    expect(() => build({ config: withSc({ apparmor: { profileType: 2, localhostRef: 'p' } }) })).toThrow(/linux\.security_context\.apparmor/);
  });

  it('requires metadata and refuses user namespaces', () => {
    expect(() => build({ config: sandboxConfig({ metadata: { name: 'x', namespace: '', uid: 'u' } }) })).toThrow(/metadata/);
    expect(() =>
      build({ config: withSc({ namespaceOptions: { usernsOptions: { mode: NamespaceMode.POD, uids: [{ hostId: 1, containerId: 0, length: 1 }] } } }) }),
    ).toThrow(/userns_options/);
  });

  it('passes through pod annotations matching the handler patterns', () => {
    const config = sandboxConfig({ annotations: { 'io.katacontainers.x': '1', y: '2' } });
    const { spec } = build({ config, env: env({ podAnnotationPassthrough: ['io.katacontainers.*'] }) });
    expect(spec.annotations?.['io.katacontainers.x']).toBe('1');
    expect(spec.annotations?.y).toBeUndefined();
  });
});
