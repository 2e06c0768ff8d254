import type { VersionRequest, VersionResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** The kubelet-facing API version this runtime speaks (the CRI "version" field). */
export const CRI_API_VERSION = '0.1.0';

export function versionHandler(deps: CriDeps): UnaryHandler<VersionRequest, VersionResponse> {
  return async () => ({
    version: CRI_API_VERSION,
    runtimeName: 'cri-adapter',
    runtimeVersion: deps.adapterVersion,
    runtimeApiVersion: 'v1',
  });
}
