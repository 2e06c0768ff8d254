import {
  Container,
  ContainerFilter,
  ContainerState,
  ContainerStatus,
  LinuxContainerUser,
  Signal,
} from '../gen/runtime/v1/api';
import type { ContainerRecord } from '../container/model';
import { labelsMatch } from '../util/label-selector';
import { memoByRecord } from '../util/memo';

const STATES: Record<ContainerRecord['state'], ContainerState> = {
  created: ContainerState.CONTAINER_CREATED,
  running: ContainerState.CONTAINER_RUNNING,
  exited: ContainerState.CONTAINER_EXITED,
  unknown: ContainerState.CONTAINER_UNKNOWN,
};

export function criContainerState(r: ContainerRecord): ContainerState {
  return STATES[r.state];
}

function imageSpec(r: ContainerRecord) {
  return { image: r.imageRef, annotations: r.config.image?.annotations ?? {}, userSpecifiedImage: r.imageRef, runtimeHandler: '', imageRef: r.imageId };
}

/**
 * The kubelet lists every container every second: a container's answer is
 * built once and reused (with its encoding, see wire-encoding.ts) until one
 * of the fields it is made of changes. The config object is replaced, never
 * edited, when it changes.
 */
export const toCriContainer = memoByRecord(
  (r: ContainerRecord) => [r.state, r.config, r.imageDigestRef],
  (r: ContainerRecord): Container => ({
    id: r.id,
    podSandboxId: r.sandboxId,
    metadata: r.config.metadata,
    image: imageSpec(r),
    imageRef: r.imageDigestRef,
    state: criContainerState(r),
    createdAt: r.createdAt,
    labels: r.config.labels,
    annotations: r.config.annotations,
    imageId: r.imageId,
  }),
);

function stopSignal(name: string): Signal {
  if (!name) return Signal.SIGNAL_RUNTIME_DEFAULT;
  const upper = name.toUpperCase();
  const key = `SIGNAL_${upper.startsWith('SIG') ? upper : `SIG${upper}`}` as keyof typeof Signal;
  return Signal[key] ?? Signal.SIGNAL_RUNTIME_DEFAULT;
}

/** Built again only when a field it shows changes (start, exit, an OOM reason, new resources). */
export const toCriContainerStatus = memoByRecord(
  (r: ContainerRecord) => [r.state, r.startedAt, r.finishedAt, r.exitCode, r.reason, r.message, r.config, r.imageDigestRef, r.logPath, r.processUser, r.user],
  (r: ContainerRecord): ContainerStatus => ({
    id: r.id,
    metadata: r.config.metadata,
    state: criContainerState(r),
    createdAt: r.createdAt,
    startedAt: r.startedAt,
    finishedAt: r.finishedAt,
    exitCode: r.exitCode,
    image: imageSpec(r),
    imageRef: r.imageDigestRef,
    reason: r.reason,
    message: r.message,
    labels: r.config.labels,
    annotations: r.config.annotations,
    mounts: r.config.mounts,
    logPath: r.logPath,
    resources: r.config.linux?.resources ? { linux: r.config.linux.resources, windows: undefined } : undefined,
    imageId: r.imageId,
    user: { linux: linuxUser(r) },
    stopSignal: stopSignal(r.stopSignal),
  }),
);

/** What the process was given by the kernel once started; before that, what the spec asks runc for. */
function linuxUser(r: ContainerRecord): LinuxContainerUser {
  const u = r.processUser ?? { uid: r.user.uid, gid: r.user.gid, groups: r.user.additionalGids };
  return { uid: BigInt(u.uid), gid: BigInt(u.gid), supplementalGroups: u.groups.map((g) => BigInt(g)) };
}

export function containerMatches(r: ContainerRecord, filter: ContainerFilter | undefined): boolean {
  if (!filter) return true;
  if (filter.id && !r.id.startsWith(filter.id)) return false;
  if (filter.podSandboxId && !r.sandboxId.startsWith(filter.podSandboxId)) return false;
  if (filter.state && criContainerState(r) !== filter.state.state) return false;
  return labelsMatch(r.config.labels, filter.labelSelector);
}
