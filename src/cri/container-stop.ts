import type { StopContainerRequest, StopContainerResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** The grace period is the kubelet's to choose; the call's own deadline must leave room for it. */
export function stopContainerHandler(deps: CriDeps): UnaryHandler<StopContainerRequest, StopContainerResponse> {
  return async (request) => {
    // Not tied to the call's signal: a stop that the kubelet gives up on must still finish.
    await deps.containers.stop(request.containerId, Number(request.timeout), {});
    return {};
  };
}
