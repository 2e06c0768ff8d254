import type { AttachRequest, AttachResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function attachHandler(deps: CriDeps): UnaryHandler<AttachRequest, AttachResponse> {
  return async (request) => {
    const record = deps.containers.checkAttach(request.containerId, request);
    return { url: deps.streaming.attachUrl({ ...request, containerId: record.id }) };
  };
}
