import type { FilesystemUsage, ImageFsInfoRequest, ImageFsInfoResponse } from '../gen/runtime/v1/api';
import type { CriDeps } from './deps';
import type { UnaryHandler } from './dispatch';

/**
 * Images and containers' writable layers live in the same snapshotter, so
 * both entries name the same mountpoint; each counts only its own share.
 * Kubelets with KubeletSeparateDiskGC (1.31+) need the container entry to
 * evict on disk pressure at all. The snapshotter walk covers both shares,
 * so the image share is the walk less the writable layers.
 */
export function imageFsInfoHandler(deps: CriDeps): UnaryHandler<ImageFsInfoRequest, ImageFsInfoResponse> {
  return async (_request, ctx) => {
    const call = { signal: ctx.signal, deadline: ctx.deadline };
    const keys = [...deps.sandboxes.list().map((s) => s.id), ...deps.containers.list().map((c) => c.id)];
    const [usage, layers] = await Promise.all([deps.images.fsUsage(call), deps.stats.writableLayers(keys, call)]);
    const container: FilesystemUsage = {
      timestamp: layers.timestampNs,
      fsId: { mountpoint: layers.mountpoint },
      usedBytes: { value: layers.usedBytes },
      inodesUsed: { value: layers.inodesUsed },
    };
    const minus = (total: number, part: bigint) => (BigInt(total) > part ? BigInt(total) - part : 0n);
    return {
      imageFilesystems: [
        {
          timestamp: usage.timestamp,
          fsId: { mountpoint: usage.mountpoint },
          usedBytes: { value: minus(usage.usedBytes, layers.usedBytes) },
          inodesUsed: { value: minus(usage.inodesUsed, layers.inodesUsed) },
        },
      ],
      containerFilesystems: [container],
    };
  };
}
