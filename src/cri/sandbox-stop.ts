import { InvalidArgumentError } from '../errors';
import type { StopPodSandboxRequest, StopPodSandboxResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** Unknown IDs succeed: the kubelet retries stops of pods it lost track of. */
export function stopPodSandboxHandler(deps: CriDeps): UnaryHandler<StopPodSandboxRequest, StopPodSandboxResponse> {
  return async (request, ctx) => {
    if (!request.podSandboxId) throw new InvalidArgumentError('StopPodSandbox: pod_sandbox_id is required');
    const record = deps.sandboxes.get(request.podSandboxId);
    if (record) await deps.sandboxes.stop(record.id, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
