import { FailedPreconditionError, InvalidArgumentError } from '../errors';
import type { AttachRequest, AttachResponse, ExecRequest, ExecResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** The spec's rules for the stream flags, shared by Exec and Attach. */
function checkStreams(rpc: string, r: { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }): void {
  if (!r.stdin && !r.stdout && !r.stderr) throw new InvalidArgumentError(`${rpc}: one of stdin, stdout and stderr must be true`);
  if (r.tty && r.stderr) throw new InvalidArgumentError(`${rpc}: with tty, stderr must be false (a terminal has one output stream)`);
}

/** Exec: checks the request now, so the kubelet gets a proper error instead of a URL that fails later. */
export function execHandler(deps: CriDeps): UnaryHandler<ExecRequest, ExecResponse> {
  return async (request) => {
    if (!request.containerId) throw new InvalidArgumentError('Exec: container_id is required');
    if (request.cmd.length === 0) throw new InvalidArgumentError('Exec: cmd must not be empty');
    checkStreams('Exec', request);
    const record = deps.containers.require(request.containerId);
    if (record.state !== 'running') throw new FailedPreconditionError(`Exec: container ${record.id} is not running`);
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

export function attachHandler(deps: CriDeps): UnaryHandler<AttachRequest, AttachResponse> {
  return async (request) => {
    if (!request.containerId) throw new InvalidArgumentError('Attach: container_id is required');
    checkStreams('Attach', request);
    const record = deps.containers.require(request.containerId);
    if (record.state !== 'running') throw new FailedPreconditionError(`Attach: container ${record.id} is not running`);
    if (request.tty !== record.config.tty) {
      throw new InvalidArgumentError(`Attach: tty=${request.tty} does not match the container's tty=${record.config.tty}`);
    }
    return { url: deps.streaming.attachUrl({ ...request, containerId: record.id }) };
  };
}
