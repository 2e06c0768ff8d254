import type { ExecSyncRequest, ExecSyncResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function execSyncHandler(deps: CriDeps): UnaryHandler<ExecSyncRequest, ExecSyncResponse> {
  return async (request, ctx) => {
    const result = await deps.containers.execSync(request.containerId, request.cmd, request.timeout, { signal: ctx.signal });
    return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
  };
}
