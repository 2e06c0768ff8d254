import { EventEmitter } from 'node:events';
import type { CallContext } from '../containerd/call';
import { updateContainerFields } from '../containerd/containers';
import { OCI_LINUX_RESOURCES_TYPE_URL, OCI_SPEC_TYPE_URL, packJson } from '../containerd/typeurl';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors';
import type { EventMonitor, TaskExitEvent } from '../events/monitor';
import type { ContainerConfig, LinuxContainerResources, PodSandboxConfig } from '../gen/runtime/v1/api';
import { resourcesToOci } from '../oci/resources';
import { KeyedMutex } from '../util/keyed-mutex';
import { NameRegistrar } from '../util/name-registrar';
import type { AttachedIo, ContainerContext, ContainerEventKind } from './context';
import { createContainer } from './create';
import { ExecOptions, ExecProcess } from './exec-process';
import { execSync, ExecSyncResult, execTimeoutSeconds } from './exec-sync';
import { ImageEtcCache } from './image-files';
import { recordExit, removeContainer, startContainer, stopContainer } from './lifecycle';
import type { ContainerRecord } from './model';
import { reconcileContainers, recoverContainers, sweepContainerLeftovers } from './recover';
import { checkStreams, StreamFlags } from './stream-requests';
import { LeftoverSweeper, PendingCreations } from '../util/pending';
import path from 'node:path';
import { writeContainerStatus } from './status-file';

export type ContainerEventListener = (kind: ContainerEventKind, record: ContainerRecord) => void;

/** What Attach gets of a running container: its own stdio, and its init process's stdin and terminal. */
export interface ContainerAttachment {
  io: AttachedIo;
  closeStdin(): Promise<void>;
  resize(width: number, height: number): Promise<void>;
}

/** The container domain: flows, the in-memory index, and its upkeep from containerd's events. */
export class ContainerService {
  private readonly ctx: ContainerContext;
  private readonly sweeper: LeftoverSweeper;

  constructor(deps: Pick<ContainerContext, 'config' | 'conn' | 'images' | 'sandboxes' | 'env' | 'runtimeFeatures' | 'cdi' | 'logger' | 'io'>) {
    this.ctx = {
      ...deps,
      containers: new Map(),
      names: new NameRegistrar('container'),
      locks: new KeyedMutex(),
      events: new EventEmitter(),
      killTimers: new Map(),
      pending: new PendingCreations(path.join(deps.config.root, 'pending', 'containers'), () => this.sweeper.soon()),
      imageEtc: new ImageEtcCache(),
    };
    this.sweeper = new LeftoverSweeper(
      () => sweepContainerLeftovers(this.ctx, {}),
      () => this.ctx.conn.ready,
      (err) => this.ctx.logger.warn('sweeping unfinished containers failed', { error: err.message }),
    );
    this.ctx.events.setMaxListeners(0);
  }

  /**
   * An image mounted into a container (Mount.image) stays until the
   * container is removed (a stopped one may be inspected, and its view is
   * still mounted): which container, if any, for RemoveImage's error.
   */
  imageUser(imageId: string): string | undefined {
    const c = [...this.ctx.containers.values()].find((r) => r.imageMounts.some((m) => m.imageId === imageId));
    return c && `container ${c.id} mounts it (Mount.image); remove the container first`;
  }

  watch(events: EventMonitor): void {
    events.on('oom', (containerId: string) => {
      const record = this.ctx.containers.get(containerId);
      if (!record) return;
      record.oomKilled = true;
      // The OOM event may come after the exit was recorded (the two are separate events, and an
      // exit found by reconciliation has no order with them at all): the reason still changes,
      // as in containerd's CRI plugin.
      void this.ctx.locks
        .run(record.id, async () => {
          if (record.state !== 'exited' || record.reason === 'OOMKilled' || !this.ctx.containers.has(record.id)) return;
          record.reason = 'OOMKilled';
          await writeContainerStatus(this.ctx.config.root, record);
        })
        .catch((err: unknown) => this.ctx.logger.error('recording OOM failed', { containerId: record.id, error: (err as Error).message }));
    });
    events.on('exit', (e: TaskExitEvent) => {
      const record = this.ctx.containers.get(e.containerId);
      if (!record || e.execId !== e.containerId) return;
      void this.ctx.locks
        .run(record.id, () => recordExit(this.ctx, record, { exitStatus: e.exitStatus, exitedAt: e.exitedAt }))
        .catch((err: unknown) => this.ctx.logger.error('recording exit failed', { containerId: record.id, error: (err as Error).message }));
    });
    events.on('resync', () => void this.reconcile());
  }

  /**
   * After a gap in the event stream: exits missed meanwhile are asked of
   * containerd (again a few seconds later if it could not answer yet, as
   * while it reloads its shims), then leftovers of interrupted creations go.
   */
  private async reconcile(attempt = 0): Promise<void> {
    try {
      await reconcileContainers(this.ctx, {});
    } catch (err) {
      this.ctx.logger.warn('container reconcile failed', { error: (err as Error).message, attempt });
      if (attempt < 5 && this.ctx.conn.ready) setTimeout(() => void this.reconcile(attempt + 1), 2000).unref();
    }
    await this.sweeper.run();
  }

  /** Rebuilds the containers from containerd, then removes what interrupted CreateContainer calls left. */
  async recover(call: CallContext): Promise<void> {
    await recoverContainers(this.ctx, call);
    await this.sweeper.run();
  }

  /** Lifecycle events (created, started, stopped, deleted) as they happen; returns the unsubscribe function. */
  subscribe(listener: ContainerEventListener): () => void {
    this.ctx.events.on('event', listener);
    return () => this.ctx.events.off('event', listener);
  }

  create(sandboxId: string, config: ContainerConfig | undefined, sandboxConfig: PodSandboxConfig | undefined, call: CallContext) {
    return createContainer(this.ctx, sandboxId, config, sandboxConfig, call);
  }

  start(id: string, call: CallContext): Promise<void> {
    return startContainer(this.ctx, this.require(id), call);
  }

  /** Stopping an unknown container succeeds: the kubelet retries stops of containers it lost track of. */
  stop(id: string, timeoutSeconds: number, call: CallContext): Promise<void> {
    const record = this.known(id);
    return record ? stopContainer(this.ctx, record, timeoutSeconds, call) : Promise.resolve();
  }

  /** Removing an unknown container succeeds, as the spec asks of removal. */
  remove(id: string, call: CallContext): Promise<void> {
    const record = this.known(id);
    return record ? removeContainer(this.ctx, record, call) : Promise.resolve();
  }

  /** StopPodSandbox: every container of the pod, at once, without grace. */
  async stopAll(sandboxId: string, signal?: AbortSignal): Promise<void> {
    await Promise.all(this.ofSandbox(sandboxId).map((c) => stopContainer(this.ctx, c, 0, { signal })));
  }

  /** RemovePodSandbox: every container of the pod goes with it. */
  async removeAll(sandboxId: string, signal?: AbortSignal): Promise<void> {
    await Promise.all(this.ofSandbox(sandboxId).map((c) => removeContainer(this.ctx, c, { signal })));
  }

  /** UpdateContainerResources: the running task's cgroup first, then the stored spec. */
  async updateResources(id: string, resources: LinuxContainerResources | undefined, call: CallContext): Promise<void> {
    const record = this.require(id);
    if (!resources) return;
    await this.ctx.locks.run(record.id, async () => {
      if (record.state === 'exited') throw new FailedPreconditionError(`container ${record.id} has exited; its resources cannot change`);
      const oci = resourcesToOci(resources, 'linux', this.ctx.env.cgroup);
      if (record.state === 'running') {
        await this.ctx.conn.tasks.update(
          { containerId: record.id, resources: packJson(OCI_LINUX_RESOURCES_TYPE_URL, oci), annotations: {} },
          call,
        );
      }
      if (record.spec) {
        record.spec.linux.resources = { ...record.spec.linux.resources, ...oci };
        await updateContainerFields(this.ctx.conn, record.id, { spec: packJson(OCI_SPEC_TYPE_URL, record.spec) }, ['spec'], call);
      }
      record.config = { ...record.config, linux: { ...record.config.linux!, resources } };
    });
  }

  /** ExecSync, with the output cap and drain time of the adapter's settings. */
  execSync(id: string, cmd: string[], timeoutSeconds: bigint, call: CallContext): Promise<ExecSyncResult> {
    const record = this.require(id);
    return execSync(
      this.ctx,
      record,
      cmd,
      execTimeoutSeconds(timeoutSeconds),
      {
        maxOutputBytes: this.ctx.config.execSync.maxOutputBytes,
        drainTimeoutMs: this.ctx.config.logging.drainTimeoutSeconds * 1000,
      },
      call,
    );
  }

  /** ReopenContainerLog: the kubelet renamed the log file; output goes on into a fresh one at the same path. */
  async reopenLog(id: string): Promise<void> {
    const record = this.require(id);
    if (record.state !== 'running') throw new FailedPreconditionError(`container ${record.id} is not running`);
    await this.ctx.io.reopen(record.id);
  }

  /**
   * Exec is answered with a URL; the request is checked now, so the kubelet
   * gets a proper error instead of a URL that fails later.
   */
  checkExec(id: string, cmd: string[], flags: StreamFlags): ContainerRecord {
    if (cmd.length === 0) throw new InvalidArgumentError('Exec: cmd must not be empty');
    checkStreams('Exec', flags);
    return this.running(id);
  }

  /** Attach, checked as Exec is; the terminal setting must be the container's own. */
  checkAttach(id: string, flags: StreamFlags): ContainerRecord {
    checkStreams('Attach', flags);
    const record = this.running(id);
    if (flags.tty !== record.config.tty) {
      throw new InvalidArgumentError(`Attach: tty=${flags.tty} does not match the container's tty=${record.config.tty}`);
    }
    return record;
  }

  /** A process for streaming Exec in a running container. */
  startExec(id: string, opts: ExecOptions, call: CallContext): Promise<ExecProcess> {
    return ExecProcess.start(this.ctx, this.running(id), opts, call);
  }

  /** The stdio of a running container, for streaming Attach. */
  attach(id: string): ContainerAttachment {
    const record = this.running(id);
    const io = this.ctx.io.attach(record.id);
    if (!io) throw new FailedPreconditionError(`container ${record.id} is not running`);
    const tasks = this.ctx.conn.tasks;
    return {
      io,
      closeStdin: async () => void (await tasks.closeIo({ containerId: record.id, execId: '', stdin: true })),
      resize: async (width, height) => void (await tasks.resizePty({ containerId: record.id, execId: '', width, height })),
    };
  }

  /** An exact ID, or a unique prefix of at least 4 characters (crictl lets people type one). */
  get(id: string): ContainerRecord | undefined {
    const exact = this.ctx.containers.get(id);
    if (exact || id.length < 4) return exact;
    const matches = [...this.ctx.containers.values()].filter((c) => c.id.startsWith(id));
    return matches.length === 1 ? matches[0] : undefined;
  }

  /** The one not-found rule for containers: an empty ID is the caller's mistake, an unknown one is NOT_FOUND. */
  require(id: string): ContainerRecord {
    const record = this.known(id);
    if (!record) throw new NotFoundError(`container ${id} not found`);
    return record;
  }

  /** A container that must be running for the call to make sense (Exec, Attach). */
  running(id: string): ContainerRecord {
    const record = this.require(id);
    if (record.state !== 'running') throw new FailedPreconditionError(`container ${record.id} is not running`);
    return record;
  }

  list(): ContainerRecord[] {
    return [...this.ctx.containers.values()];
  }

  ofSandbox(sandboxId: string): ContainerRecord[] {
    return this.list().filter((c) => c.sandboxId === sandboxId);
  }

  /** Lookup for calls where an unknown ID is fine (stop, remove); an empty one never is. */
  private known(id: string): ContainerRecord | undefined {
    if (!id) throw new InvalidArgumentError('container_id is required');
    return this.get(id);
  }
}
