import type { CreateContainerRequest, CreateContainerResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function createContainerHandler(deps: CriDeps): UnaryHandler<CreateContainerRequest, CreateContainerResponse> {
  return async (request, ctx) => {
    const containerId = await deps.containers.create(request.podSandboxId, request.config, request.sandboxConfig, {
      signal: ctx.signal,
      deadline: ctx.deadline,
    });
    return { containerId };
  };
}
