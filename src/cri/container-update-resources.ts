import type { UpdateContainerResourcesRequest, UpdateContainerResourcesResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function updateContainerResourcesHandler(
  deps: CriDeps,
): UnaryHandler<UpdateContainerResourcesRequest, UpdateContainerResourcesResponse> {
  return async (request, ctx) => {
    await deps.containers.updateResources(request.containerId, request.linux, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
