import type { CallContext } from '../containerd/call';
import { deleteTask, getTask, ignoreNotFound, stopTask, TaskStatus } from '../containerd/tasks';
import { FailedPreconditionError } from '../errors';
import { readProcessIdentity } from '../host/process-identity';
import { nowNs } from '../util/time';
import type { ContainerContext } from './context';
import { imageMountDeps, releaseImageMounts } from './image-mounts';
import { ContainerRecord, exitReason, signalNumber } from './model';
import { removeContainerStatus, writeContainerStatus } from './status-file';

/**
 * StartContainer: wire stdio, create and start the task. A failure leaves
 * the container EXITED with reason StartError and the runtime's message,
 * as the kubelet expects to see it.
 */
export async function startContainer(ctx: ContainerContext, record: ContainerRecord, call: CallContext): Promise<void> {
  const id = record.id;
  await ctx.locks.run(id, async () => {
    if (record.state !== 'created') {
      throw new FailedPreconditionError(`container ${id} is ${record.state.toUpperCase()}, only a CREATED container can be started`);
    }
    const sandbox = ctx.sandboxes.get(record.sandboxId);
    if (!sandbox || sandbox.state !== 'ready') {
      throw new FailedPreconditionError(`container ${id}: its pod sandbox ${record.sandboxId} is not ready`);
    }
    try {
      const { mounts } = await ctx.conn.snapshots.mounts({ snapshotter: ctx.config.snapshotter, key: id }, call);
      const stdio = await ctx.io.open(record);
      const task = await ctx.conn.tasks.create(
        { containerId: id, rootfs: mounts, ...stdio, checkpoint: undefined, options: undefined, runtimePath: '' },
        call,
      );
      await ctx.io.started(id);
      // runc has set the user and groups before it waits for Start: this is what the process will run as.
      record.processUser = await readProcessIdentity(task.pid);
      // Taken before Start: a process that exits at once must not look as if it finished before it started.
      const startedAt = nowNs();
      await ctx.conn.tasks.start({ containerId: id, execId: '' }, call);
      record.pid = task.pid;
      record.startedAt = startedAt;
      record.state = 'running';
      await writeContainerStatus(ctx.config.root, record);
      ctx.events.emit('event', 'started', record);
      ctx.logger.info('container started', { containerId: id, podSandboxId: record.sandboxId, pid: task.pid });
    } catch (err) {
      await deleteTask(ctx.conn, id).catch(() => undefined);
      await ctx.io.finish(id).catch(() => undefined);
      record.state = 'exited';
      record.exitCode = 128;
      record.reason = 'StartError';
      record.message = (err as Error).message;
      record.finishedAt = nowNs();
      record.startedAt = 0n;
      await writeContainerStatus(ctx.config.root, record);
      ctx.events.emit('event', 'stopped', record);
      throw err;
    }
  });
}

/**
 * Records a task exit (from the event stream, a stop, or reconciliation);
 * idempotent. The task is deleted so the shim frees its resources, after
 * the log pump has drained what the container wrote.
 */
export async function recordExit(
  ctx: ContainerContext,
  record: ContainerRecord,
  exit: { exitStatus: number; exitedAt: bigint },
): Promise<void> {
  if (record.state === 'exited') return;
  // The container shows as EXITED only once its output is in the log file: the kubelet reads the
  // log's tail for the termination message as soon as it sees the exit (as containerd's CRI
  // plugin, which deletes the task and waits for its IO before it updates the status).
  await ctx.io.finish(record.id).catch((err: unknown) =>
    ctx.logger.warn('log pump did not close cleanly', { containerId: record.id, error: (err as Error).message }),
  );
  await deleteTask(ctx.conn, record.id).catch((err: unknown) =>
    ctx.logger.warn('deleting exited task failed', { containerId: record.id, error: (err as Error).message }),
  );
  record.state = 'exited';
  record.exitCode = exit.exitStatus;
  record.finishedAt = exit.exitedAt > 0n ? exit.exitedAt : nowNs();
  record.reason = exitReason(exit.exitStatus, record.oomKilled);
  record.message = '';
  record.pid = 0;
  await writeContainerStatus(ctx.config.root, record);
  ctx.events.emit('event', 'stopped', record);
  ctx.logger.info('container exited', { containerId: record.id, podSandboxId: record.sandboxId, exitCode: record.exitCode, reason: record.reason });
}

/** Applies the task's final state if it stopped; used after stops and when events may have been missed. */
export async function syncExit(ctx: ContainerContext, record: ContainerRecord, call?: CallContext): Promise<void> {
  if (record.state !== 'running') return;
  const task = await getTask(ctx.conn, record.id, call);
  if (!task) {
    // The task vanished without an exit we saw (containerd lost it): say so instead of guessing a code.
    await recordExit(ctx, record, { exitStatus: 255, exitedAt: nowNs() });
    record.reason = 'Unknown';
    record.message = 'the task disappeared from containerd while the adapter was not watching';
    await writeContainerStatus(ctx.config.root, record);
    return;
  }
  if (task.status === TaskStatus.STOPPED) await recordExit(ctx, record, { exitStatus: task.exitStatus, exitedAt: task.exitedAtNs });
}

/** StopContainer: the image's stop signal, up to `timeoutSeconds` of grace, then SIGKILL. Idempotent. */
export async function stopContainer(ctx: ContainerContext, record: ContainerRecord, timeoutSeconds: number, call: CallContext): Promise<void> {
  const id = record.id;
  await ctx.locks.run(id, async () => {
    if (record.state !== 'running') return;
    await stopTask(ctx.conn, id, signalNumber(record.stopSignal), Math.max(0, timeoutSeconds) * 1000, call);
    await syncExit(ctx, record, call);
  });
}

/** RemoveContainer: force-stops, then deletes task, container, snapshot and status. */
export async function removeContainer(ctx: ContainerContext, record: ContainerRecord, call: CallContext): Promise<void> {
  const id = record.id;
  await ctx.locks.run(id, async () => {
    if (!ctx.containers.has(id)) return;
    if (record.state === 'running') {
      await stopTask(ctx.conn, id, 9, 0, call);
      await syncExit(ctx, record, call);
    }
    await deleteTask(ctx.conn, id, call);
    await ctx.io.finish(id).catch(() => undefined);
    // Independent of each other once the task is gone; a failure leaves the record for a retry.
    await Promise.all([
      ignoreNotFound(ctx.conn.containers.delete({ id }, call)),
      ignoreNotFound(ctx.conn.snapshots.remove({ snapshotter: ctx.config.snapshotter, key: id }, call)),
      removeContainerStatus(ctx.config.root, id),
    ]);
    // Until the container went, its GC labels held the views; now nothing mounts them.
    if (record.imageMounts.length) await releaseImageMounts(imageMountDeps(ctx), record.imageMounts, call);
    ctx.names.release(record.name, id);
    ctx.containers.delete(id);
    ctx.events.emit('event', 'deleted', record);
    ctx.logger.info('container removed', { containerId: id, podSandboxId: record.sandboxId });
  });
}
