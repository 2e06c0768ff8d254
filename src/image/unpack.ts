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
  // Which snapshots exist is asked for every layer at once, before the downloads load containerd
  // (asked between two layer writes, one Stat took 45 ms). A layer whose snapshot exists is still
  // waited for: the pull stores its blob all the same.
  const present = await Promise.all(chain.map((chainId) => presentUnderLease(conn, snapshotter, chainId, ctx)));
  for (let i = 0; i < layers.length; i++) {
    const chainId = chain[i]!;
    if (present[i]) {
      await stored(i);
      continue;
    }
    const parent = i === 0 ? '' : chain[i - 1]!;
    // Prepared while the blob may still be downloading: only its parent must be committed.
    const key = `extract-${randomBytes(6).toString('hex')}-${chainId}`;
    const { mounts } = await conn.snapshots.prepare({ snapshotter, key, parent, labels: {} }, ctx);
    try {
      await stored(i);
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

/**
 * Whether the snapshot exists and is now held by the pull's lease: one left
 * by an image that was just removed is referenced by nothing until this
 * image's config label points at it, and GC could take it meanwhile (so it
 * is asked again after leasing). Without a lease, whether it exists.
 */
async function presentUnderLease(conn: ContainerdConnection, snapshotter: string, chainId: string, ctx: CallContext): Promise<boolean> {
  if (!(await snapshotExists(conn, snapshotter, chainId, ctx))) return false;
  if (!ctx.lease) return true;
  await conn.leases.addResource({ id: ctx.lease, resource: { id: chainId, type: `snapshots/${snapshotter}` } }, ctx);
  return snapshotExists(conn, snapshotter, chainId, ctx);
}
