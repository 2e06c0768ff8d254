import { CgroupDriver, RuntimeConfigRequest, RuntimeConfigResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** Tells the kubelet which cgroup driver to use, so both agree on cgroup paths. */
export function runtimeConfigHandler(deps: CriDeps): UnaryHandler<RuntimeConfigRequest, RuntimeConfigResponse> {
  return async () => ({
    linux: { cgroupDriver: deps.config.cgroupDriver === 'systemd' ? CgroupDriver.SYSTEMD : CgroupDriver.CGROUPFS },
  });
}
