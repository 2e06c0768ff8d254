import type { CallContext } from '../containerd/call';
import { getTask, TaskStatus } from '../containerd/tasks';
import { unpackJson } from '../containerd/typeurl';
import type { OciSpec } from '../oci';
import { EXTENSIONS, KIND_SANDBOX, LABELS } from '../containerd/labels';
import type { SandboxContext } from './context';
import { fromMetadata, SandboxMetadata } from './model';

/**
 * Rebuilds every sandbox from the infra containers' labels and extensions,
 * asking containerd for each task: a pod whose pause exited while the
 * adapter was down comes back NOTREADY.
 */
export async function recoverSandboxes(ctx: SandboxContext, call: CallContext): Promise<void> {
  const { containers } = await ctx.conn.containers.list({ filters: [`labels."${LABELS.kind}"==${KIND_SANDBOX}`] }, call);
  for (const c of containers) {
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
  for (const record of ctx.sandboxes.values()) {
    if (record.state !== 'ready') continue;
    const task = await getTask(ctx.conn, record.id, call);
    if (task?.status !== TaskStatus.RUNNING) {
      record.state = 'notready';
      record.pid = 0;
      ctx.logger.info('pod sandbox infra task is gone; NOTREADY', { podSandboxId: record.id });
    }
  }
}
