import type { RunPodSandboxRequest, RunPodSandboxResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function runPodSandboxHandler(deps: CriDeps): UnaryHandler<RunPodSandboxRequest, RunPodSandboxResponse> {
  return async (request, ctx) => ({
    podSandboxId: await deps.sandboxes.run(request.config, request.runtimeHandler, { signal: ctx.signal, deadline: ctx.deadline }),
  });
}
