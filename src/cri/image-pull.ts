import { InvalidArgumentError } from '../errors';
import type { PullImageRequest, PullImageResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';
import { toAuthConfig } from './image-mapping';

export function pullImageHandler(deps: CriDeps): UnaryHandler<PullImageRequest, PullImageResponse> {
  return async (request, ctx) => {
    const image = request.image?.image ?? '';
    if (image === '') throw new InvalidArgumentError('PullImage: image.image (the reference to pull) is required');
    const entry = await deps.images.pull(image, toAuthConfig(request.auth), { signal: ctx.signal, deadline: ctx.deadline });
    return { imageRef: entry.id };
  };
}
