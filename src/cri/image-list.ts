import type {
  Image,
  ImageFilter,
  ListImagesRequest,
  ListImagesResponse,
  StreamImagesRequest,
  StreamImagesResponse,
} from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import { sendInBatches, StreamHandler, UnaryHandler } from './dispatch';
import { toCriImage } from './image-mapping';

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
    await sendInBatches(images, ctx, send, (images) => ({ images }));
  };
}
