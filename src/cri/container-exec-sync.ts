import { execSync } from '../container/exec-sync';
import { InvalidArgumentError } from '../errors';
import type { ExecSyncRequest, ExecSyncResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function execSyncHandler(deps: CriDeps): UnaryHandler<ExecSyncRequest, ExecSyncResponse> {
  return async (request, ctx) => {
    if (!request.containerId) throw new InvalidArgumentError('ExecSync: container_id is required');
    if (request.timeout < 0n) throw new InvalidArgumentError('ExecSync: timeout must not be negative');
    const record = deps.containers.require(request.containerId);
    const result = await execSync(
      deps.containers.ctx,
      record,
      request.cmd,
      Number(request.timeout),
      {
        maxOutputBytes: deps.config.execSync.maxOutputBytes,
        drainTimeoutMs: deps.config.logging.drainTimeoutSeconds * 1000,
      },
      { signal: ctx.signal },
    );
    return { stdout: result.stdout, stderr: result.stderr, exitCode: result.exitCode };
  };
}
