import type { CallContext } from '../containerd/call';
import { OCI_LINUX_RESOURCES_TYPE_URL, packJson } from '../containerd/typeurl';
import type { LinuxContainerResources } from '../gen/runtime/v1/api';
import { sandboxResources } from '../oci';
import type { SandboxContext } from './context';
import type { SandboxRecord } from './model';
import { persistSandbox } from './persist';

/**
 * UpdatePodSandboxResources: applies the pod's new totals to the infra
 * task's cgroup (its ceiling), the one pod-level cgroup this runtime owns
 * (the kubelet resizes the pod's parent cgroup itself), then stores the new
 * config and spec on the infra container, so a restarted adapter reports
 * and reapplies what the kubelet asked last.
 */
export async function updateSandboxResources(
  ctx: SandboxContext,
  record: SandboxRecord,
  resources: LinuxContainerResources | undefined,
  overhead: LinuxContainerResources | undefined,
  call: CallContext,
): Promise<void> {
  await ctx.locks.run(record.id, async () => {
    const config = { ...record.config, linux: { ...record.config.linux!, resources, overhead } };
    // Checks the values (InvalidArgument naming the field) before anything changes.
    const oci = sandboxResources(config);
    if (record.state === 'ready') {
      await ctx.conn.tasks.update(
        { containerId: record.id, resources: packJson(OCI_LINUX_RESOURCES_TYPE_URL, oci), annotations: {} },
        call,
      );
    }
    const spec = record.spec && { ...record.spec, linux: { ...record.spec.linux, resources: { ...record.spec.linux.resources, ...oci } } };
    // Memory changes only once containerd has it: a failed write leaves the record as it was.
    await persistSandbox(ctx, { ...record, config, spec }, { spec: true }, call);
    record.config = config;
    record.spec = spec;
  });
}
