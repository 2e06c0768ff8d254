import { FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors';
import type { PortForwardRequest, PortForwardResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** PortForward: the ports are the client's to choose per connection; the pod must be ready. */
export function portForwardHandler(deps: CriDeps): UnaryHandler<PortForwardRequest, PortForwardResponse> {
  return async (request) => {
    if (!request.podSandboxId) throw new InvalidArgumentError('PortForward: pod_sandbox_id is required');
    const bad = request.port.find((p) => !(p > 0 && p < 65536));
    if (bad !== undefined) throw new InvalidArgumentError(`PortForward: port ${bad} is not a TCP port`);
    const sandbox = deps.sandboxes.get(request.podSandboxId);
    if (!sandbox) throw new NotFoundError(`pod sandbox ${request.podSandboxId} not found`);
    if (sandbox.state !== 'ready') throw new FailedPreconditionError(`PortForward: pod sandbox ${sandbox.id} is not ready`);
    return { url: deps.streaming.portForwardUrl(sandbox.id) };
  };
}
