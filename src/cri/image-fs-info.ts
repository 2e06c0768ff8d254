import type { ImageFsInfoRequest, ImageFsInfoResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/** Containers' writable layers live in the same snapshotter, so one filesystem answers for both. */
export function imageFsInfoHandler(deps: CriDeps): UnaryHandler<ImageFsInfoRequest, ImageFsInfoResponse> {
  return async (_request, ctx) => {
    const usage = await deps.images.fsUsage({ signal: ctx.signal, deadline: ctx.deadline });
    return {
      imageFilesystems: [
        {
          timestamp: usage.timestamp,
          fsId: { mountpoint: usage.mountpoint },
          usedBytes: { value: BigInt(usage.usedBytes) },
          inodesUsed: { value: BigInt(usage.inodesUsed) },
        },
      ],
      containerFilesystems: [],
    };
  };
}
