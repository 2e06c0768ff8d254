import type { CallContext } from '../containerd/call';
import type { EventMonitor, TaskExitEvent } from '../events/monitor';
import { KeyedMutex } from '../util/keyed-mutex';
import { NameRegistrar } from '../util/name-registrar';
import type { SandboxContext } from './context';
import type { SandboxRecord } from './model';
import { recoverSandboxes, reconcileSandboxes } from './recover';
import { removePodSandbox } from './remove';
import { runPodSandbox } from './run';
import { stopPodSandbox } from './stop';
import type { PodSandboxConfig } from '../gen/runtime/v1/api';

/** The pod sandbox domain: the flows, the in-memory index they keep, and its upkeep from events. */
export class SandboxService {
  readonly ctx: SandboxContext;
  private podCidr = '';

  constructor(deps: Pick<SandboxContext, 'config' | 'conn' | 'images' | 'cni' | 'env' | 'logger'>) {
    this.ctx = {
      ...deps,
      sandboxes: new Map(),
      names: new NameRegistrar('pod sandbox'),
      locks: new KeyedMutex(),
      podCidr: () => this.podCidr,
      containersOf: { stopAll: async () => undefined, removeAll: async () => undefined },
      networkUsers: [],
    };
    // The kubelet's image GC must not take the image a running pod was started from.
    deps.images.inUse = (imageId) => [...this.ctx.sandboxes.values()].some((s) => s.imageId === imageId);
  }

  /** `release(sandboxId)` runs before a pod's network is torn down, however the pod is stopped or removed. */
  onNetworkTeardown(release: (sandboxId: string) => void): void {
    this.ctx.networkUsers.push(release);
  }

  /** Lets the container domain plug in how a pod's containers are stopped and removed. */
  setContainerHooks(hooks: SandboxContext['containersOf']): void {
    this.ctx.containersOf = hooks;
  }

  watch(events: EventMonitor): void {
    events.on('exit', (e: TaskExitEvent) => {
      const record = this.ctx.sandboxes.get(e.containerId);
      if (!record || e.execId !== e.containerId) return;
      record.state = 'notready';
      record.pid = 0;
      this.ctx.logger.info('pod sandbox infra task exited', { podSandboxId: record.id, exitStatus: e.exitStatus });
    });
    events.on('resync', () => {
      reconcileSandboxes(this.ctx, {}).catch((err: unknown) =>
        this.ctx.logger.warn('sandbox reconcile failed', { error: (err as Error).message }),
      );
    });
  }

  recover(call: CallContext): Promise<void> {
    return recoverSandboxes(this.ctx, call);
  }

  run(config: PodSandboxConfig | undefined, runtimeHandler: string, call: CallContext): Promise<string> {
    return runPodSandbox(this.ctx, config, runtimeHandler, call);
  }

  stop(id: string, call: CallContext): Promise<void> {
    return stopPodSandbox(this.ctx, id, call);
  }

  remove(id: string, call: CallContext): Promise<void> {
    return removePodSandbox(this.ctx, id, call);
  }

  get(id: string): SandboxRecord | undefined {
    return this.ctx.sandboxes.get(id) ?? this.byPrefix(id);
  }

  list(): SandboxRecord[] {
    return [...this.ctx.sandboxes.values()];
  }

  setPodCidr(cidr: string): void {
    this.podCidr = cidr;
  }

  /** crictl lets people use a unique prefix of an ID. */
  private byPrefix(prefix: string): SandboxRecord | undefined {
    if (prefix.length < 4) return undefined;
    const matches = [...this.ctx.sandboxes.values()].filter((s) => s.id.startsWith(prefix));
    return matches.length === 1 ? matches[0] : undefined;
  }
}
