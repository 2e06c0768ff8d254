import type { UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function updatePodSandboxResourcesHandler(
  deps: CriDeps,
): UnaryHandler<UpdatePodSandboxResourcesRequest, UpdatePodSandboxResourcesResponse> {
  return async (request, ctx) => {
    await deps.sandboxes.updateResources(request.podSandboxId, request.resources, request.overhead, {
      signal: ctx.signal,
      deadline: ctx.deadline,
    });
    return {};
  };
}
