import type {
  Image,
  ImageFilter,
  ListImagesRequest,
  ListImagesResponse,
  StreamImagesRequest,
  StreamImagesResponse,
} from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { StreamHandler, UnaryHandler } from './dispatch';
import { toCriImage } from './image-mapping';

// Enough per message to keep the stream cheap, small enough to stay far from gRPC's message limit.
const IMAGES_PER_MESSAGE = 200;

function listed(deps: CriDeps, filter: ImageFilter | undefined): Image[] {
  const wanted = filter?.image?.image ?? '';
  const entries = wanted ? [deps.images.store.resolve(wanted)].filter((e) => e !== undefined) : deps.images.store.list();
  return entries.map((e) => toCriImage(e, deps.images.isPinned(e)));
}

export function listImagesHandler(deps: CriDeps): UnaryHandler<ListImagesRequest, ListImagesResponse> {
  return async (request) => ({ images: listed(deps, request.filter) });
}

/** The list is taken once, so each image is sent exactly once even if pulls land meanwhile. */
export function streamImagesHandler(deps: CriDeps): StreamHandler<StreamImagesRequest, StreamImagesResponse> {
  return async (request, ctx, send) => {
    const images = listed(deps, request.filter);
    for (let i = 0; i < images.length && !ctx.signal.aborted; i += IMAGES_PER_MESSAGE) {
      await send({ images: images.slice(i, i + IMAGES_PER_MESSAGE) });
    }
  };
}
