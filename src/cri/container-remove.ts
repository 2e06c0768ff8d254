import type { RemoveContainerRequest, RemoveContainerResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function removeContainerHandler(deps: CriDeps): UnaryHandler<RemoveContainerRequest, RemoveContainerResponse> {
  return async (request, ctx) => {
    await deps.containers.remove(request.containerId, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
