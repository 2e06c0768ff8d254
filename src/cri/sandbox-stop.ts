import type { StopPodSandboxRequest, StopPodSandboxResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function stopPodSandboxHandler(deps: CriDeps): UnaryHandler<StopPodSandboxRequest, StopPodSandboxResponse> {
  return async (request, ctx) => {
    await deps.sandboxes.stop(request.podSandboxId, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
