import { NamespaceMode } from '../gen/runtime/v1/api';
import type { PodSandboxConfig } from '../gen/runtime/v1/api';
import { CONTAINER_TYPE_SANDBOX, CRI_ANNOTATIONS, passthroughAnnotations, withAnnotations } from './annotations';
import { computeCapabilities, withCapabilities } from './capabilities';
import { DEFAULT_CAPABILITIES, newBaseSpec } from './defaults';
import { availableCapabilities, RuntimeEnvironment } from './environment';
import { SandboxFiles, withSandboxMounts } from './mounts';
import { sandboxNamespaces, withHostname, withNamespaces } from './namespaces';
import type { ImageConfig, OciResources, OciSpec, SpecOpt } from './oci-types';
import { applyOpts } from './oci-types';
import { mergeEnv, resolveWorkingDir, withCwd, withEnv, withProcessArgs } from './process';
import {
  SANDBOX_CPU_SHARES,
  SANDBOX_OOM_SCORE_ADJ,
  cgroupsPath,
  podResourceTotals,
  resourcesToOci,
  withCgroupsPath,
  withOomScoreAdj,
  withResources,
} from './resources';
import { resolveSeccomp, seccompChoice, withSeccomp } from './seccomp';
import { checkAppArmor, withNoNewPrivileges, withReadonlyRootfs, withWritableSysfs } from './security';
import { validateSysctls, withSysctls } from './sysctl';
import { ResolvedUser, resolveUser, selectUserSource, withUser } from './user';
import { podUserNamespace, withUserNamespace } from './userns';
import { invalidField, toSafeNumber } from './validate';

export interface SandboxSpecInput {
  sandboxId: string;
  /** RunPodSandboxRequest.config. */
  config: PodSandboxConfig;
  /** Name of the pause image, for the sandbox image annotation. */
  imageName: string;
  /** The pause image's config. */
  imageConfig: ImageConfig;
  /** Contents of the pause image's /etc/passwd and /etc/group, when it has them. */
  imageEtc?: { passwd?: string; group?: string };
  /**
   * The network namespace CNI set up; absent with host networking, or to let
   * runc create one (a pod with a user namespace: the kernel only lets that
   * namespace mount sysfs when it owns the network namespace too).
   */
  netnsPath?: string;
  /** Files prepared for the pod; the sandbox uses shmPath and resolvConfPath. */
  sandboxFiles: SandboxFiles;
  /** Parsed JSON of the Localhost seccomp profile file (see seccompProfileFile). */
  seccompProfile?: unknown;
  env: RuntimeEnvironment;
}

export interface SandboxSpecOutput {
  spec: OciSpec;
  user: ResolvedUser;
}

const SC = 'linux.security_context';

/**
 * The pause container's cgroup settings. Its CPU weight stays minimal (it
 * only sleeps); the pod's total (containers plus overhead) becomes its
 * ceiling, which bounds a misbehaving pause image even when the kubelet runs
 * without per-pod cgroups. The ceiling is never lower than the pod may use,
 * so runc's own init process, which briefly runs in this cgroup, always fits.
 */
export function sandboxResources(config: PodSandboxConfig): OciResources {
  const linux = config.linux;
  for (const [name, r] of [['resources', linux?.resources], ['overhead', linux?.overhead]] as const) {
    if (r) resourcesToOci({ ...r, hugepageLimits: [], unified: {} }, `linux.${name}`, { swapAvailable: false });
  }
  const total = podResourceTotals(linux?.resources, linux?.overhead);
  const res: OciResources = { cpu: { shares: SANDBOX_CPU_SHARES } };
  if (total.cpuQuota !== 0n) {
    res.cpu!.quota = toSafeNumber(total.cpuQuota, 'linux.resources.cpu_quota');
    if (total.cpuPeriod > 0n) res.cpu!.period = toSafeNumber(total.cpuPeriod, 'linux.resources.cpu_period');
  }
  if (total.memoryLimitInBytes > 0n) res.memory = { limit: toSafeNumber(total.memoryLimitInBytes, 'linux.resources.memory_limit_in_bytes') };
  return res;
}

/** Builds the pause container's OCI spec. Throws InvalidArgumentError naming the CRI field. */
export function buildSandboxSpec(input: SandboxSpecInput): SandboxSpecOutput {
  const { config, env } = input;
  const md = config.metadata;
  if (!md || md.name === '' || md.namespace === '' || md.uid === '') {
    throw invalidField('metadata', 'name, namespace and uid must be set');
  }
  const sc = config.linux?.securityContext;
  const ns = sc?.namespaceOptions;
  const userns = podUserNamespace(ns, `${SC}.namespace_options`);
  if (userns && sc?.privileged) throw invalidField(`${SC}.privileged`, 'a pod with a user namespace cannot be privileged');
  if (userns && input.netnsPath) throw invalidField(`${SC}.namespace_options`, 'a pod with a user namespace gets its network namespace from runc');
  checkAppArmor(sc?.apparmor, '', `${SC}.apparmor`);
  const hostNet = ns?.network === NamespaceMode.NODE;
  const hostIpc = ns?.ipc === NamespaceMode.NODE;

  const image = input.imageConfig;
  const args = [...(image.Entrypoint ?? []), ...(image.Cmd ?? [])];
  if (args.length === 0) throw invalidField('image config', `sandbox image ${input.imageName} has neither Entrypoint nor Cmd`);

  const user = resolveUser(selectUserSource({ runAsUser: sc?.runAsUser, runAsGroup: sc?.runAsGroup }, image.User, SC), {
    passwd: input.imageEtc?.passwd,
    group: input.imageEtc?.group,
    supplementalGroups: sc?.supplementalGroups ?? [],
    supplementalGroupsPolicy: sc?.supplementalGroupsPolicy,
    fieldPrefix: SC,
  });

  const sysctls: Record<string, string> = { ...(config.linux?.sysctls ?? {}) };
  validateSysctls(sysctls, { network: !hostNet, ipc: !hostIpc, uts: !hostNet }, 'linux.sysctls');
  if (!hostNet) {
    // Opt-in node-wide conveniences; an explicit pod sysctl wins.
    if (env.enableUnprivilegedPorts && !('net.ipv4.ip_unprivileged_port_start' in sysctls)) {
      sysctls['net.ipv4.ip_unprivileged_port_start'] = '0';
    }
    if (env.enableUnprivilegedIcmp && !('net.ipv4.ping_group_range' in sysctls)) {
      sysctls['net.ipv4.ping_group_range'] = '0 2147483647';
    }
  }

  const caps = computeCapabilities(DEFAULT_CAPABILITIES, undefined, availableCapabilities(env), SC);
  const opts: SpecOpt[] = [
    withProcessArgs(args),
    withEnv(mergeEnv([], image.Env ?? [])),
    withCwd(resolveWorkingDir('', image)),
    withUser(user),
    withCapabilities(caps),
    withNamespaces(sandboxNamespaces({ options: ns, netnsPath: hostNet ? undefined : input.netnsPath }, `${SC}.namespace_options`)),
    withHostname(hostNet ? '' : config.hostname),
    withSandboxMounts(input.sandboxFiles, hostIpc),
    withSysctls(sysctls),
    withSeccomp(
      resolveSeccomp({
        choice: seccompChoice(sc?.seccomp, sc?.seccompProfilePath ?? '', `${SC}.seccomp`),
        privileged: sc?.privileged ?? false,
        seccompEnabled: env.seccompEnabled ?? true,
        effectiveCaps: caps.effective,
        arch: env.arch ?? 'amd64',
        localhostProfile: input.seccompProfile,
        field: `${SC}.seccomp`,
      }),
    ),
    // pause never needs to gain privileges or write its rootfs, whatever the pod asked.
    withNoNewPrivileges(true),
    withReadonlyRootfs(true),
    withResources(sandboxResources(config)),
    withOomScoreAdj(SANDBOX_OOM_SCORE_ADJ, env.minOomScoreAdj),
    withCgroupsPath(cgroupsPath(config.linux?.cgroupParent ?? '', input.sandboxId, env.cgroupDriver)),
  ];

  if (sc?.privileged) opts.push(withWritableSysfs);
  if (userns) opts.push(withUserNamespace(userns));

  const annotations: Record<string, string> = {
    ...passthroughAnnotations(config.annotations, env.podAnnotationPassthrough ?? []),
    [CRI_ANNOTATIONS.containerType]: CONTAINER_TYPE_SANDBOX,
    [CRI_ANNOTATIONS.sandboxId]: input.sandboxId,
    [CRI_ANNOTATIONS.sandboxNamespace]: md.namespace,
    [CRI_ANNOTATIONS.sandboxUid]: md.uid,
    [CRI_ANNOTATIONS.sandboxName]: md.name,
    [CRI_ANNOTATIONS.sandboxLogDirectory]: config.logDirectory,
    [CRI_ANNOTATIONS.sandboxImageName]: input.imageName,
  };
  const r = config.linux?.resources;
  if (r) {
    annotations[CRI_ANNOTATIONS.sandboxCpuPeriod] = r.cpuPeriod.toString();
    annotations[CRI_ANNOTATIONS.sandboxCpuQuota] = r.cpuQuota.toString();
    annotations[CRI_ANNOTATIONS.sandboxCpuShares] = r.cpuShares.toString();
    annotations[CRI_ANNOTATIONS.sandboxMemory] = r.memoryLimitInBytes.toString();
  }
  opts.push(withAnnotations(annotations));

  const spec = applyOpts(newBaseSpec(env.rootfsPath), ...opts);
  return { spec, user };
}
