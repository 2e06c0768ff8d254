import type { ContainerStatusRequest, ContainerStatusResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';
import { toCriContainerStatus } from './container-mapping';

export function containerStatusHandler(deps: CriDeps): UnaryHandler<ContainerStatusRequest, ContainerStatusResponse> {
  return async (request) => {
    const r = deps.containers.require(request.containerId);
    const info: Record<string, string> = {};
    if (request.verbose) {
      info.info = JSON.stringify({
        pid: r.pid,
        sandboxID: r.sandboxId,
        snapshotKey: r.id,
        snapshotter: deps.config.snapshotter,
        runtimeType: r.runtimeType,
        runtimeSpec: r.spec ?? null,
      });
    }
    return { status: toCriContainerStatus(r), info };
  };
}
