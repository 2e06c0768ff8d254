import { NamespaceMode } from '../gen/runtime/v1/api';
import type { ContainerConfig, PodSandboxConfig } from '../gen/runtime/v1/api';
import { CONTAINER_TYPE_CONTAINER, CRI_ANNOTATIONS, passthroughAnnotations, withAnnotations } from './annotations';
import { computeCapabilities, withCapabilities } from './capabilities';
import { DEFAULT_CAPABILITIES, newBaseSpec } from './defaults';
import { CdiLookup, requestedCdiDevices, resolveCdiDevices, withCdiEdits } from './cdi';
import { HostDevice, DeviceLookup, withAllDevicesAllowed, withCriDevices, withHostDevices } from './devices';
import { availableCapabilities, RuntimeEnvironment } from './environment';
import {
  PropagationLookup,
  SandboxFiles,
  criMountToBind,
  imageVolumeBinds,
  mergeBinds,
  sandboxFileBinds,
  withBindMounts,
} from './mounts';
import { containerNamespaces, nsPath, withNamespaces } from './namespaces';
import { podUserNamespace, sameMapping, withUserNamespace } from './userns';
import type { ImageConfig, OciSpec, SpecOpt } from './oci-types';
import { applyOpts } from './oci-types';
import { containerEnv, resolveProcessArgs, resolveWorkingDir, withCwd, withEnv, withProcessArgs, withTerminal } from './process';
import { cgroupsPath, resourcesToOci, withCgroupsPath, withOomScoreAdj, withResources } from './resources';
import { resolveSeccomp, seccompChoice, withSeccomp } from './seccomp';
import { checkAppArmor, withMaskedPaths, withNoNewPrivileges, withPrivilegedFilesystems, withReadonlyPaths, withReadonlyRootfs } from './security';
import { ResolvedUser, resolveUser, selectUserSource, withUser } from './user';
import { invalidField, toSafeNumber } from './validate';

export interface ContainerSpecInput {
  containerId: string;
  sandboxId: string;
  /** CreateContainerRequest.config. */
  config: ContainerConfig;
  /** The sandbox's config (CreateContainerRequest.sandbox_config or the stored one). */
  sandboxConfig: PodSandboxConfig;
  /** Image name for the image-name annotation (the reference the kubelet asked for). */
  imageName: string;
  /** The image's config (`config` of the OCI image configuration). */
  imageConfig: ImageConfig;
  /** Contents of the image's /etc/passwd and /etc/group, when present. */
  imageEtc?: { passwd?: string; group?: string };
  /** PID of the sandbox's pause process, whose namespaces the container joins. */
  sandboxPid: number;
  /** The pod's network namespace path; defaults to the pause process's. */
  netnsPath?: string;
  /** PID of the target container for PID namespace mode TARGET. */
  targetPid?: number;
  /** Files the sandbox prepared (/etc/hosts, /etc/hostname, /etc/resolv.conf, /dev/shm). */
  sandboxFiles: SandboxFiles;
  /** Host directories the caller created for the image's VOLUMEs (see imageVolumesToCreate). */
  imageVolumes?: readonly { containerPath: string; hostPath: string }[];
  /** Host paths of image-volume mounts, by index in config.mounts. */
  imageMountSources?: ReadonlyMap<number, string>;
  /** Finds CDI devices by fully-qualified name; needed when the config asks for any. */
  cdiLookup?: CdiLookup;
  /** Needed when config.devices is not empty. */
  lookupDevice?: DeviceLookup;
  /** When given, propagation requests are checked against the host mount. */
  lookupPropagation?: PropagationLookup;
  /** Every device node of the host, for privileged containers. */
  hostDevices?: readonly HostDevice[];
  /** Parsed JSON of the Localhost seccomp profile file (see seccompProfileFile). */
  seccompProfile?: unknown;
  env: RuntimeEnvironment;
}

export interface ContainerSpecOutput {
  spec: OciSpec;
  user: ResolvedUser;
}

const SC = 'linux.security_context';

/**
 * Builds a container's OCI spec. Throws InvalidArgumentError naming the CRI
 * field for anything the request got wrong; never does I/O.
 */
export function buildContainerSpec(input: ContainerSpecInput): ContainerSpecOutput {
  const { config, sandboxConfig, env } = input;
  if (!config.metadata || config.metadata.name === '') throw invalidField('metadata.name', 'must be set');
  const sc = config.linux?.securityContext;
  const sandboxSc = sandboxConfig.linux?.securityContext;
  const privileged = sc?.privileged ?? false;
  if (privileged && !sandboxSc?.privileged) {
    throw invalidField(`${SC}.privileged`, 'the pod sandbox was not created privileged, so no container in it can be');
  }
  // The pod's user namespace decides; a container may only repeat it (the kubelet sends it on both).
  const userns = podUserNamespace(sandboxSc?.namespaceOptions, `sandbox_config.${SC}.namespace_options`);
  const own = podUserNamespace(sc?.namespaceOptions, `${SC}.namespace_options`);
  if (sc?.namespaceOptions?.usernsOptions && own !== undefined && !sameMapping(own, userns)) {
    throw invalidField(`${SC}.namespace_options.userns_options`, "must be the pod's own user namespace mappings");
  }
  if (userns && privileged) throw invalidField(`${SC}.privileged`, 'a container in a pod with a user namespace cannot be privileged');
  checkAppArmor(sc?.apparmor, sc?.apparmorProfile ?? '', `${SC}.apparmor`);

  const user = resolveUser(selectUserSource(sc ?? {}, input.imageConfig.User, SC), {
    passwd: input.imageEtc?.passwd,
    group: input.imageEtc?.group,
    supplementalGroups: sc?.supplementalGroups ?? [],
    supplementalGroupsPolicy: sc?.supplementalGroupsPolicy,
    fieldPrefix: SC,
  });

  const available = availableCapabilities(env);
  const caps = privileged
    ? computeCapabilities(available, undefined, available, SC)
    : computeCapabilities(DEFAULT_CAPABILITIES, sc?.capabilities, available, SC);

  const hostIpc = sandboxSc?.namespaceOptions?.ipc === NamespaceMode.NODE || sc?.namespaceOptions?.ipc === NamespaceMode.NODE;
  const hostname = sandboxConfig.hostname !== '' ? sandboxConfig.hostname : (env.nodeHostname ?? '');

  const mountOpts = {
    recursiveReadOnlySupported: env.recursiveReadOnlyMounts ?? false,
    lookupPropagation: input.lookupPropagation,
    imageMountSources: input.imageMountSources,
  };
  const criBinds = config.mounts.map((m, i) => criMountToBind(m, i, mountOpts));
  const binds = mergeBinds(
    mergeBinds(criBinds, sandboxFileBinds(input.sandboxFiles, sc?.readonlyRootfs ?? false, hostIpc)),
    imageVolumeBinds(input.imageVolumes ?? []),
  );

  const opts: SpecOpt[] = [
    withProcessArgs(resolveProcessArgs(config.command, config.args, input.imageConfig)),
    withEnv(containerEnv(config, input.imageConfig, hostname)),
    withCwd(resolveWorkingDir(config.workingDir, input.imageConfig)),
    withTerminal(config.tty),
    withUser(user),
    withCapabilities(caps),
    withNamespaces(
      containerNamespaces(
        {
          options: sc?.namespaceOptions,
          sandboxOptions: sandboxSc?.namespaceOptions,
          sandboxPid: input.sandboxPid,
          netnsPath: input.netnsPath,
          targetPid: input.targetPid,
          cgroupNamespace: (env.cgroup?.cgroupV2 ?? false) && !privileged,
        },
        `${SC}.namespace_options`,
      ),
    ),
    // No spec.hostname: the pod's UTS namespace already carries it (pause set
    // it), and with an empty pod hostname the node name used for HOSTNAME
    // must not be written into the pod's namespace.
    withBindMounts(binds),
  ];

  if (privileged) opts.push(withHostDevices(input.hostDevices ?? []));
  const owner =
    env.deviceOwnershipFromSecurityContext && (user.uid !== 0 || user.gid !== 0) ? { uid: user.uid, gid: user.gid } : {};
  opts.push(withCriDevices(config.devices, input.lookupDevice, owner));
  const cdiNames = requestedCdiDevices(config);
  if (cdiNames.length > 0) {
    if (!input.cdiLookup) throw invalidField('CDI_devices', 'CDI devices are not available on this node');
    // After the CRI's own devices, mounts and env, as the CDI library edits a finished spec.
    opts.push(withCdiEdits(resolveCdiDevices(cdiNames, input.cdiLookup), input.lookupDevice));
  }
  if (privileged) opts.push(withAllDevicesAllowed);

  opts.push(
    withMaskedPaths(sc?.maskedPaths ?? [], `${SC}.masked_paths`),
    withReadonlyPaths(sc?.readonlyPaths ?? [], `${SC}.readonly_paths`),
  );
  if (privileged) opts.push(withPrivilegedFilesystems);

  opts.push(
    withSeccomp(
      resolveSeccomp({
        choice: seccompChoice(sc?.seccomp, sc?.seccompProfilePath ?? '', `${SC}.seccomp`),
        privileged,
        seccompEnabled: env.seccompEnabled ?? true,
        effectiveCaps: caps.effective,
        arch: env.arch ?? 'amd64',
        localhostProfile: input.seccompProfile,
        field: `${SC}.seccomp`,
      }),
    ),
    withNoNewPrivileges(sc?.noNewPrivs ?? false),
    withReadonlyRootfs(sc?.readonlyRootfs ?? false),
  );

  const resources = config.linux?.resources;
  if (resources) {
    opts.push(withResources(resourcesToOci(resources, 'linux.resources', env.cgroup)));
    opts.push(withOomScoreAdj(toSafeNumber(resources.oomScoreAdj, 'linux.resources.oom_score_adj'), env.minOomScoreAdj));
  }
  opts.push(withCgroupsPath(cgroupsPath(sandboxConfig.linux?.cgroupParent ?? '', input.containerId, env.cgroupDriver)));
  if (userns) opts.push(withUserNamespace(userns, nsPath(input.sandboxPid, 'user')));

  const md = sandboxConfig.metadata;
  opts.push(
    withAnnotations({
      ...passthroughAnnotations(sandboxConfig.annotations, env.podAnnotationPassthrough ?? []),
      ...passthroughAnnotations(config.annotations, env.containerAnnotationPassthrough ?? []),
      [CRI_ANNOTATIONS.containerType]: CONTAINER_TYPE_CONTAINER,
      [CRI_ANNOTATIONS.sandboxId]: input.sandboxId,
      [CRI_ANNOTATIONS.sandboxNamespace]: md?.namespace ?? '',
      [CRI_ANNOTATIONS.sandboxUid]: md?.uid ?? '',
      [CRI_ANNOTATIONS.sandboxName]: md?.name ?? '',
      [CRI_ANNOTATIONS.containerName]: config.metadata.name,
      [CRI_ANNOTATIONS.imageName]: input.imageName,
    }),
  );

  const spec = applyOpts(newBaseSpec(env.rootfsPath), ...opts);
  return { spec, user };
}
