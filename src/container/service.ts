import { EventEmitter } from 'node:events';
import type { CallContext } from '../containerd/call';
import { updateContainerFields } from '../containerd/containers';
import { OCI_LINUX_RESOURCES_TYPE_URL, OCI_SPEC_TYPE_URL, packJson } from '../containerd/typeurl';
import { FailedPreconditionError, NotFoundError } from '../errors';
import type { EventMonitor, TaskExitEvent } from '../events/monitor';
import type { ContainerConfig, LinuxContainerResources, PodSandboxConfig } from '../gen/runtime/v1/api';
import { resourcesToOci } from '../oci/resources';
import { KeyedMutex } from '../util/keyed-mutex';
import { NameRegistrar } from '../util/name-registrar';
import type { ContainerContext } from './context';
import { createContainer } from './create';
import { recordExit, removeContainer, startContainer, stopContainer } from './lifecycle';
import type { ContainerRecord } from './model';
import { reconcileContainers, recoverContainers } from './recover';
import { writeContainerStatus } from './status-file';

/** The container domain: flows, the in-memory index, and its upkeep from containerd's events. */
export class ContainerService {
  readonly ctx: ContainerContext;

  constructor(deps: Pick<ContainerContext, 'config' | 'conn' | 'images' | 'sandboxes' | 'env' | 'logger' | 'io'>) {
    this.ctx = {
      ...deps,
      containers: new Map(),
      names: new NameRegistrar('container'),
      locks: new KeyedMutex(),
      events: new EventEmitter(),
    };
    this.ctx.events.setMaxListeners(0);
    deps.sandboxes.setContainerHooks({
      stopAll: async (sandboxId, signal) => {
        await Promise.all(this.ofSandbox(sandboxId).map((c) => stopContainer(this.ctx, c.id, 0, { signal })));
      },
      removeAll: async (sandboxId, signal) => {
        await Promise.all(this.ofSandbox(sandboxId).map((c) => removeContainer(this.ctx, c.id, { signal })));
      },
    });
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
    events.on('resync', () => {
      reconcileContainers(this.ctx, {}).catch((err: unknown) =>
        this.ctx.logger.warn('container reconcile failed', { error: (err as Error).message }),
      );
    });
  }

  recover(call: CallContext): Promise<void> {
    return recoverContainers(this.ctx, call);
  }

  create(sandboxId: string, config: ContainerConfig | undefined, sandboxConfig: PodSandboxConfig | undefined, call: CallContext) {
    return createContainer(this.ctx, sandboxId, config, sandboxConfig, call);
  }

  start(id: string, call: CallContext): Promise<void> {
    return startContainer(this.ctx, this.require(id).id, call);
  }

  stop(id: string, timeoutSeconds: number, call: CallContext): Promise<void> {
    const record = this.get(id);
    return record ? stopContainer(this.ctx, record.id, timeoutSeconds, call) : Promise.resolve();
  }

  remove(id: string, call: CallContext): Promise<void> {
    const record = this.get(id);
    return record ? removeContainer(this.ctx, record.id, call) : Promise.resolve();
  }

  /** UpdateContainerResources: the running task's cgroup first, then the stored spec. */
  async updateResources(id: string, resources: LinuxContainerResources | undefined, call: CallContext): Promise<void> {
    const record = this.require(id);
    if (!resources) return;
    await this.ctx.locks.run(record.id, async () => {
      if (record.state === 'exited') throw new FailedPreconditionError(`container ${id} has exited; its resources cannot change`);
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

  get(id: string): ContainerRecord | undefined {
    const exact = this.ctx.containers.get(id);
    if (exact || id.length < 4) return exact;
    const matches = [...this.ctx.containers.values()].filter((c) => c.id.startsWith(id));
    return matches.length === 1 ? matches[0] : undefined;
  }

  require(id: string): ContainerRecord {
    const record = this.get(id);
    if (!record) throw new NotFoundError(`container ${id} not found`);
    return record;
  }

  list(): ContainerRecord[] {
    return [...this.ctx.containers.values()];
  }

  ofSandbox(sandboxId: string): ContainerRecord[] {
    return this.list().filter((c) => c.sandboxId === sandboxId);
  }
}
