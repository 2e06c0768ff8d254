import type { StopContainerRequest, StopContainerResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** The grace period is the kubelet's to choose; the call's own deadline must leave room for it. */
export function stopContainerHandler(deps: CriDeps): UnaryHandler<StopContainerRequest, StopContainerResponse> {
  return async (request, ctx) => {
    // The caller's signal ends only its wait: the SIGKILL deadline it set stays (container/lifecycle.ts).
    await deps.containers.stop(request.containerId, Number(request.timeout), { signal: ctx.signal });
    return {};
  };
}
