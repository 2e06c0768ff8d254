import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import type { ReopenContainerLogRequest, ReopenContainerLogResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** The kubelet renames the log file first, then asks for a fresh one at the same path. */
export function reopenContainerLogHandler(deps: CriDeps): UnaryHandler<ReopenContainerLogRequest, ReopenContainerLogResponse> {
  return async (request) => {
    if (!request.containerId) throw new InvalidArgumentError('ReopenContainerLog: container_id is required');
    const record = deps.containers.require(request.containerId);
    if (record.state !== 'running') throw new FailedPreconditionError(`container ${record.id} is not running`);
    await deps.containers.ctx.io.reopen(record.id);
    return {};
  };
}
