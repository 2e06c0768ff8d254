import { ContainerConfig } from '../gen/runtime/v1/api';
import type { ProcessIdentity } from '../host/process-identity';
import type { OciSpec, ResolvedUser } from '../oci';

export type ContainerState = 'created' | 'running' | 'exited' | 'unknown';

/** What a container's metadata records of one image mount. */
export interface ImageMountRecord {
  /** Index in config.mounts. */
  index: number;
  imageId: string;
  /** The View snapshot's key. */
  snapshotKey: string;
  /** Where the view is mounted on the host. */
  hostDir: string;
  /** The host path bound into the container: hostDir, or the path under it that image_sub_path names. */
  source: string;
}

/** What changes over a container's life; kept in a status file under the adapter's root dir. */
export interface ContainerStatusFields {
  state: ContainerState;
  /** Nanoseconds since the epoch; 0 when not yet. */
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  reason: string;
  message: string;
  pid: number;
  /**
   * The identity the first process really got, read from the kernel once
   * runc set it up (before the process ran a line of its own); absent
   * until the container is started.
   */
  processUser?: ProcessIdentity;
  /**
   * Milliseconds since the epoch at which a stop's grace period ends and the
   * container gets SIGKILL; set while a stop with a grace period waits, so an
   * adapter restarted meanwhile still kills it on time.
   */
  killAt?: number;
}

/** One container as the adapter knows it. */
export interface ContainerRecord extends Omit<ContainerStatusFields, 'startedAt' | 'finishedAt'> {
  id: string;
  sandboxId: string;
  /** name_sandboxname_namespace_uid_attempt */
  name: string;
  config: ContainerConfig;
  createdAt: bigint;
  startedAt: bigint;
  finishedAt: bigint;
  /** The image as the kubelet asked for it. */
  imageRef: string;
  imageId: string;
  /** Repo digest when known: the kubelet shows it as imageID. */
  imageDigestRef: string;
  /** Absolute path of the CRI log file, '' when the pod has no log directory. */
  logPath: string;
  user: ResolvedUser;
  stopSignal: string;
  runtimeType: string;
  spec?: OciSpec;
  /** An OOM event arrived for this container's cgroup before it exited. */
  oomKilled: boolean;
  /** Its image mounts (Mount.image): the views made and mounted for it. */
  imageMounts: ImageMountRecord[];
  /**
   * containerd's task was deleted after the exit (this process saw the delete succeed), and a
   * CRI container never gets another: RemoveContainer skips its Tasks.Delete, which would only
   * answer NotFound. Not persisted; after a restart RemoveContainer asks containerd again.
   */
  taskDeleted?: boolean;
}

/** The immutable part, written once as the containerd container's extension. */
export interface ContainerMetadata {
  version: 1;
  id: string;
  sandboxId: string;
  name: string;
  config: unknown;
  createdAt: string;
  imageRef: string;
  imageId: string;
  imageDigestRef: string;
  logPath: string;
  user: ResolvedUser;
  stopSignal: string;
  runtimeType: string;
  /** Absent in metadata written before image mounts existed. */
  imageMounts?: ImageMountRecord[];
}

export function toMetadata(r: ContainerRecord): ContainerMetadata {
  return {
    version: 1,
    id: r.id,
    sandboxId: r.sandboxId,
    name: r.name,
    config: ContainerConfig.toJSON(r.config),
    createdAt: r.createdAt.toString(),
    imageRef: r.imageRef,
    imageId: r.imageId,
    imageDigestRef: r.imageDigestRef,
    logPath: r.logPath,
    user: r.user,
    stopSignal: r.stopSignal,
    runtimeType: r.runtimeType,
    imageMounts: r.imageMounts,
  };
}

export function toStatusFields(r: ContainerRecord): ContainerStatusFields {
  return {
    state: r.state,
    startedAt: r.startedAt.toString(),
    finishedAt: r.finishedAt.toString(),
    exitCode: r.exitCode,
    reason: r.reason,
    message: r.message,
    pid: r.pid,
    processUser: r.processUser,
    killAt: r.state === 'running' ? r.killAt : undefined,
  };
}

export function fromStored(m: ContainerMetadata, s: ContainerStatusFields | undefined): ContainerRecord {
  return {
    id: m.id,
    sandboxId: m.sandboxId,
    name: m.name,
    config: ContainerConfig.fromJSON(m.config),
    createdAt: BigInt(m.createdAt),
    imageRef: m.imageRef,
    imageId: m.imageId,
    imageDigestRef: m.imageDigestRef,
    logPath: m.logPath,
    user: m.user,
    stopSignal: m.stopSignal,
    runtimeType: m.runtimeType,
    state: s?.state ?? 'created',
    startedAt: BigInt(s?.startedAt ?? '0'),
    finishedAt: BigInt(s?.finishedAt ?? '0'),
    exitCode: s?.exitCode ?? 0,
    reason: s?.reason ?? '',
    message: s?.message ?? '',
    pid: s?.pid ?? 0,
    processUser: s?.processUser,
    killAt: s?.killAt,
    oomKilled: false,
    imageMounts: m.imageMounts ?? [],
  };
}

/** The reason the kubelet shows for an exit, as containerd's CRI plugin words it. */
export function exitReason(exitCode: number, oomKilled: boolean): string {
  if (oomKilled) return 'OOMKilled';
  return exitCode === 0 ? 'Completed' : 'Error';
}

const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10,
  SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19,
  SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28,
  SIGIO: 29, SIGPWR: 30, SIGSYS: 31,
};

/** An image's StopSignal ("SIGTERM", "TERM", "15") as a number; SIGTERM when unset or unknown. */
export function signalNumber(name: string): number {
  if (!name) return 15;
  if (/^\d+$/.test(name)) return Number(name);
  const upper = name.toUpperCase();
  return SIGNALS[upper] ?? SIGNALS[`SIG${upper}`] ?? 15;
}

export function containerName(config: ContainerConfig, sandbox: { name: string; namespace: string; uid: string }): string {
  const md = config.metadata!;
  return [md.name, sandbox.name, sandbox.namespace, sandbox.uid, String(md.attempt)].join('_');
}
