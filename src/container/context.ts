import { EventEmitter } from 'node:events';
import type { AdapterConfig } from '../config/load';
import type { ContainerdConnection } from '../containerd/connection';
import type { ImageService } from '../image/service';
import type { Logger } from '../log/logger';
import type { SandboxIndex } from '../sandbox/sandbox-index';
import type { HandlerFeatures } from '../host/runtime-features';
import type { CdiLookup, RuntimeEnvironment } from '../oci';
import type { KeyedMutex } from '../util/keyed-mutex';
import type { LongTimer } from '../util/long-timer';
import type { PendingCreations } from '../util/pending';
import type { NameRegistrar } from '../util/name-registrar';
import type { ImageEtcCache } from './image-files';
import type { ContainerRecord } from './model';

/** The paths a task's stdio is wired to (FIFOs the adapter reads), or '' for none. */
export interface TaskStdio {
  stdin: string;
  stdout: string;
  stderr: string;
  terminal: boolean;
}

/** Container stdio: FIFOs in, CRI log file out. */
export interface ContainerIo {
  /** Creates the FIFOs and starts copying output to the log file. */
  open(record: ContainerRecord): Promise<TaskStdio>;
  /** The task exists: its writer side is open, so readers can now see EOF when it exits. */
  started(id: string): Promise<void>;
  /** The task exited: resolves when its output is fully in the log file, then frees everything. */
  finish(id: string): Promise<void>;
  /** ReopenContainerLog. */
  reopen(id: string): Promise<void>;
  /** Reattaches to a running task's FIFOs after an adapter restart. */
  reattach(record: ContainerRecord): Promise<void>;
  /** Attach: the running container's output as it comes, its stdin, and the end of its output. */
  attach(id: string): AttachedIo | undefined;
}

export type OutputListener = (stream: 'stdout' | 'stderr', chunk: Buffer) => void;

export interface AttachedIo {
  /** Subscribes to output; returns the unsubscribe function. */
  onOutput(listener: OutputListener): () => void;
  /** The container's stdin FIFO, when it was created with stdin. */
  stdin: NodeJS.WritableStream | null;
  /** Resolves when the container's output has ended. */
  ended: Promise<void>;
}

export type ContainerEventKind = 'created' | 'started' | 'stopped' | 'deleted';

export interface ContainerContext {
  config: AdapterConfig;
  conn: ContainerdConnection;
  images: ImageService;
  /** The pods, read to check a container's pod (the sandbox domain owns them). */
  sandboxes: SandboxIndex;
  env: RuntimeEnvironment;
  /** What each runtime handler's runc supports (probed at start), by handler name. */
  runtimeFeatures: ReadonlyMap<string, HandlerFeatures>;
  /** CDI devices from the node's spec files. */
  cdi: { lookup: CdiLookup; refreshFor(names: readonly string[]): Promise<void> };
  logger: Logger;
  containers: Map<string, ContainerRecord>;
  names: NameRegistrar;
  locks: KeyedMutex;
  io: ContainerIo;
  /** 'event' (kind, record): feeds GetContainerEvents. */
  events: EventEmitter;
  /** Pending stops' SIGKILL deadlines, by container ID (see stopContainer). */
  killTimers: Map<string, LongTimer>;
  /** CreateContainer calls under way or interrupted (see container/recover.ts). */
  pending: PendingCreations<ContainerMarker>;
  /** Each image's /etc/passwd and /etc/group, once read (see ImageEtcCache). */
  imageEtc: ImageEtcCache;
}

export interface ContainerMarker {
  sandboxId: string;
}
