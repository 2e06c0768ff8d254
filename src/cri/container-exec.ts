import type { ExecRequest, ExecResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function execHandler(deps: CriDeps): UnaryHandler<ExecRequest, ExecResponse> {
  return async (request) => {
    const record = deps.containers.checkExec(request.containerId, request.cmd, request);
    return {
      url: deps.streaming.execUrl({
        containerId: record.id,
        cmd: request.cmd,
        tty: request.tty,
        stdin: request.stdin,
        stdout: request.stdout,
        stderr: request.stderr,
      }),
    };
  };
}
