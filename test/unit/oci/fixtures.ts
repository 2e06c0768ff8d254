import {
  ContainerConfig,
  DeepPartial,
  LinuxContainerSecurityContext,
  MountPropagation,
  NamespaceMode,
  PodSandboxConfig,
} from '../../../src/gen/runtime/v1/api';
import type { ContainerSpecInput } from '../../../src/oci/container';
import type { RuntimeEnvironment } from '../../../src/oci/environment';
import type { SandboxSpecInput } from '../../../src/oci/sandbox';

export { MountPropagation, NamespaceMode };
export type { DeepPartial };

/** A container security context with the kubelet's usual namespace options, plus `p`. */
export function securityContext(p: DeepPartial<LinuxContainerSecurityContext> = {}): DeepPartial<ContainerConfig> {
  return {
    linux: {
      securityContext: {
        namespaceOptions: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD },
        ...p,
      },
    },
  };
}

export const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  '# a comment',
  'broken line',
  'app:x:1000:1000:App:/home/app:/bin/sh',
  'nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin',
].join('\n');

export const GROUP = [
  'root:x:0:',
  'daemon:x:1:',
  'wheel:x:10:root,app',
  'app:x:1000:',
  'audio:x:29:app',
  'staff:x:50:daemon',
  'nogroup:x:65534:',
].join('\n');

export function env(over: Partial<RuntimeEnvironment> = {}): RuntimeEnvironment {
  return { cgroupDriver: 'cgroupfs', ...over };
}

export function sandboxConfig(over: DeepPartial<PodSandboxConfig> = {}): PodSandboxConfig {
  return PodSandboxConfig.fromPartial({
    metadata: { name: 'web', namespace: 'default', uid: 'pod-uid-1', attempt: 0 },
    hostname: 'web',
    logDirectory: '/var/log/pods/default_web_pod-uid-1',
    linux: {
      cgroupParent: '/kubepods/besteffort/podpod-uid-1',
      securityContext: {
        namespaceOptions: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD },
      },
    },
    ...over,
  });
}

export function containerConfig(over: DeepPartial<ContainerConfig> = {}): ContainerConfig {
  return ContainerConfig.fromPartial({
    metadata: { name: 'app', attempt: 0 },
    image: { image: 'docker.io/library/busybox:1.36' },
    linux: {
      securityContext: {
        namespaceOptions: { network: NamespaceMode.POD, pid: NamespaceMode.CONTAINER, ipc: NamespaceMode.POD },
      },
    },
    ...over,
  });
}

export function containerInput(over: Partial<ContainerSpecInput> = {}): ContainerSpecInput {
  return {
    containerId: 'c1',
    sandboxId: 's1',
    config: containerConfig(),
    sandboxConfig: sandboxConfig(),
    imageName: 'docker.io/library/busybox:1.36',
    imageConfig: { Cmd: ['sh'], Env: ['PATH=/usr/local/bin:/usr/bin:/bin'] },
    imageEtc: { passwd: PASSWD, group: GROUP },
    sandboxPid: 4242,
    sandboxFiles: {
      hostsPath: '/var/lib/cri-adapter/sandboxes/s1/hosts',
      hostnamePath: '/var/lib/cri-adapter/sandboxes/s1/hostname',
      resolvConfPath: '/var/lib/cri-adapter/sandboxes/s1/resolv.conf',
      shmPath: '/run/cri-adapter/sandboxes/s1/shm',
    },
    env: env(),
    ...over,
  };
}

export function sandboxInput(over: Partial<SandboxSpecInput> = {}): SandboxSpecInput {
  return {
    sandboxId: 's1',
    config: sandboxConfig(),
    imageName: 'registry.local/pause:3.9',
    imageConfig: { Entrypoint: ['/pause'], User: '65535:65535' },
    netnsPath: '/var/run/netns/cni-1234',
    sandboxFiles: {
      resolvConfPath: '/var/lib/cri-adapter/sandboxes/s1/resolv.conf',
      shmPath: '/run/cri-adapter/sandboxes/s1/shm',
    },
    env: env(),
    ...over,
  };
}
