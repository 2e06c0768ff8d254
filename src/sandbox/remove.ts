import type { CallContext } from '../containerd/call';
import { deleteTask, ignoreNotFound, stopTask } from '../containerd/tasks';
import { NamespaceMode } from '../gen/runtime/v1/api';
import type { SandboxContext } from './context';
import type { SandboxRecord } from './model';
import { removeSandboxFiles, sandboxFilePaths } from './files';
import { teardownNetwork } from './stop';
import { podUserNamespace, sameMapping } from '../oci/userns';

/** RemovePodSandbox: idempotent; force-removes the pod's containers and everything the pod had. */
export async function removePodSandbox(ctx: SandboxContext, record: SandboxRecord, call: CallContext): Promise<void> {
  const id = record.id;
  await ctx.containersOf.removeAll(id, call.signal);
  await ctx.locks.run(id, async () => {
    if (!ctx.sandboxes.has(id)) return;
    await stopTask(ctx.conn, id, 9, 0, call);
    await deleteTask(ctx.conn, id, call);
    await teardownNetwork(ctx, record);
    await ignoreNotFound(ctx.conn.containers.delete({ id }, call));
    await ignoreNotFound(ctx.conn.snapshots.remove({ snapshotter: ctx.config.snapshotter, key: id }, call));
    const hostIpc = record.config.linux?.securityContext?.namespaceOptions?.ipc === NamespaceMode.NODE;
    await removeSandboxFiles(sandboxFilePaths(ctx.config.state, id, hostIpc));
    ctx.names.release(record.name, id);
    ctx.sandboxes.delete(id);
    ctx.logger.info('pod sandbox removed', { podSandboxId: id });
  });
  await releaseRemappedImages(ctx, record, call);
}

const usernsOf = (r: SandboxRecord) => podUserNamespace(r.config.linux?.securityContext?.namespaceOptions, 'config.linux.security_context.namespace_options');

/**
 * The last pod with this user namespace mapping is gone: its remapped image
 * copies no longer need to outlive their containers. A failure only leaves
 * the copies to go with their images, so it is logged, not returned.
 */
async function releaseRemappedImages(ctx: SandboxContext, record: SandboxRecord, call: CallContext): Promise<void> {
  const mapping = usernsOf(record);
  if (!mapping || [...ctx.sandboxes.values()].some((r) => sameMapping(usernsOf(r), mapping))) return;
  await ctx.images.remapped.release(mapping, call).catch((err: unknown) =>
    ctx.logger.warn('remapped image snapshots not released; they go with their images', { podSandboxId: record.id, error: (err as Error).message }),
  );
}
