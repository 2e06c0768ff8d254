/**
 * OCI runtime specs for pod sandboxes and containers, built from the CRI
 * configs and the image config by small pure options (see oci-types.ts
 * SpecOpt). Everything that needs the filesystem (passwd/group contents,
 * device nodes, mount propagation, seccomp profile files, the adapter's own
 * oom_score_adj and capabilities) is read by the caller and passed in.
 */
export { buildContainerSpec } from './container';
export type { ContainerSpecInput, ContainerSpecOutput } from './container';
export { buildSandboxSpec, sandboxResources } from './sandbox';
export type { SandboxSpecInput, SandboxSpecOutput } from './sandbox';
export type { RuntimeEnvironment } from './environment';
export type { ImageConfig, ImageConfigFile, OciSpec, OciProcess, OciMount, OciSeccomp, SpecOpt } from './oci-types';
export { applyOpts, OCI_VERSION } from './oci-types';
export type { ResolvedUser } from './user';
export { parseGroup, parsePasswd, resolveUser, selectUserSource } from './user';
export type { SandboxFiles, PropagationLookup, HostPropagation } from './mounts';
export { imageVolumesToCreate } from './mounts';
export type { DeviceLookup, HostDevice } from './devices';
export type { CdiLookup } from './cdi';
export { requestedCdiDevices } from './cdi';
export { ALL_CAPABILITIES, parseCapabilityMask } from './capabilities';
export { mergeEnv, resolveProcessArgs } from './process';
export type { SeccompChoice, SeccompArch } from './seccomp';
export { seccompChoice, seccompProfileFile, seccompArchFromNode, defaultSeccompProfile } from './seccomp';
export type { CgroupDriverName, CgroupCapabilities } from './resources';
export { cgroupsPath, clampOomScoreAdj } from './resources';
export { CRI_ANNOTATIONS } from './annotations';
export { DEFAULT_CAPABILITIES, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from './defaults';
