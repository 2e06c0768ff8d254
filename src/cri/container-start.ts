import { InvalidArgumentError } from '../errors';
import type { StartContainerRequest, StartContainerResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function startContainerHandler(deps: CriDeps): UnaryHandler<StartContainerRequest, StartContainerResponse> {
  return async (request, ctx) => {
    if (!request.containerId) throw new InvalidArgumentError('StartContainer: container_id is required');
    await deps.containers.start(request.containerId, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
