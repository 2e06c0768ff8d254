/**
 * Image volumes (CRI Mount.image, KEP-4639): a mount whose source is an
 * image's filesystem, read-only. Each one is a containerd View snapshot of
 * the image's top layer, made under CreateContainer's lease and then held
 * by a GC reference label on the container (as its rootfs snapshot is), so
 * a crash before the container exists leaks nothing in containerd. The view
 * is mounted on the host under the state dir and bound into the container
 * from there, which is what lets image_sub_path pick a path of it.
 * RemoveContainer unmounts and removes them. After an adapter restart the
 * container's metadata extension says which views it has: a mount lost with
 * a reboot is made again, and host mounts no container owns any more (a
 * crash inside RemoveContainer) are taken down.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import type { CallContext } from '../containerd/call';
import type { ContainerdConnection } from '../containerd/connection';
import { imageMountRefLabel } from '../containerd/labels';
import { ignoreNotFound } from '../containerd/tasks';
import { InternalError, InvalidArgumentError, NotFoundError } from '../errors';
import type { Mount } from '../gen/runtime/v1/api';
import type { Mount as SnapshotMount } from '../gen/containerd/types/mount';
import { readMountinfoAsync } from '../host/mountinfo';
import type { ImageStore } from '../image/store';
import { quoteBounded } from '../util/quote';
import type { UndoStack } from '../util/undo';
import type { ContainerContext } from './context';
import type { ImageMountRecord } from './model';

const run = promisify(execFile);
/** mount(8) and umount(8) of a local overlay or bind return at once; anything slower is stuck. */
const MOUNT_TIMEOUT_MS = 30_000;
/** Symlinks followed inside an image while resolving image_sub_path: the kernel's own limit. */
const MAX_LINKS = 40;

export interface ImageMountDeps {
  conn: ContainerdConnection;
  snapshotter: string;
  images: Pick<ImageStore, 'resolve'>;
  /** The adapter's state dir: the views are mounted under <state>/image-mounts/<container>/<index>. */
  stateDir: string;
}

/** What the image-mount steps need of the container context. */
export function imageMountDeps(ctx: Pick<ContainerContext, 'conn' | 'config' | 'images'>): ImageMountDeps {
  return { conn: ctx.conn, snapshotter: ctx.config.snapshotter, images: ctx.images.store, stateDir: ctx.config.state };
}

function mountsRoot(stateDir: string): string {
  return path.join(stateDir, 'image-mounts');
}

function viewDir(stateDir: string, containerId: string, index: number): string {
  return path.join(mountsRoot(stateDir), containerId, String(index));
}

/**
 * Resolves `sub` inside `root` the way the container would see it:
 * symlinks (absolute or relative) resolve against the image's root, never
 * the host's, and `..` cannot climb above it. Undefined when a component
 * is missing or the links loop.
 */
export async function resolveInRoot(root: string, sub: string): Promise<string | undefined> {
  const pending = sub.split('/').filter((p) => p !== '' && p !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const candidate = path.join(root, ...done, part);
    const st = await fs.lstat(candidate).catch(() => undefined);
    if (!st) return undefined;
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) return undefined;
      const target = await fs.readlink(candidate);
      if (target.startsWith('/')) done.length = 0;
      pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
      continue;
    }
    done.push(part);
  }
  return path.join(root, ...done);
}

async function mountedAt(dirs: readonly string[]): Promise<Set<string>> {
  const points = new Set((await readMountinfoAsync()).map((m) => m.mountpoint));
  return new Set(dirs.filter((d) => points.has(d)));
}

function commandError(what: string, err: unknown): InternalError {
  const stderr = (err as { stderr?: string }).stderr?.trim();
  return new InternalError(`${what}: ${(stderr || (err as Error).message).slice(0, 300)}`);
}

/** Mounts a view's mounts (as containerd returns them: one bind or one overlay of lower dirs) read-only at `target`. */
async function mountView(mounts: readonly SnapshotMount[], target: string): Promise<void> {
  if (mounts.length !== 1) throw new InternalError(`the image view has ${mounts.length} mounts; expected one`);
  const m = mounts[0]!;
  await fs.mkdir(target, { recursive: true, mode: 0o700 });
  if ((await mountedAt([target])).size) return;
  const bind = m.type === 'bind' || m.options.includes('bind') || m.options.includes('rbind');
  const options = [...m.options.filter((o) => !['rw', 'ro', 'bind', 'rbind'].includes(o)), 'ro'].join(',');
  const args = bind ? ['--bind', '-o', options, m.source, target] : ['-t', m.type, '-o', options, m.source, target];
  try {
    await run('mount', args, { timeout: MOUNT_TIMEOUT_MS });
  } catch (err) {
    throw commandError(`mounting the image view at ${target}`, err);
  }
}

/** Unmounts and removes one view's host dir; a dir that is not mounted is only removed. */
async function releaseDir(hostDir: string): Promise<void> {
  if ((await mountedAt([hostDir])).size) {
    try {
      await run('umount', [hostDir], { timeout: MOUNT_TIMEOUT_MS });
    } catch {
      // Busy (a process on the host looks into it): detach now; the kernel frees it when the last user goes.
      await run('umount', ['-l', hostDir], { timeout: MOUNT_TIMEOUT_MS }).catch((err: unknown) => {
        throw commandError(`unmounting the image view at ${hostDir}`, err);
      });
    }
  }
  // Not recursive: were the unmount not done, the image's files must not be deleted.
  await fs.rmdir(hostDir).catch(() => undefined);
  await fs.rmdir(path.dirname(hostDir)).catch(() => undefined);
}

/**
 * Checks a config's image mounts before anything is made: the image must
 * be on the node (the kubelet pulls it first) and image_sub_path relative.
 */
export function checkImageMounts(mounts: readonly Mount[], images: Pick<ImageStore, 'resolve'>): void {
  mounts.forEach((m, i) => {
    if (!m.image?.image) return;
    const f = `mounts[${i}]`;
    if (!images.resolve(m.image.image)) {
      throw new NotFoundError(`${f}.image: image ${quoteBounded(m.image.image)} is not on this node; pull it first`);
    }
    if (m.imageSubPath.startsWith('/')) throw new InvalidArgumentError(`${f}.image_sub_path: must be relative to the image's root`);
  });
}

/** The views made for a container's image mounts, and the labels that name them on its object. */
export interface PreparedImageMounts {
  records: ImageMountRecord[];
  labels: Record<string, string>;
}

/** A container that mounts no image. */
export const noImageMounts = (): PreparedImageMounts => ({ records: [], labels: {} });

/**
 * Makes the views of a container's image mounts and mounts them on the
 * host. `leased` carries CreateContainer's lease, which holds the views
 * until the container's labels do; each step's reverse goes on `undo`.
 * Returns the records and the GC labels the container must carry.
 */
export async function prepareImageMounts(
  deps: ImageMountDeps,
  containerId: string,
  mounts: readonly Mount[],
  leased: CallContext,
  undo: UndoStack,
): Promise<PreparedImageMounts> {
  const records: ImageMountRecord[] = [];
  const labels: Record<string, string> = {};
  for (const [index, m] of mounts.entries()) {
    if (!m.image?.image) continue;
    const f = `mounts[${index}]`;
    const image = deps.images.resolve(m.image.image);
    // Checked before, but RemoveImage may have run since.
    if (!image) throw new NotFoundError(`${f}.image: image ${quoteBounded(m.image.image)} is not on this node; pull it first`);
    const snapshotKey = `image-mount-${containerId}-${index}`;
    const { mounts: viewMounts } = await deps.conn.snapshots.view(
      { snapshotter: deps.snapshotter, key: snapshotKey, parent: image.chainId ?? '', labels: {} },
      leased,
    );
    undo.push(`remove image view ${index}`, () => ignoreNotFound(deps.conn.snapshots.remove({ snapshotter: deps.snapshotter, key: snapshotKey })));
    const hostDir = viewDir(deps.stateDir, containerId, index);
    undo.push(`unmount image view ${index}`, () => releaseDir(hostDir));
    await mountView(viewMounts, hostDir);
    let source = hostDir;
    if (m.imageSubPath !== '') {
      const resolved = await resolveInRoot(hostDir, m.imageSubPath);
      if (!resolved) {
        throw new NotFoundError(
          `${f}.image_sub_path: ${quoteBounded(m.imageSubPath)} does not exist in image ${quoteBounded(m.image.image)}`,
        );
      }
      source = resolved;
    }
    records.push({ index, imageId: image.id, snapshotKey, hostDir, source });
    labels[imageMountRefLabel(deps.snapshotter, index)] = snapshotKey;
  }
  return { records, labels };
}

/** RemoveContainer: unmount and drop the views; views already gone are fine. */
export async function releaseImageMounts(deps: ImageMountDeps, records: readonly ImageMountRecord[], call: CallContext): Promise<void> {
  for (const r of records) {
    await releaseDir(r.hostDir);
    await ignoreNotFound(deps.conn.snapshots.remove({ snapshotter: deps.snapshotter, key: r.snapshotKey }, call));
  }
}

/** After a restart: mounts lost with a reboot are made again from the views containerd still holds. */
export async function remountImageMounts(deps: ImageMountDeps, records: readonly ImageMountRecord[], call: CallContext): Promise<void> {
  const mounted = await mountedAt(records.map((r) => r.hostDir));
  for (const r of records) {
    if (mounted.has(r.hostDir)) continue;
    const { mounts } = await deps.conn.snapshots.mounts({ snapshotter: deps.snapshotter, key: r.snapshotKey }, call);
    await mountView(mounts, r.hostDir);
  }
}

/**
 * After a restart: host mounts of containers that no longer exist (the
 * adapter stopped between deleting a container and unmounting its views,
 * or inside a failed CreateContainer) are taken down. Their views are
 * containerd's GC's to collect: nothing references them any more.
 */
export async function releaseOrphanImageMounts(stateDir: string, known: (containerId: string) => boolean): Promise<string[]> {
  const root = mountsRoot(stateDir);
  const ids = await fs.readdir(root).catch(() => [] as string[]);
  const released: string[] = [];
  for (const id of ids) {
    if (known(id)) continue;
    const indexes = await fs.readdir(path.join(root, id)).catch(() => [] as string[]);
    for (const index of indexes) await releaseDir(path.join(root, id, index));
    await fs.rmdir(path.join(root, id)).catch(() => undefined);
    released.push(id);
  }
  return released;
}
