import type { CallContext } from '../containerd/call';
import { deleteTask, getTask, ignoreNotFound, killTask, stopTask, TaskStatus, waitTask } from '../containerd/tasks';
import { AdapterError, CancelledError, FailedPreconditionError } from '../errors';
import { readProcessIdentity } from '../host/process-identity';
import { setTimerAt } from '../util/long-timer';
import { containerMetrics } from '../metrics';
import { nowNs } from '../util/time';
import type { ContainerContext, ContainerEventKind } from './context';
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
 * idempotent. The exit is on disk before the task that holds it is deleted
 * (an adapter killed in between finds it in the status file, not a missing
 * task), and the task is deleted so the shim frees its resources, after the
 * log pump has drained what the container wrote.
 */
export async function recordExit(
  ctx: ContainerContext,
  record: ContainerRecord,
  exit: { exitStatus: number; exitedAt: bigint; reason?: string; message?: string },
): Promise<void> {
  if (record.state === 'exited') return;
  disarmKill(ctx, record.id);
  // The container shows as EXITED only once its output is in the log file: the kubelet reads the
  // log's tail for the termination message as soon as it sees the exit (as containerd's CRI
  // plugin, which deletes the task and waits for its IO before it updates the status).
  await ctx.io.finish(record.id).catch((err: unknown) =>
    ctx.logger.warn('log pump did not close cleanly', { containerId: record.id, error: (err as Error).message }),
  );
  const exited: ContainerRecord = {
    ...record,
    state: 'exited',
    exitCode: exit.exitStatus,
    finishedAt: exit.exitedAt > 0n ? exit.exitedAt : nowNs(),
    reason: exit.reason ?? exitReason(exit.exitStatus, record.oomKilled),
    message: exit.message ?? '',
    pid: 0,
    killAt: undefined,
  };
  await writeContainerStatus(ctx.config.root, exited);
  Object.assign(record, {
    state: exited.state,
    exitCode: exited.exitCode,
    finishedAt: exited.finishedAt,
    reason: exited.reason,
    message: exited.message,
    pid: 0,
    killAt: undefined,
  });
  await deleteTask(ctx.conn, record.id).then(
    () => (record.taskDeleted = true),
    (err: unknown) => ctx.logger.warn('deleting exited task failed', { containerId: record.id, error: (err as Error).message }),
  );
  containerMetrics.exited(record.oomKilled);
  ctx.events.emit('event', 'stopped', record);
  ctx.logger.info('container exited', { containerId: record.id, podSandboxId: record.sandboxId, exitCode: record.exitCode, reason: record.reason });
}

/**
 * Applies the task's final state if it stopped; used after stops and when events may have been missed.
 * Says what it found: an exit it recorded, a task gone without one, or nothing to do.
 */
export async function syncExit(ctx: ContainerContext, record: ContainerRecord, call?: CallContext): Promise<'exited' | 'lost' | undefined> {
  if (record.state !== 'running') return undefined;
  const task = await getTask(ctx.conn, record.id, call);
  if (!task) {
    // The task vanished without an exit we saw (containerd lost it): say so instead of guessing a code.
    await recordExit(ctx, record, {
      exitStatus: 255,
      exitedAt: nowNs(),
      reason: 'Unknown',
      message: 'the task disappeared from containerd while the adapter was not watching',
    });
    return 'lost';
  }
  if (task.status !== TaskStatus.STOPPED) return undefined;
  await recordExit(ctx, record, { exitStatus: task.exitStatus, exitedAt: task.exitedAtNs });
  return 'exited';
}

/**
 * The SIGKILL deadline of a container being stopped. One per container, and
 * the earliest asked for wins: a second, shorter stop takes effect at once
 * whatever an earlier one still waits for. It lives apart from any caller,
 * so a stop whose caller went away still ends in SIGKILL when its grace
 * period is over, and holds no lock meanwhile.
 */
export function armKill(ctx: ContainerContext, id: string, at: number): void {
  const current = ctx.killTimers.get(id);
  if (current && current.at <= at) return;
  current?.clear();
  ctx.killTimers.set(
    id,
    setTimerAt(at, () => {
      ctx.killTimers.delete(id);
      killTask(ctx.conn, id, 9).catch((err: unknown) => {
        // containerd unreachable for a moment: the grace period is over, so try again soon.
        ctx.logger.warn('SIGKILL after the grace period failed; retrying', { containerId: id, error: (err as Error).message });
        if (ctx.containers.get(id)?.state === 'running') armKill(ctx, id, Date.now() + 2000);
      });
    }),
  );
}

function disarmKill(ctx: ContainerContext, id: string): void {
  ctx.killTimers.get(id)?.clear();
  ctx.killTimers.delete(id);
}

/**
 * Resolves once the container's exit is recorded (or it is gone): from the
 * event stream, or from containerd's Wait when the event was missed.
 * Rejects when the caller's signal fires; nothing stays behind then.
 */
async function untilExited(ctx: ContainerContext, record: ContainerRecord, signal: AbortSignal | undefined): Promise<void> {
  const mine = new AbortController();
  const both = signal ? AbortSignal.any([signal, mine.signal]) : mine.signal;
  try {
    const recorded = new Promise<void>((resolve, reject) => {
      const settled = () => record.state !== 'running' || !ctx.containers.has(record.id);
      const onEvent = (kind: ContainerEventKind, r: ContainerRecord) => {
        if (r.id === record.id && settled()) resolve();
      };
      ctx.events.on('event', onEvent);
      both.addEventListener('abort', () => {
        ctx.events.off('event', onEvent);
        // The dispatcher's typed reason (deadline or cancel) when it gave one.
        reject(
          both.reason instanceof AdapterError
            ? both.reason
            : new CancelledError(`StopContainer ${record.id}: the caller went away before the container exited; its SIGKILL deadline stays`),
        );
      }, { once: true });
      if (settled()) resolve();
    });
    const waited = waitTask(ctx.conn, record.id, { signal: both }).then(
      () => ctx.locks.run(record.id, () => syncExit(ctx, record, { signal: both })),
      // containerd restarting: the reconcile pass after the gap records the exit and wakes `recorded`.
      () => new Promise<void>(() => undefined),
    );
    await Promise.race([recorded, waited]);
  } finally {
    mine.abort();
  }
}

/**
 * StopContainer: the image's stop signal, up to `timeoutSeconds` of grace,
 * then SIGKILL. Idempotent. The lock is held only to send the signal, never
 * for the grace period: a later StopContainer(timeout=0), RemoveContainer or
 * pod stop proceeds at once, and this call returns when the container exits.
 */
export async function stopContainer(ctx: ContainerContext, record: ContainerRecord, timeoutSeconds: number, call: CallContext): Promise<void> {
  const id = record.id;
  const graceMs = Math.max(0, timeoutSeconds) * 1000;
  const signal = signalNumber(record.stopSignal);
  const signalled = await ctx.locks.run(id, async () => {
    if (record.state !== 'running') return false;
    const task = await getTask(ctx.conn, id, call);
    if (!task || task.status === TaskStatus.STOPPED) {
      await syncExit(ctx, record, call);
      return false;
    }
    if (graceMs > 0 && signal !== 9) {
      const killAt = Date.now() + graceMs;
      if (record.killAt === undefined || killAt < record.killAt) {
        // On disk before the signal: an adapter restarted during the grace period re-arms it.
        record.killAt = killAt;
        await writeContainerStatus(ctx.config.root, record);
      }
      await killTask(ctx.conn, id, signal, call);
      armKill(ctx, id, record.killAt);
    } else {
      disarmKill(ctx, id);
      await killTask(ctx.conn, id, 9, call);
    }
    return true;
  });
  if (signalled) await untilExited(ctx, record, call.signal);
}

/** RemoveContainer: force-stops, then deletes task, container, snapshot and status. */
export async function removeContainer(ctx: ContainerContext, record: ContainerRecord, call: CallContext): Promise<void> {
  const id = record.id;
  await ctx.locks.run(id, async () => {
    if (!ctx.containers.has(id)) return;
    if (record.state === 'running') {
      disarmKill(ctx, id);
      await stopTask(ctx.conn, id, 9, 0, call);
      await syncExit(ctx, record, call);
    }
    if (!record.taskDeleted) await deleteTask(ctx.conn, id, call);
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
