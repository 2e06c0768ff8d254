import { nowNs } from '../util/time';
import type { PodSandboxStatusRequest, PodSandboxStatusResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';
import { toCriSandboxStatus } from './sandbox-mapping';

export function podSandboxStatusHandler(deps: CriDeps): UnaryHandler<PodSandboxStatusRequest, PodSandboxStatusResponse> {
  return async (request) => {
    const r = deps.sandboxes.require(request.podSandboxId);
    const info: Record<string, string> = {};
    if (request.verbose) {
      info.info = JSON.stringify({
        pid: r.pid,
        netnsPath: r.netnsPath ?? '',
        cniResult: r.cniResult ?? null,
        runtimeHandler: r.runtimeHandler,
        runtimeType: r.runtimeType,
        image: r.imageId,
        runtimeSpec: r.spec ?? null,
      });
    }
    return { status: toCriSandboxStatus(r), info, containersStatuses: [], timestamp: nowNs() };
  };
}
