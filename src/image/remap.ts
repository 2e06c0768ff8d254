/**
 * Image snapshots whose files belong to a pod's user namespace.
 *
 * runc 1.1 cannot make idmapped mounts, so a container whose root is mapped
 * to host UID 983040 would see every image file as owned by "nobody" and
 * could not write its own rootfs. What containerd 1.7 did without idmapped
 * mounts is done here too: the image's top snapshot is copied once per
 * mapping into a committed snapshot whose owners are shifted into the
 * mapping's host range, and containers of such pods are prepared on top of
 * that copy instead of the image's own chain.
 *
 * The copy is cached in containerd (found again by name after a restart)
 * and lives exactly as long as the image: a GC reference label on the
 * image's config blob keeps it, so RemoveImage lets containerd collect it
 * once no container's snapshot has it as parent.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promises as fs, Stats } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { CallContext } from '../containerd/call';
import type { ContainerdConnection } from '../containerd/connection';
import { blobsWithLabel, removeBlobLabel, setBlobLabels } from '../containerd/content';
import { withLease } from '../containerd/leases';
import { step } from '../util/undo';
import { AlreadyExistsError, FailedPreconditionError, InternalError } from '../errors';
import type { Mount } from '../gen/containerd/types/mount';
import type { Logger } from '../log/logger';
import type { OciIdMapping } from '../oci/oci-types';
import { GC_REF_SNAPSHOT } from './layers';
import type { ImageEntry } from './store';
import { snapshotExists } from './unpack';

const run = promisify(execFile);

/** Bounds the hold on a copy if the adapter dies before releasing it; the hold is dropped when `use` returns. */
const HOLD_SECONDS = 300;

export interface IdRanges {
  uid: OciIdMapping;
  gid: OciIdMapping;
}

export interface RemapDeps {
  conn: ContainerdConnection;
  snapshotter: string;
  logger: Logger;
}

/** Name of the remapped copy of a chain: derivable, so a restarted adapter finds it without a record. */
export function remappedSnapshotName(chainId: string, ranges: IdRanges): string {
  return `cri-adapter-remap/${ranges.uid.hostID}-${ranges.uid.size}-${ranges.gid.hostID}-${ranges.gid.size}/${chainId}`;
}

/**
 * The config blob's label that ties a remapped copy to the image, for containerd's GC. containerd 1.6's
 * GC (metadata/gc.go) takes the snapshotter name up to the first '/' after the prefix and ignores the
 * rest, so one label per mapping can sit next to the image's own snapshot reference.
 */
export function remapGcLabel(snapshotter: string, ranges: IdRanges): string {
  return `${GC_REF_SNAPSHOT}.${snapshotter}/remap-${ranges.uid.hostID}-${ranges.uid.size}-${ranges.gid.hostID}-${ranges.gid.size}`;
}

function shift(id: number, m: OciIdMapping): number {
  // IDs outside the range stay as they are: inside the namespace they show as the overflow ID.
  return id >= m.containerID && id < m.containerID + m.size ? m.hostID + (id - m.containerID) : id;
}

/**
 * Shifts the owner of every file under `root` into the host ranges. chown
 * clears set-user-ID and set-group-ID bits (the kernel does so even for
 * root), so those modes are put back afterwards.
 *
 * A file with several hard links must be shifted once: its owner after the
 * first link may lie inside the range again (host ID 1000, length 100000),
 * and a second shift would move it twice. Whether two links still share an
 * inode after the first chown depends on the snapshotter (overlayfs without
 * `index` copies each link up on its own), so the inode is recorded after
 * the chown, and linked files go one at a time: a link whose inode is
 * recorded was shifted already.
 */
export async function shiftOwnership(root: string, ranges: IdRanges): Promise<number> {
  let count = 0;
  const shifted = new Set<string>();
  let linked: Promise<void> = Promise.resolve();
  const chownOne = async (p: string, st: Stats): Promise<void> => {
    await fs.lchown(p, shift(st.uid, ranges.uid), shift(st.gid, ranges.gid));
    count++;
    if (!st.isSymbolicLink() && (st.mode & 0o6000) !== 0) await fs.chmod(p, st.mode & 0o7777);
  };
  const visit = async (p: string): Promise<void> => {
    const st = await fs.lstat(p);
    if (st.isDirectory()) {
      await chownOne(p, st);
      const names = await fs.readdir(p);
      // A directory's entries at once, directories one level at a time: bounded by the widest directory.
      await Promise.all(names.map((n) => visit(path.join(p, n))));
      return;
    }
    if (st.nlink <= 1) return chownOne(p, st);
    const next = linked.then(async () => {
      const now = await fs.lstat(p);
      if (shifted.has(`${now.dev}:${now.ino}`)) return;
      await chownOne(p, now);
      const after = await fs.lstat(p);
      shifted.add(`${after.dev}:${after.ino}`);
    });
    linked = next.catch(() => undefined);
    return next;
  };
  await visit(root);
  await linked;
  return count;
}

async function mountAt(mounts: Mount[], target: string): Promise<void> {
  if (mounts.length !== 1) throw new InternalError(`a remapped snapshot needs a single mount, got ${mounts.length}`);
  const m = mounts[0]!;
  const bind = m.type === 'bind' || m.type === 'rbind';
  const args = bind
    ? ['--bind', m.source, target]
    : ['-t', m.type, '-o', m.options.join(','), m.source || m.type, target];
  try {
    await run('mount', args);
  } catch (err) {
    throw new InternalError(`mounting a snapshot to remap it: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
}

export class RemappedSnapshots {
  /** One copy per name at a time; a second pod asking for the same copy waits for the first. */
  private readonly inFlight = new Map<string, Promise<string>>();

  constructor(private readonly deps: RemapDeps) {}

  /**
   * Runs `use` with the parent snapshot of a rootfs of `image`: the image's
   * own chain, or in a pod with a user namespace the copy for its ranges
   * (made on first use). The copy is leased until `use` returns, by when
   * the snapshot `use` prepared on it keeps it: nothing else may, as
   * release() can drop the image's label at any time.
   */
  async withParent<T>(image: ImageEntry, ranges: IdRanges | undefined, call: CallContext, use: (parent: string) => Promise<T>): Promise<T> {
    if (!ranges) return use(image.chainId ?? '');
    const name = await step('remap the image for the user namespace', () => this.copyFor(image, ranges, call));
    const { conn, snapshotter } = this.deps;
    return withLease(conn, { expireAfterSeconds: HOLD_SECONDS, releaseInBackground: true }, call, async (held) => {
      await conn.leases.addResource({ id: held.lease!, resource: { id: name, type: `snapshots/${snapshotter}` } }, call);
      return use(name);
    });
  }

  private async copyFor(image: ImageEntry, ranges: IdRanges, call: CallContext): Promise<string> {
    if (!image.chainId) throw new FailedPreconditionError(`image ${image.id} has no layers to give a user namespace`);
    const name = remappedSnapshotName(image.chainId, ranges);
    let pending = this.inFlight.get(name);
    if (!pending) {
      pending = this.ensure(image, image.chainId, name, ranges, call).finally(() => this.inFlight.delete(name));
      this.inFlight.set(name, pending);
    }
    return pending;
  }

  /**
   * The last pod with these ranges is gone: the image no longer keeps their
   * copies. The kubelet gives every pod a range of its own, so a copy kept
   * for the image's whole life would be one full copy per pod ever run.
   * containerd collects a copy once no container snapshot has it as parent.
   */
  async release(ranges: IdRanges, call: CallContext): Promise<void> {
    const { conn, snapshotter, logger } = this.deps;
    const key = remapGcLabel(snapshotter, ranges);
    const blobs = await blobsWithLabel(conn, key, call);
    for (const digest of blobs) await removeBlobLabel(conn, digest, key, call);
    if (blobs.length) logger.info('remapped image snapshots released', { label: key, images: blobs.length });
  }

  private async ensure(image: ImageEntry, chainId: string, name: string, ranges: IdRanges, call: CallContext): Promise<string> {
    const { conn, snapshotter, logger } = this.deps;
    const label = { [remapGcLabel(snapshotter, ranges)]: name };
    if (await snapshotExists(conn, snapshotter, name, call)) {
      // Cheap and idempotent: the image may have been pulled again (a new config blob record) since.
      await setBlobLabels(conn, image.id, label, call);
      return name;
    }
    const started = performance.now();
    // The copy is referenced by nothing until the config label is set: lease it until then.
    await withLease(conn, { expireAfterSeconds: 1800 }, call, async (leased) => {
      const key = `${name}-prepare-${randomBytes(6).toString('hex')}`;
      const { mounts } = await conn.snapshots.prepare({ snapshotter, key, parent: chainId, labels: {} }, leased);
      const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'cri-adapter-remap-'));
      let files = 0;
      try {
        await mountAt(mounts, dir);
        try {
          files = await shiftOwnership(dir, ranges);
        } finally {
          await run('umount', [dir]).catch(() => run('umount', ['-l', dir]));
        }
        await conn.snapshots.commit({ snapshotter, name, key, labels: {} }, leased);
      } catch (err) {
        await conn.snapshots.remove({ snapshotter, key }, { deadline: Date.now() + 30_000 }).catch(() => undefined);
        // Another adapter call (or an earlier process) committed the same copy meanwhile.
        if (!(err instanceof AlreadyExistsError)) throw err;
      } finally {
        // Never recursive: if the unmount failed, the directory still shows the snapshot.
        await fs.rmdir(dir).catch(() => undefined);
      }
      await setBlobLabels(conn, image.id, label, leased);
      logger.info('image snapshot remapped for a user namespace', {
        imageId: image.id,
        snapshot: name,
        files,
        ms: Math.round(performance.now() - started),
      });
    });
    return name;
  }
}
