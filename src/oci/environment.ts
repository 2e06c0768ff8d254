import { ALL_CAPABILITIES } from './capabilities';
import type { CgroupCapabilities, CgroupDriverName } from './resources';
import type { SeccompArch } from './seccomp';

/**
 * Facts about this node and runtime that shape every spec. The caller
 * measures them once at start (they are I/O); spec building only reads them.
 */
export interface RuntimeEnvironment {
  cgroupDriver: CgroupDriverName;
  /**
   * The lowest oom_score_adj runc may set: the adapter's own
   * /proc/self/oom_score_adj when it lacks CAP_SYS_RESOURCE. Undefined means
   * no clamping.
   */
  minOomScoreAdj?: number;
  /**
   * Capabilities the adapter holds (CapEff of /proc/self/status, see
   * parseCapabilityMask). Privileged containers and "add ALL" get exactly
   * these. Defaults to every capability Linux defines.
   */
  availableCapabilities?: readonly string[];
  /** Seccomp architecture set to emit; defaults to amd64. */
  arch?: SeccompArch;
  /** The kernel supports seccomp filters; defaults to true. */
  seccompEnabled?: boolean;
  cgroup?: CgroupCapabilities;
  /** runc and the kernel support the "rro" mount option. */
  recursiveReadOnlyMounts?: boolean;
  /**
   * The kernel lets a process create user namespaces (/proc/sys/user/max_user_namespaces > 0), so pods
   * with `hostUsers: false` can run here (with a remapped copy of their image: no idmapped mounts needed).
   */
  userNamespaces?: boolean;
  /** The node's hostname, for HOSTNAME of host-network pods whose config has none. */
  nodeHostname?: string;
  /** Runtime-handler patterns of pod annotations copied into OCI annotations. */
  podAnnotationPassthrough?: readonly string[];
  /** Runtime-handler patterns of container annotations copied into OCI annotations. */
  containerAnnotationPassthrough?: readonly string[];
  /** Device nodes belong to the container's run_as_user/run_as_group instead of the host owner. */
  deviceOwnershipFromSecurityContext?: boolean;
  /** Unprivileged processes may bind ports below 1024 in pods with their own network. */
  enableUnprivilegedPorts?: boolean;
  /** Unprivileged processes may open ICMP echo sockets (ping) in pods with their own network. */
  enableUnprivilegedIcmp?: boolean;
  /** Rootfs directory relative to the bundle; defaults to "rootfs". */
  rootfsPath?: string;
}

export function availableCapabilities(env: RuntimeEnvironment): readonly string[] {
  return env.availableCapabilities ?? ALL_CAPABILITIES;
}
