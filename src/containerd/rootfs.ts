import type { Mount } from '../gen/containerd/types/mount';
import { step, UndoStack } from '../util/undo';
import type { CallContext } from './call';
import type { ContainerdConnection } from './connection';
import { createContainerObject, NewContainer } from './containers';
import { withLease } from './leases';
import { ignoreNotFound } from './tasks';

export interface RootfsRequest {
  snapshotter: string;
  /** The snapshot's key (a container's own rootfs is keyed by the container's ID). */
  key: string;
  /** Chain ID of the image's top layer; '' for an empty rootfs. */
  parent: string;
  /** A read-only view of the parent instead of a writable active snapshot. */
  view?: boolean;
  labels?: Record<string, string>;
}

export interface RootfsObject<T> {
  /** Names the object in step and undo names: "create <what>", "delete <what>". */
  what: string;
  /**
   * Given the snapshot's mounts (to read image files) and the call under
   * the lease (for more objects that must live as long as the container),
   * the container object to create and a value to return.
   */
  build(mounts: Mount[], leased: CallContext): Promise<{ container: Omit<NewContainer, 'snapshotter' | 'snapshotKey'>; value: T }>;
}

/**
 * The rootfs snapshot (or read-only view) and the container object, each a
 * named step whose undo goes on `undo` before the call: a call that fails
 * because containerd died may still have been carried out, and an undo of
 * what never happened finds NotFound, which it ignores.
 */
function snapshotStep(conn: ContainerdConnection, rootfs: RootfsRequest, undo: UndoStack, ctx: CallContext): Promise<{ mounts: Mount[] }> {
  const { snapshotter, key, view } = rootfs;
  const request = { snapshotter, key, parent: rootfs.parent, labels: rootfs.labels ?? {} };
  undo.push(view ? 'remove rootfs view' : 'remove snapshot', () => ignoreNotFound(conn.snapshots.remove({ snapshotter, key })));
  return step(view ? 'make rootfs view' : 'prepare rootfs snapshot', () =>
    view ? conn.snapshots.view(request, ctx) : conn.snapshots.prepare(request, ctx),
  );
}

function containerStep(
  conn: ContainerdConnection,
  rootfs: RootfsRequest,
  what: string,
  container: Omit<NewContainer, 'snapshotter' | 'snapshotKey'>,
  undo: UndoStack,
  ctx: CallContext,
): Promise<void> {
  undo.push(`delete ${what}`, () => ignoreNotFound(conn.containers.delete({ id: container.id })));
  return step(`create ${what}`, () => createContainerObject(conn, { ...container, snapshotter: rootfs.snapshotter, snapshotKey: rootfs.key }, ctx));
}

/**
 * A snapshot, then a containerd container object over it, each with its
 * undo on `undo`. Until the container references it, the new snapshot is
 * garbage to containerd's GC, which runs concurrently: a lease holds it
 * from Prepare until the container exists.
 */
export async function createOnRootfs<T>(
  conn: ContainerdConnection,
  rootfs: RootfsRequest,
  object: RootfsObject<T>,
  undo: UndoStack,
  call: CallContext,
): Promise<{ mounts: Mount[]; value: T }> {
  return withLease(conn, { expireAfterSeconds: 600, releaseInBackground: true }, call, async (leased) => {
    const { mounts } = await snapshotStep(conn, rootfs, undo, leased);
    const { container, value } = await object.build(mounts, leased);
    await containerStep(conn, rootfs, object.what, container, undo, leased);
    return { mounts, value };
  });
}

/**
 * A containerd container object, then the snapshot it names, each with its
 * undo on `undo`: for an object whose spec needs nothing from the snapshot
 * (a pod's infra container). containerd does not require a container's
 * snapshot to exist yet, and once the container exists it references the
 * key, so GC keeps the snapshot from the moment Prepare makes it: no lease
 * (its create and delete are two metadata writes and a round trip per pod).
 * Unwinding removes the snapshot first.
 */
export async function createThenRootfs(
  conn: ContainerdConnection,
  rootfs: Omit<RootfsRequest, 'view'>,
  object: { what: string; container: Omit<NewContainer, 'snapshotter' | 'snapshotKey'> },
  undo: UndoStack,
  call: CallContext,
): Promise<{ mounts: Mount[] }> {
  await containerStep(conn, rootfs, object.what, object.container, undo, call);
  return snapshotStep(conn, rootfs, undo, call);
}
