import type { StartContainerRequest, StartContainerResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function startContainerHandler(deps: CriDeps): UnaryHandler<StartContainerRequest, StartContainerResponse> {
  return async (request, ctx) => {
    await deps.containers.start(request.containerId, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
