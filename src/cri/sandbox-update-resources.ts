import { OCI_LINUX_RESOURCES_TYPE_URL, packJson } from '../containerd/typeurl';
import { InvalidArgumentError, NotFoundError } from '../errors';
import type { UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse } from '../gen/runtime/v1/api';
import { sandboxResources } from '../oci';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/**
 * Applies the pod's new totals to the infra task's cgroup (its ceiling), the
 * one pod-level cgroup this runtime owns; the kubelet resizes the pod's
 * parent cgroup itself.
 */
export function updatePodSandboxResourcesHandler(
  deps: CriDeps,
): UnaryHandler<UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse> {
  return async (request, ctx) => {
    if (!request.podSandboxId) throw new InvalidArgumentError('UpdatePodSandboxResources: pod_sandbox_id is required');
    const record = deps.sandboxes.get(request.podSandboxId);
    if (!record) throw new NotFoundError(`pod sandbox ${request.podSandboxId} not found`);
    const config = {
      ...record.config,
      linux: { ...record.config.linux!, resources: request.resources, overhead: request.overhead },
    };
    const resources = sandboxResources(config);
    if (record.state === 'ready') {
      await deps.containerd.tasks.update(
        { containerId: record.id, resources: packJson(OCI_LINUX_RESOURCES_TYPE_URL, resources), annotations: {} },
        { signal: ctx.signal, deadline: ctx.deadline },
      );
    }
    record.config = config;
    return {};
  };
}
