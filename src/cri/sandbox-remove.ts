import { InvalidArgumentError } from '../errors';
import type { RemovePodSandboxRequest, RemovePodSandboxResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** Unknown IDs succeed, as the spec asks of removal. */
export function removePodSandboxHandler(deps: CriDeps): UnaryHandler<RemovePodSandboxRequest, RemovePodSandboxResponse> {
  return async (request, ctx) => {
    if (!request.podSandboxId) throw new InvalidArgumentError('RemovePodSandbox: pod_sandbox_id is required');
    const record = deps.sandboxes.get(request.podSandboxId);
    if (record) await deps.sandboxes.remove(record.id, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
