import { NotFoundError, unlessNotFound } from '../errors';
import { Status as TaskStatus } from '../gen/containerd/types/task';
import type { CallContext } from './call';
import type { ContainerdConnection } from './connection';

export { TaskStatus };

export interface TaskState {
  status: TaskStatus;
  pid: number;
  exitStatus: number;
  exitedAtNs: bigint;
}

/** The task's state, or undefined when the container has no task. */
export async function getTask(conn: ContainerdConnection, containerId: string, ctx?: CallContext): Promise<TaskState | undefined> {
  const process = (await unlessNotFound(conn.tasks.get({ containerId, execId: '' }, ctx)))?.process;
  if (!process) return undefined;
  const exitedAt = process.exitedAt;
  return {
    status: process.status,
    pid: process.pid,
    exitStatus: process.exitStatus,
    exitedAtNs: exitedAt ? exitedAt.seconds * 1_000_000_000n + BigInt(exitedAt.nanos) : 0n,
  };
}

/** Sends `signal` to the task's init process (SIGKILL: to all its processes); a task already gone is fine. */
export async function killTask(conn: ContainerdConnection, containerId: string, signal: number, ctx?: CallContext): Promise<void> {
  await unlessNotFound(conn.tasks.kill({ containerId, execId: '', signal, all: signal === 9 }, ctx));
}

/**
 * Resolves when the task's init process has exited (or the task is gone);
 * no deadline of its own: it ends with the caller's signal.
 */
export async function waitTask(conn: ContainerdConnection, containerId: string, ctx: CallContext): Promise<void> {
  await unlessNotFound(conn.tasks.wait({ containerId, execId: '' }, { ...ctx, deadline: Infinity }));
}

/**
 * Sends `signal` to the task and waits up to `graceMs` for it to exit; then
 * SIGKILL and wait again. Returns when the task is stopped (or gone).
 */
export async function stopTask(
  conn: ContainerdConnection,
  containerId: string,
  signal: number,
  graceMs: number,
  ctx?: CallContext,
): Promise<void> {
  const state = await getTask(conn, containerId, ctx);
  if (!state || state.status === TaskStatus.STOPPED) return;
  const kill = (sig: number) => killTask(conn, containerId, sig, ctx);
  const waitFor = async (ms: number): Promise<boolean> => {
    try {
      await conn.tasks.wait({ containerId, execId: '' }, { ...ctx, deadline: Date.now() + ms });
      return true;
    } catch (err) {
      if (err instanceof NotFoundError) return true;
      return false;
    }
  };
  if (signal !== 9 && graceMs > 0) {
    await kill(signal);
    if (await waitFor(graceMs)) return;
  }
  await kill(9);
  if (!(await waitFor(30_000))) {
    throw new Error(`task ${containerId} did not exit 30 s after SIGKILL`);
  }
}

/** Deletes the task (after it stopped); a missing task is fine. */
export function deleteTask(conn: ContainerdConnection, containerId: string, ctx?: CallContext): Promise<void> {
  return ignoreNotFound(conn.tasks.delete({ containerId }, ctx));
}

/** Waits for `p`; NotFound (already gone) counts as done. */
export async function ignoreNotFound(p: Promise<unknown>): Promise<void> {
  await unlessNotFound(p);
}
