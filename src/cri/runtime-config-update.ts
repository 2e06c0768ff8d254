import type { UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** Records the node's pod CIDR; plugins that declare the ipRanges capability get it on the next ADD. */
export function updateRuntimeConfigHandler(deps: CriDeps): UnaryHandler<UpdateRuntimeConfigRequest, UpdateRuntimeConfigResponse> {
  return async (request) => {
    const cidr = request.runtimeConfig?.networkConfig?.podCidr ?? '';
    if (cidr) {
      deps.sandboxes.setPodCidr(cidr);
      deps.logger.info('pod CIDR updated', { podCidr: cidr });
    }
    return {};
  };
}
