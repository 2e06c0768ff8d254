import type { CallContext } from '../containerd/call';
import { getTask, TaskStatus } from '../containerd/tasks';
import { unpackJson } from '../containerd/typeurl';
import type { OciSpec } from '../oci';
import { EXTENSIONS, KIND_CONTAINER, LABELS } from '../containerd/labels';
import type { ContainerContext } from './context';
import { imageMountDeps, releaseOrphanImageMounts, remountImageMounts } from './image-mounts';
import { recordExit, syncExit } from './lifecycle';
import { ContainerMetadata, fromStored } from './model';
import { readContainerStatus } from './status-file';

/**
 * Rebuilds every container from containerd (metadata extension) and the
 * status file, then asks containerd about its task: exits that happened
 * while the adapter was down are recorded, running tasks get their log
 * pumps back.
 */
export async function recoverContainers(ctx: ContainerContext, call: CallContext): Promise<void> {
  const { containers } = await ctx.conn.containers.list({ filters: [`labels."${LABELS.kind}"==${KIND_CONTAINER}`] }, call);
  for (const c of containers) {
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
  for (const record of ctx.containers.values()) {
    if (record.state === 'running') await ctx.locks.run(record.id, () => syncExit(ctx, record, call));
  }
}
