import { PodSandboxConfig, PodSandboxMetadata } from '../gen/runtime/v1/api';
import type { CniResult } from '../network/cni';
import type { OciSpec } from '../oci';

export type SandboxState = 'ready' | 'notready';

/** One pod sandbox as the adapter knows it; rebuilt from containerd on restart. */
export interface SandboxRecord {
  id: string;
  /** name_namespace_uid_attempt, unique while the sandbox exists. */
  name: string;
  config: PodSandboxConfig;
  /** Nanoseconds since the epoch. */
  createdAt: bigint;
  runtimeHandler: string;
  /** containerd runtime type of that handler, for verbose status. */
  runtimeType: string;
  imageId: string;
  netnsName?: string;
  netnsPath?: string;
  ips: string[];
  cniResult?: CniResult;
  /** CNI DEL done and namespace removed (StopPodSandbox ran). */
  networkTornDown: boolean;
  state: SandboxState;
  pid: number;
  spec?: OciSpec;
}

/** What is written to the infra container's extension: enough to rebuild the record. */
export interface SandboxMetadata {
  version: 1;
  id: string;
  name: string;
  config: unknown;
  createdAt: string;
  runtimeHandler: string;
  runtimeType: string;
  imageId: string;
  netnsName?: string;
  netnsPath?: string;
  ips: string[];
  cniResult?: CniResult;
  networkTornDown: boolean;
}

export function toMetadata(r: SandboxRecord): SandboxMetadata {
  return {
    version: 1,
    id: r.id,
    name: r.name,
    config: PodSandboxConfig.toJSON(r.config),
    createdAt: r.createdAt.toString(),
    runtimeHandler: r.runtimeHandler,
    runtimeType: r.runtimeType,
    imageId: r.imageId,
    netnsName: r.netnsName,
    netnsPath: r.netnsPath,
    ips: r.ips,
    cniResult: r.cniResult,
    networkTornDown: r.networkTornDown,
  };
}

export function fromMetadata(m: SandboxMetadata, state: SandboxState, pid: number): SandboxRecord {
  return {
    id: m.id,
    name: m.name,
    config: PodSandboxConfig.fromJSON(m.config),
    createdAt: BigInt(m.createdAt),
    runtimeHandler: m.runtimeHandler,
    runtimeType: m.runtimeType,
    imageId: m.imageId,
    netnsName: m.netnsName,
    netnsPath: m.netnsPath,
    ips: m.ips,
    cniResult: m.cniResult,
    networkTornDown: m.networkTornDown,
    state,
    pid,
  };
}

/** A pod config whose metadata is known to be there and complete (RunPodSandbox checked it). */
export type ValidPodSandboxConfig = PodSandboxConfig & { metadata: PodSandboxMetadata };

/** The kubelet's name for a pod attempt; unique per (name, namespace, uid, attempt). */
export function sandboxName(config: ValidPodSandboxConfig): string {
  const md = config.metadata;
  return [md.name, md.namespace, md.uid, String(md.attempt)].join('_');
}

