import type { CallContext } from '../containerd/call';
import { getTask, ignoreNotFound, TaskStatus } from '../containerd/tasks';
import { unpackJson } from '../containerd/typeurl';
import type { OciSpec } from '../oci';
import { EXTENSIONS, KIND_CONTAINER, LABELS } from '../containerd/labels';
import { reconcileMetrics } from '../metrics';
import type { ContainerContext } from './context';
import { imageMountDeps, releaseOrphanImageMounts, remountImageMounts } from './image-mounts';
import { armKill, recordExit, syncExit } from './lifecycle';
import { ContainerMetadata, fromStored } from './model';
import { readContainerStatus, removeContainerStatus } from './status-file';

/**
 * Rebuilds every container from containerd (metadata extension) and the
 * status file, then asks containerd about its task: exits that happened
 * while the adapter was down are recorded, running tasks get their log
 * pumps back.
 */
export async function recoverContainers(ctx: ContainerContext, call: CallContext): Promise<void> {
  const { containers } = await ctx.conn.containers.list({ filters: [`labels."${LABELS.kind}"==${KIND_CONTAINER}`] }, call);
  // A CreateContainer that never finished is not a container: sweepContainerLeftovers removes it.
  const unfinished = new Set((await ctx.pending.leftovers()).map((l) => l.id));
  for (const c of containers) {
    if (unfinished.has(c.id)) continue;
    try {
      const metadata = unpackJson<ContainerMetadata>(c.extensions[EXTENSIONS.containerMetadata]);
      if (!metadata) throw new Error('no container metadata extension');
      const record = fromStored(metadata, await readContainerStatus(ctx.config.root, c.id));
      record.spec = unpackJson<OciSpec>(c.spec);
      ctx.containers.set(record.id, record);
      ctx.names.reserve(record.name, record.id);
      if (record.imageMounts.length) {
        await remountImageMounts(imageMountDeps(ctx), record.imageMounts, call).catch((err: unknown) =>
          ctx.logger.warn('cannot mount the image views again; the container will not start', {
            containerId: record.id,
            error: (err as Error).message,
          }),
        );
      }
      if (record.state !== 'running') continue;
      const task = await getTask(ctx.conn, record.id, call);
      if (task?.status === TaskStatus.RUNNING) {
        record.pid = task.pid;
        await ctx.io.reattach(record);
        // A stop's grace period that was running when the adapter went down (at once if it is over).
        if (record.killAt !== undefined) armKill(ctx, record.id, record.killAt);
      } else if (task?.status === TaskStatus.STOPPED) {
        await ctx.io.reattach(record);
        await recordExit(ctx, record, { exitStatus: task.exitStatus, exitedAt: task.exitedAtNs });
      } else {
        await syncExit(ctx, record, call);
      }
    } catch (err) {
      ctx.logger.error('cannot recover container; leaving it in containerd', { containerId: c.id, error: (err as Error).message });
    }
  }
  const orphans = await releaseOrphanImageMounts(ctx.config.state, (id) => ctx.containers.has(id)).catch((err: unknown) => {
    ctx.logger.warn('cannot take down image views of removed containers', { error: (err as Error).message });
    return [];
  });
  for (const containerId of orphans) ctx.logger.info('image views of a removed container taken down', { containerId });
  ctx.logger.info('containers recovered', { count: ctx.containers.size });
}

/** After a gap in the event stream: any running container whose task stopped gets its exit recorded. */
export async function reconcileContainers(ctx: ContainerContext, call: CallContext): Promise<void> {
  let failed: unknown;
  reconcileMetrics.pass('containers');
  for (const record of ctx.containers.values()) {
    if (record.state !== 'running') continue;
    // One container's failure (containerd still loading its shims) does not leave the others unchecked.
    const outcome = await ctx.locks.run(record.id, () => syncExit(ctx, record, call)).catch((err: unknown) => {
      failed ??= err;
      return undefined;
    });
    if (outcome === 'lost') reconcileMetrics.corrected('container_task_lost');
    else if (outcome === 'exited') reconcileMetrics.corrected('container_exit');
  }
  if (failed) throw failed;
}

/**
 * Undoes what interrupted CreateContainer calls left (their markers): the
 * container and its snapshot in containerd, its status directory. Returns
 * how many leftovers remain for a later pass.
 */
export async function sweepContainerLeftovers(ctx: ContainerContext, call: CallContext): Promise<number> {
  let remaining = 0;
  for (const { id } of await ctx.pending.leftovers()) {
    try {
      await ctx.locks.run(id, async () => {
        if (ctx.pending.isInFlight(id) || ctx.containers.has(id)) return;
        await ignoreNotFound(ctx.conn.containers.delete({ id }, call));
        await ignoreNotFound(ctx.conn.snapshots.remove({ snapshotter: ctx.config.snapshotter, key: id }, call));
        await removeContainerStatus(ctx.config.root, id);
        await ctx.pending.end(id);
      });
      ctx.logger.info('removed what an unfinished CreateContainer left behind', { containerId: id });
    } catch (err) {
      remaining++;
      ctx.logger.warn('cannot yet remove what an unfinished CreateContainer left; retrying later', { containerId: id, error: (err as Error).message });
    }
  }
  return remaining;
}
