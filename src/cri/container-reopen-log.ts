import type { ReopenContainerLogRequest, ReopenContainerLogResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** The kubelet renames the log file first, then asks for a fresh one at the same path. */
export function reopenContainerLogHandler(deps: CriDeps): UnaryHandler<ReopenContainerLogRequest, ReopenContainerLogResponse> {
  return async (request) => {
    await deps.containers.reopenLog(request.containerId);
    return {};
  };
}
