import type { RemovePodSandboxRequest, RemovePodSandboxResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function removePodSandboxHandler(deps: CriDeps): UnaryHandler<RemovePodSandboxRequest, RemovePodSandboxResponse> {
  return async (request, ctx) => {
    await deps.sandboxes.remove(request.podSandboxId, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
