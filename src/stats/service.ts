/**
 * Resource usage of containers and pods, gathered from containerd (task
 * metrics: the cgroup as the shim reads it; snapshot usage: the writable
 * layer) and from the pod's network namespace.
 *
 * Pod CPU and memory come from the pod's own cgroup (the parent the kubelet
 * gives in the sandbox config), which also counts containers that already
 * exited. A pod without one (crictl, a kubelet without per-pod cgroups) gets
 * the sum of its running tasks: the pause process and every running
 * container.
 */
import { statfs } from 'node:fs/promises';
import { nowNs } from '../util/time';
import type { CallContext } from '../containerd/call';
import type { ContainerdConnection } from '../containerd/connection';
import { NotFoundError } from '../errors';
import type { ContainerRecord } from '../container/model';
import type { Logger } from '../log/logger';
import type { SandboxRecord } from '../sandbox/model';
import { CpuRateTracker, decodeTaskMetric, sumSamples, TaskSample } from './cgroup-metrics';
import { InterfaceCounters, readNetDev } from './net-dev';
import { podCgroupPath, readPodCgroup } from './pod-cgroup';
import { ProcessCounts, readProcessCounts } from './process-counts';

export interface LayerUsage {
  timestampNs: bigint;
  mountpoint: string;
  usedBytes: bigint;
  inodesUsed: bigint;
}

export interface ContainerUsage {
  record: ContainerRecord;
  /** undefined when the container has no running task. */
  sample?: TaskSample;
  nanoCores?: bigint;
  writableLayer?: LayerUsage;
}

export interface SandboxUsage {
  record: SandboxRecord;
  sample?: TaskSample;
  nanoCores?: bigint;
  network?: { timestampNs: bigint; interfaces: InterfaceCounters[] };
  containers: ContainerUsage[];
}

/** Size and inodes of the filesystem that holds the writable layers. */
export interface FilesystemCapacity {
  mountpoint: string;
  capacityBytes: bigint;
  inodes: bigint;
  inodesFree: bigint;
}

/** What the cAdvisor-style metrics need beyond the stats: per-container process counts and the layers' filesystem. */
export interface MetricsUsage {
  sandboxes: SandboxUsage[];
  /** By container ID, for running containers whose cgroup could be read. */
  processes: Map<string, ProcessCounts>;
  filesystem?: FilesystemCapacity;
}

export interface StatsServiceDeps {
  conn: ContainerdConnection;
  snapshotter: string;
  /** The mount holding the snapshotter's directory (the kubelet's filesystem ID for writable layers). */
  snapshotterMountpoint(call: CallContext): Promise<string>;
  cgroupDriver: 'cgroupfs' | 'systemd';
  cgroupV2: boolean;
  logger: Logger;
}

/**
 * containerd computes a writable layer's size by walking it, which costs
 * time in proportion to its files; the kubelet asks every 10–15 s for every
 * container. Sizes are kept this long, as containerd's plugin refreshes its
 * own only every 10 s.
 */
const LAYER_USAGE_TTL_MS = 10_000;
/** With more IDs than this, one unfiltered Metrics call is cheaper than a filter per ID. */
const MAX_ID_FILTERS = 32;


export class StatsService {
  private readonly cpuRates = new CpuRateTracker();
  private readonly layerUsage = new Map<string, { at: number; value: Promise<LayerUsage | undefined> }>();

  constructor(private readonly deps: StatsServiceDeps) {}

  /** Stats of the given containers; task figures only for those with a running task. */
  async containers(records: readonly ContainerRecord[], call: CallContext): Promise<ContainerUsage[]> {
    const running = records.filter((r) => r.state === 'running').map((r) => r.id);
    const [samples, layers] = await Promise.all([
      this.taskSamples(running, call),
      Promise.all(records.map((r) => this.writableLayer(r.id, call))),
    ]);
    return records.map((record, i) => {
      const sample = samples.get(record.id);
      return { record, sample, nanoCores: sample && this.cpuRates.rate(record.id, sample), writableLayer: layers[i] };
    });
  }

  /** Stats of the given pods and of their containers. */
  async sandboxes(
    sandboxes: readonly SandboxRecord[],
    containersOf: (sandboxId: string) => ContainerRecord[],
    call: CallContext,
  ): Promise<SandboxUsage[]> {
    const members = sandboxes.map((s) => containersOf(s.id));
    const sandboxTasks = sandboxes.filter((s) => s.state === 'ready').map((s) => s.id);
    const [sandboxSamples, containerStats, networks, podCgroups] = await Promise.all([
      this.taskSamples(sandboxTasks, call),
      this.containers(members.flat(), call),
      Promise.all(sandboxes.map((s) => this.network(s))),
      Promise.all(sandboxes.map((s) => this.podCgroup(s))),
    ]);
    const byContainer = new Map(containerStats.map((c) => [c.record.id, c]));
    return sandboxes.map((record, i) => {
      const containers = members[i]!.map((c) => byContainer.get(c.id)!);
      const taskSamples = [sandboxSamples.get(record.id), ...containers.map((c) => c.sample)].filter(
        (s): s is TaskSample => s !== undefined,
      );
      const sample = podCgroups[i] ?? sumSamples(record.id, taskSamples);
      return {
        record,
        sample,
        nanoCores: sample && this.cpuRates.rate(`pod:${record.id}`, sample),
        network: networks[i],
        containers: containers.filter((c) => c.record.state === 'running'),
      };
    });
  }

  /**
   * Everything ListPodSandboxMetrics reports for the given pods: the same
   * samples as the stats RPCs (one containerd metrics call for all tasks),
   * plus process counts and filesystem capacity read on the host.
   */
  async metrics(
    sandboxes: readonly SandboxRecord[],
    containersOf: (sandboxId: string) => ContainerRecord[],
    call: CallContext,
  ): Promise<MetricsUsage> {
    const [usage, filesystem] = await Promise.all([
      this.sandboxes(sandboxes, containersOf, call),
      this.filesystemCapacity(call),
    ]);
    const running = usage.flatMap((u) => u.containers.map((c) => c.record));
    const counts = await Promise.all(running.map((r) => readProcessCounts(r.pid, this.deps.cgroupV2)));
    const processes = new Map<string, ProcessCounts>();
    running.forEach((r, i) => {
      const c = counts[i];
      if (c) processes.set(r.id, c);
    });
    return { sandboxes: usage, processes, filesystem };
  }

  private async filesystemCapacity(call: CallContext): Promise<FilesystemCapacity | undefined> {
    try {
      const mountpoint = await this.deps.snapshotterMountpoint(call);
      const st = await statfs(mountpoint, { bigint: true });
      return { mountpoint, capacityBytes: st.blocks * st.bsize, inodes: st.files, inodesFree: st.ffree };
    } catch (err) {
      this.deps.logger.debug('no filesystem figures for metrics', { error: (err as Error).message });
      return undefined;
    }
  }

  /**
   * The filesystem holding containers' writable layers (the snapshotter's)
   * and what those layers use: the sum over the given snapshot keys (every
   * container's and pod sandbox's own snapshot, named by its ID). A key
   * whose snapshot is gone counts nothing.
   */
  async writableLayers(keys: readonly string[], call: CallContext): Promise<LayerUsage> {
    const [mountpoint, layers] = await Promise.all([
      this.deps.snapshotterMountpoint(call),
      Promise.all(keys.map((k) => this.writableLayer(k, call))),
    ]);
    let usedBytes = 0n;
    let inodesUsed = 0n;
    for (const layer of layers) {
      if (!layer) continue;
      usedBytes += layer.usedBytes;
      inodesUsed += layer.inodesUsed;
    }
    return { timestampNs: nowNs(), mountpoint, usedBytes, inodesUsed };
  }

  /** Drops remembered samples of containers and pods that no longer exist. */
  forgetAllBut(liveIds: ReadonlySet<string>): void {
    this.cpuRates.prune((key) => liveIds.has(key.startsWith('pod:') ? key.slice(4) : key));
    for (const id of this.layerUsage.keys()) if (!liveIds.has(id)) this.layerUsage.delete(id);
  }

  private async taskSamples(ids: readonly string[], call: CallContext): Promise<Map<string, TaskSample>> {
    const out = new Map<string, TaskSample>();
    if (ids.length === 0) return out;
    const filters = ids.length <= MAX_ID_FILTERS ? ids.map((id) => `id==${id}`) : [];
    const { metrics } = await this.deps.conn.tasks.metrics({ filters }, call);
    const wanted = new Set(ids);
    for (const m of metrics) {
      if (!wanted.has(m.id)) continue;
      const sample = decodeTaskMetric(m);
      if (sample) out.set(m.id, sample);
      else this.deps.logger.debug('task metrics of an unknown kind', { containerId: m.id, typeUrl: m.data?.typeUrl });
    }
    return out;
  }

  private writableLayer(id: string, call: CallContext): Promise<LayerUsage | undefined> {
    const cached = this.layerUsage.get(id);
    if (cached && Date.now() - cached.at < LAYER_USAGE_TTL_MS) return cached.value;
    const value = (async () => {
      const [mountpoint, usage] = await Promise.all([
        this.deps.snapshotterMountpoint(call),
        this.deps.conn.snapshots.usage({ snapshotter: this.deps.snapshotter, key: id }, call),
      ]);
      return { timestampNs: nowNs(), mountpoint, usedBytes: usage.size, inodesUsed: usage.inodes };
    })().catch((err: unknown) => {
      this.layerUsage.delete(id);
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    this.layerUsage.set(id, { at: Date.now(), value });
    return value;
  }

  private async podCgroup(sandbox: SandboxRecord): Promise<TaskSample | undefined> {
    if (sandbox.state !== 'ready') return undefined;
    const cgroupPath = podCgroupPath(sandbox.config.linux?.cgroupParent ?? '', this.deps.cgroupDriver);
    return cgroupPath === undefined ? undefined : readPodCgroup(sandbox.id, cgroupPath, this.deps.cgroupV2);
  }

  private async network(sandbox: SandboxRecord): Promise<SandboxUsage['network']> {
    if (sandbox.state !== 'ready' || !sandbox.netnsPath) return undefined;
    const interfaces = await readNetDev(sandbox.pid);
    return interfaces && { timestampNs: nowNs(), interfaces };
  }
}
