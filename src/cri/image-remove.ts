import type { RemoveImageRequest, RemoveImageResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function removeImageHandler(deps: CriDeps): UnaryHandler<RemoveImageRequest, RemoveImageResponse> {
  return async (request, ctx) => {
    await deps.images.remove(request.image?.image ?? '', { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
