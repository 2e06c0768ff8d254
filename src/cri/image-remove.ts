import { InvalidArgumentError } from '../errors';
import type { RemoveImageRequest, RemoveImageResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

export function removeImageHandler(deps: CriDeps): UnaryHandler<RemoveImageRequest, RemoveImageResponse> {
  return async (request, ctx) => {
    const wanted = request.image?.image ?? '';
    if (wanted === '') throw new InvalidArgumentError('RemoveImage: image.image (an ID or reference) is required');
    await deps.images.remove(wanted, { signal: ctx.signal, deadline: ctx.deadline });
    return {};
  };
}
