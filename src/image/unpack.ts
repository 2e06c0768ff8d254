import { randomBytes } from 'node:crypto';
import type { CallContext } from '../containerd/call';
import type { ContainerdConnection } from '../containerd/connection';
import { AlreadyExistsError, InternalError, NotFoundError, unlessNotFound } from '../errors';
import type { Descriptor as ContainerdDescriptor } from '../gen/containerd/types/descriptor';
import { chainIds } from './layers';

export interface LayerToUnpack {
  /** The layer blob, already in the content store. */
  blob: ContainerdDescriptor;
  /** Digest of the uncompressed layer, from the image config's rootfs.diff_ids. */
  diffId: string;
}

export async function snapshotExists(conn: ContainerdConnection, snapshotter: string, key: string, ctx: CallContext): Promise<boolean> {
  return (await unlessNotFound(conn.snapshots.stat({ snapshotter, key }, ctx))) !== undefined;
}

/**
 * Applies layers bottom-up into the snapshotter, committing each under its
 * chain ID. Layers whose snapshot already exists are skipped. Returns the
 * top chain ID (the parent of every container rootfs of this image).
 * Layer i is applied once `stored(i)` resolves.
 * Run it under a lease: snapshots in flight are not referenced by anything
 * yet, and containerd's GC would otherwise be free to take them.
 */
export async function unpackLayers(
  conn: ContainerdConnection,
  snapshotter: string,
  layers: LayerToUnpack[],
  ctx: CallContext,
  /** Resolves once layer i's blob is in the content store (a pull unpacks while it downloads). */
  stored: (i: number) => Promise<void> = async () => undefined,
): Promise<string | undefined> {
  const chain = chainIds(layers.map((l) => l.diffId));
  for (let i = 0; i < layers.length; i++) {
    await stored(i);
    const chainId = chain[i]!;
    const parent = i === 0 ? '' : chain[i - 1]!;
    if (await snapshotExists(conn, snapshotter, chainId, ctx)) {
      if (!ctx.lease) continue;
      // A snapshot left by an image that was just removed is referenced by nothing until this
      // image's config label points at it; the lease keeps GC from taking it meanwhile
      // (asking again after leasing: GC may have taken it between the two calls).
      await conn.leases.addResource({ id: ctx.lease, resource: { id: chainId, type: `snapshots/${snapshotter}` } }, ctx);
      if (await snapshotExists(conn, snapshotter, chainId, ctx)) continue;
    }

    const key = `extract-${randomBytes(6).toString('hex')}-${chainId}`;
    const { mounts } = await conn.snapshots.prepare({ snapshotter, key, parent, labels: {} }, ctx);
    try {
      // Unpacking a multi-GB layer can outlast the default call deadline; the caller's signal still cancels it.
      const { applied } = await conn.diff.apply({ diff: layers[i]!.blob, mounts, payloads: {} }, { ...ctx, deadline: ctx.deadline ?? Infinity });
      if (applied?.digest !== layers[i]!.diffId) {
        throw new InternalError(
          `layer ${layers[i]!.blob.digest} unpacked to ${applied?.digest ?? 'nothing'}, but the image config says ${layers[i]!.diffId}`,
        );
      }
      await conn.snapshots.commit({ snapshotter, name: chainId, key, labels: {} }, ctx);
    } catch (err) {
      await conn.snapshots.remove({ snapshotter, key }, { deadline: Date.now() + 30_000 }).catch(() => undefined);
      // Another pull of an image sharing this layer got there first: its snapshot serves us too.
      if (err instanceof AlreadyExistsError) continue;
      throw err;
    }
  }
  return chain[chain.length - 1];
}
