import type { PortForwardRequest, PortForwardResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/**
 * PortForward: over SPDY the client picks the ports per connection; a
 * WebSocket client gets the request's ports unless its URL names others
 * (`?port=`), so the URL carries them.
 */
export function portForwardHandler(deps: CriDeps): UnaryHandler<PortForwardRequest, PortForwardResponse> {
  return async (request) => {
    const sandbox = deps.sandboxes.checkPortForward(request.podSandboxId, request.port);
    return { url: deps.streaming.portForwardUrl(sandbox.id, request.port) };
  };
}
