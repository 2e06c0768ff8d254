import type { CallContext } from '../containerd/call';
import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import type { EventMonitor, TaskExitEvent } from '../events/monitor';
import type { LinuxContainerResources, PodSandboxConfig } from '../gen/runtime/v1/api';
import { NetnsPool } from '../network/netns-pool';
import { KeyedMutex } from '../util/keyed-mutex';
import { NameRegistrar } from '../util/name-registrar';
import type { PodContainers, SandboxContext } from './context';
import type { SandboxRecord } from './model';
import path from 'node:path';
import { LeftoverSweeper, PendingCreations } from '../util/pending';
import { recoverSandboxes, reconcileSandboxes, sweepSandboxLeftovers } from './recover';
import { removePodSandbox } from './remove';
import { runPodSandbox } from './run';
import type { SandboxIndex } from './sandbox-index';
import { stopPodSandbox } from './stop';
import { updateSandboxResources } from './update-resources';

export interface SandboxServiceDeps extends Pick<SandboxContext, 'config' | 'conn' | 'images' | 'cni' | 'env' | 'logger'> {
  /** The pod index, shared (read-only) with the container domain. */
  sandboxes: SandboxIndex;
  /** How a pod's containers are stopped and removed with it. */
  containers: PodContainers;
}

/** The pod sandbox domain: the flows, the in-memory index they keep, and its upkeep from events. */
export class SandboxService {
  private readonly ctx: SandboxContext;
  private podCidr = '';
  private readonly sweeper: LeftoverSweeper;

  constructor(deps: SandboxServiceDeps) {
    const { containers, ...rest } = deps;
    this.ctx = {
      ...rest,
      names: new NameRegistrar('pod sandbox'),
      locks: new KeyedMutex(),
      pending: new PendingCreations(path.join(deps.config.root, 'pending', 'sandboxes'), () => this.sweeper.soon()),
      podCidr: () => this.podCidr,
      containersOf: containers,
      networkUsers: [],
      netnsPool: new NetnsPool({ dir: path.join(deps.config.state, 'netns-pool'), size: deps.config.cni.netnsPoolSize, logger: deps.logger }),
    };
    this.sweeper = new LeftoverSweeper(
      () => sweepSandboxLeftovers(this.ctx, {}),
      () => this.ctx.conn.ready,
      (err) => this.ctx.logger.warn('sweeping unfinished pod sandboxes failed', { error: err.message }),
    );
  }

  /** `release(sandboxId)` runs before a pod's network is torn down, however the pod is stopped or removed. */
  onNetworkTeardown(release: (sandboxId: string) => void): void {
    this.ctx.networkUsers.push(release);
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
      reconcileSandboxes(this.ctx, {})
        .catch((err: unknown) => this.ctx.logger.warn('sandbox reconcile failed', { error: (err as Error).message }))
        .then(() => this.sweep());
    });
  }

  /** Rebuilds the pods from containerd, then takes apart what interrupted RunPodSandbox calls left. */
  async recover(call: CallContext): Promise<void> {
    await recoverSandboxes(this.ctx, call);
    await this.sweep();
    await this.ctx.netnsPool.start();
  }

  /** Daemon shutdown: the namespaces still in the pool go (pods keep theirs). */
  close(): Promise<void> {
    return this.ctx.netnsPool.close();
  }

  /**
   * Removes leftovers of interrupted RunPodSandbox calls; run at start,
   * after every gap in containerd's event stream, and soon after an undo
   * failed. What cannot go yet is tried again later.
   */
  sweep(): Promise<void> {
    return this.sweeper.run();
  }

  run(config: PodSandboxConfig | undefined, runtimeHandler: string, call: CallContext): Promise<string> {
    return runPodSandbox(this.ctx, config, runtimeHandler, call);
  }

  /** Stopping an unknown pod succeeds: the kubelet retries stops of pods it lost track of. */
  stop(id: string, call: CallContext): Promise<void> {
    const record = this.ctx.sandboxes.lookup(id);
    return record ? stopPodSandbox(this.ctx, record, call) : Promise.resolve();
  }

  /** Removing an unknown pod succeeds, as the spec asks of removal. */
  remove(id: string, call: CallContext): Promise<void> {
    const record = this.ctx.sandboxes.lookup(id);
    return record ? removePodSandbox(this.ctx, record, call) : Promise.resolve();
  }

  updateResources(
    id: string,
    resources: LinuxContainerResources | undefined,
    overhead: LinuxContainerResources | undefined,
    call: CallContext,
  ): Promise<void> {
    return updateSandboxResources(this.ctx, this.require(id), resources, overhead, call);
  }

  /** An exact ID, or a unique prefix of at least 4 characters. */
  get(id: string): SandboxRecord | undefined {
    return this.ctx.sandboxes.find(id);
  }

  /** The one not-found rule for pods: an empty ID is the caller's mistake, an unknown one is NOT_FOUND. */
  require(id: string): SandboxRecord {
    return this.ctx.sandboxes.require(id);
  }

  /** PortForward is answered with a URL: the pod must be ready, and the ports (chosen per connection later) real. */
  checkPortForward(id: string, ports: number[]): SandboxRecord {
    const record = this.require(id);
    const bad = ports.find((p) => !(p > 0 && p < 65536));
    if (bad !== undefined) throw new InvalidArgumentError(`PortForward: port ${bad} is not a TCP port`);
    if (record.state !== 'ready') throw new FailedPreconditionError(`PortForward: pod sandbox ${record.id} is not ready`);
    return record;
  }

  list(): SandboxRecord[] {
    return [...this.ctx.sandboxes.values()];
  }

  setPodCidr(cidr: string): void {
    this.podCidr = cidr;
  }
}
