import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { CallContext } from '../containerd/call';
import { deleteTask, getTask, ignoreNotFound, stopTask, TaskStatus } from '../containerd/tasks';
import { unpackJson } from '../containerd/typeurl';
import { PodSandboxConfig } from '../gen/runtime/v1/api';
import { netnsNameFor, netnsPath, removeNetns } from '../network/netns';
import type { OciSpec } from '../oci';
import { EXTENSIONS, KIND_SANDBOX, LABELS } from '../containerd/labels';
import type { SandboxContext, SandboxMarker } from './context';
import { removeSandboxFiles, sandboxFilePaths } from './files';
import { fromMetadata, SandboxMetadata, SandboxRecord } from './model';
import { teardownNetwork } from './stop';
import { reconcileMetrics } from '../metrics';

/**
 * Rebuilds every sandbox from the infra containers' labels and extensions,
 * asking containerd for each task: a pod whose pause exited while the
 * adapter was down comes back NOTREADY.
 */
export async function recoverSandboxes(ctx: SandboxContext, call: CallContext): Promise<void> {
  const { containers } = await ctx.conn.containers.list({ filters: [`labels."${LABELS.kind}"==${KIND_SANDBOX}`] }, call);
  // A RunPodSandbox that never finished is not a pod: sweepSandboxLeftovers takes it apart.
  const unfinished = new Set((await ctx.pending.leftovers()).map((l) => l.id));
  for (const c of containers) {
    if (unfinished.has(c.id)) continue;
    try {
      const metadata = unpackJson<SandboxMetadata>(c.extensions[EXTENSIONS.sandboxMetadata]);
      if (!metadata) throw new Error('no sandbox metadata extension');
      const task = await getTask(ctx.conn, c.id, call);
      const running = task?.status === TaskStatus.RUNNING;
      const record = fromMetadata(metadata, running ? 'ready' : 'notready', running ? task!.pid : 0);
      record.spec = unpackJson<OciSpec>(c.spec);
      ctx.sandboxes.set(record.id, record);
      ctx.names.reserve(record.name, record.id);
    } catch (err) {
      ctx.logger.error('cannot recover pod sandbox; leaving it in containerd', { podSandboxId: c.id, error: (err as Error).message });
    }
  }
  ctx.logger.info('pod sandboxes recovered', { count: ctx.sandboxes.size });
}

/** After missed events: mark sandboxes whose infra task is not running as NOTREADY. */
export async function reconcileSandboxes(ctx: SandboxContext, call: CallContext): Promise<void> {
  let failed: unknown;
  reconcileMetrics.pass('sandboxes');
  for (const record of ctx.sandboxes.values()) {
    if (record.state !== 'ready') continue;
    try {
      const task = await getTask(ctx.conn, record.id, call);
      if (task?.status !== TaskStatus.RUNNING) {
        record.state = 'notready';
        record.pid = 0;
        reconcileMetrics.corrected('sandbox_notready');
        ctx.logger.info('pod sandbox infra task is gone; NOTREADY', { podSandboxId: record.id });
      }
    } catch (err) {
      // One pod's failure does not leave the others unchecked.
      failed ??= err;
    }
  }
  if (failed) throw failed;
}

/**
 * Undoes what interrupted RunPodSandbox calls left (their markers): the
 * infra task, container and snapshot, the CNI attachment, the network
 * namespace, the pod's files and /dev/shm mount. Every step tolerates what
 * is already gone; a marker stays until all of them succeed. Then sweeps
 * the state dir for pod directories nothing accounts for (an older
 * adapter's, or a marker lost with the disk). Returns how many leftovers
 * remain for a later pass.
 */
export async function sweepSandboxLeftovers(ctx: SandboxContext, call: CallContext): Promise<number> {
  let remaining = 0;
  for (const { id, data } of await ctx.pending.leftovers()) {
    try {
      await ctx.locks.run(id, async () => {
        if (ctx.pending.isInFlight(id) || ctx.sandboxes.has(id)) return;
        await undoSandbox(ctx, id, data, call);
        await ctx.pending.end(id);
      });
      ctx.logger.info('removed what an unfinished RunPodSandbox left behind', { podSandboxId: id });
    } catch (err) {
      remaining++;
      ctx.logger.warn('cannot yet remove what an unfinished RunPodSandbox left; retrying later', { podSandboxId: id, error: (err as Error).message });
    }
  }
  const dir = path.join(ctx.config.state, 'sandboxes');
  let entries: string[] = [];
  try {
    entries = await fs.readdir(dir);
  } catch {
    // no pods yet
  }
  const strays = entries.filter((id) => /^[0-9a-f]{64}$/.test(id) && !ctx.sandboxes.has(id) && !ctx.pending.isInFlight(id));
  if (strays.length) {
    // A pod containerd still has but recovery could not read keeps its files.
    const { containers } = await ctx.conn.containers.list({ filters: [`labels."${LABELS.kind}"==${KIND_SANDBOX}`] }, call);
    const known = new Set(containers.map((c) => c.id));
    for (const id of strays.filter((s) => !known.has(s))) {
      await ctx.locks.run(id, async () => {
        if (ctx.pending.isInFlight(id) || ctx.sandboxes.has(id)) return;
        await removeSandboxFiles(sandboxFilePaths(ctx.config.state, id, false));
        await removeNetns(netnsNameFor(id));
      });
      ctx.logger.info('removed a pod directory no sandbox accounts for', { podSandboxId: id });
    }
  }
  return remaining;
}

async function undoSandbox(ctx: SandboxContext, id: string, marker: SandboxMarker | undefined, call: CallContext): Promise<void> {
  await stopTask(ctx.conn, id, 9, 0, call);
  await deleteTask(ctx.conn, id, call);
  await ignoreNotFound(ctx.conn.containers.delete({ id }, call));
  await ignoreNotFound(ctx.conn.snapshots.remove({ snapshotter: ctx.config.snapshotter, key: id }, call));
  const netnsName = netnsNameFor(id);
  if (marker && !marker.hostNetwork) {
    // CNI DEL from the pod's config, as RunPodSandbox would have run it (frees the IP, port mappings).
    const record: SandboxRecord = {
      id,
      name: '',
      config: PodSandboxConfig.fromJSON(marker.config),
      createdAt: 0n,
      runtimeHandler: '',
      runtimeType: '',
      imageId: '',
      netnsName,
      netnsPath: netnsPath(netnsName),
      ips: [],
      networkTornDown: false,
      state: 'notready',
      pid: 0,
    };
    await teardownNetwork(ctx, record);
  } else {
    await removeNetns(netnsName);
  }
  await removeSandboxFiles(sandboxFilePaths(ctx.config.state, id, false));
}
