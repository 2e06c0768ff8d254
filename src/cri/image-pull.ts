import type { PullImageRequest, PullImageResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';
import { toAuthConfig } from './image-mapping';

export function pullImageHandler(deps: CriDeps): UnaryHandler<PullImageRequest, PullImageResponse> {
  return async (request, ctx) => {
    const entry = await deps.images.pull(request.image?.image ?? '', toAuthConfig(request.auth), { signal: ctx.signal, deadline: ctx.deadline });
    return { imageRef: entry.id };
  };
}
