import { InvalidArgumentError } from '../errors';
import type { PortForwardRequest, PortForwardResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** PortForward: the ports are the client's to choose per connection; the pod must be ready. */
export function portForwardHandler(deps: CriDeps): UnaryHandler<PortForwardRequest, PortForwardResponse> {
  return async (request) => {
    const sandbox = deps.sandboxes.ready(request.podSandboxId, 'PortForward');
    const bad = request.port.find((p) => !(p > 0 && p < 65536));
    if (bad !== undefined) throw new InvalidArgumentError(`PortForward: port ${bad} is not a TCP port`);
    return { url: deps.streaming.portForwardUrl(sandbox.id) };
  };
}
