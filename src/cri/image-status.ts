import type { ImageStatusRequest, ImageStatusResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';
import { toCriImage } from './image-mapping';

/** A missing image is an empty response, not an error: the kubelet uses this to decide to pull. */
export function imageStatusHandler(deps: CriDeps): UnaryHandler<ImageStatusRequest, ImageStatusResponse> {
  return async (request) => {
    const entry = deps.images.find(request.image?.image ?? '');
    if (!entry) return { image: undefined, info: {} };
    const info: Record<string, string> = {};
    if (request.verbose) {
      info.info = JSON.stringify({ id: entry.id, chainID: entry.chainId, size: entry.size, names: entry.recordNames, imageSpec: entry.config });
    }
    return { image: toCriImage(entry, deps.images.isPinned(entry)), info };
  };
}
