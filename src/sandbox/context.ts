import type { AdapterConfig } from '../config/load';
import type { ContainerdConnection } from '../containerd/connection';
import type { ImageService } from '../image/service';
import type { Logger } from '../log/logger';
import type { CniConfigWatcher } from '../network/cni-config';
import type { NetnsPool } from '../network/netns-pool';
import type { RuntimeEnvironment } from '../oci';
import type { KeyedMutex } from '../util/keyed-mutex';
import type { NameRegistrar } from '../util/name-registrar';
import type { PendingCreations } from '../util/pending';
import type { SandboxIndex } from './sandbox-index';

/** What the sandbox flows need of the container domain. */
export interface PodContainers {
  stopAll(sandboxId: string, signal?: AbortSignal): Promise<void>;
  removeAll(sandboxId: string, signal?: AbortSignal): Promise<void>;
}

/** Everything the sandbox flows share. */
export interface SandboxContext {
  config: AdapterConfig;
  conn: ContainerdConnection;
  images: ImageService;
  cni: CniConfigWatcher;
  env: RuntimeEnvironment;
  logger: Logger;
  sandboxes: SandboxIndex;
  names: NameRegistrar;
  locks: KeyedMutex;
  /** RunPodSandbox calls under way or interrupted (see sandbox/recover.ts). */
  pending: PendingCreations<SandboxMarker>;
  /** Pod CIDR from UpdateRuntimeConfig, handed to plugins that take ipRanges. */
  podCidr: () => string;
  /** Stops and removes the pod's containers (the container domain). */
  containersOf: PodContainers;
  /** Network namespaces made ahead, each with the sandbox ID it is named for. */
  netnsPool: NetnsPool;
  /** Called before a pod's network goes, by whoever holds on to it (a port-forward helper in the namespace). */
  networkUsers: Array<(sandboxId: string) => void>;
}

/** What an interrupted RunPodSandbox needs for its undo: the CNI DEL takes the pod's config. */
export interface SandboxMarker {
  /** PodSandboxConfig as JSON. */
  config: unknown;
  hostNetwork: boolean;
}
