import type { CallContext } from '../containerd/call';
import { deleteTask, ignoreNotFound, stopTask } from '../containerd/tasks';
import { NamespaceMode } from '../gen/runtime/v1/api';
import type { SandboxContext } from './context';
import type { SandboxRecord } from './model';
import { removeSandboxFiles, sandboxFilePaths } from './files';
import { teardownNetwork } from './stop';

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
}
