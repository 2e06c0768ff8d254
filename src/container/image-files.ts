import { promises as fs } from 'node:fs';
import path from 'node:path';
import type { Mount } from '../gen/containerd/types/mount';
import { readBoundedRegularFile } from '../host/read-bounded-file';

/**
 * The directories a snapshot's mounts stack, top first: an overlay's
 * upperdir then its lowerdirs, or a bind mount's source. Reading a file
 * through them needs no mount, which keeps CreateContainer cheap.
 */
export function layerDirs(mounts: Mount[]): string[] {
  const dirs: string[] = [];
  for (const m of mounts) {
    if (m.type === 'bind' || m.type === 'rbind') dirs.push(m.source);
    if (m.type === 'overlay') {
      const opt = (key: string) => m.options.find((o) => o.startsWith(`${key}=`))?.slice(key.length + 1);
      const upper = opt('upperdir');
      if (upper) dirs.push(upper);
      dirs.push(...(opt('lowerdir')?.split(':') ?? []));
    }
  }
  return dirs;
}

/** /etc/passwd and /etc/group of an image with many thousands of users stay far below this. */
export const MAX_IMAGE_FILE_BYTES = 8 * 1024 * 1024;

/**
 * A small text file of the image (/etc/passwd, /etc/group) as the
 * container would see it, or undefined. Whiteouts hide a lower copy; a
 * symlinked path is not followed out of the layer (it would point at the host).
 */
export async function readImageFile(mounts: Mount[], file: string): Promise<string | undefined> {
  const rel = file.replace(/^\/+/, '');
  for (const dir of layerDirs(mounts)) {
    const candidate = path.join(dir, rel);
    const st = await fs.lstat(candidate).catch(() => undefined);
    if (!st) continue;
    // overlayfs whiteout: a 0/0 character device
    if (st.isCharacterDevice() && st.rdev === 0) return undefined;
    if (!st.isFile()) return undefined;
    return (await readBoundedRegularFile(candidate, MAX_IMAGE_FILE_BYTES, `image file ${file}`)).toString('utf8');
  }
  return undefined;
}

/** An image's /etc/passwd and /etc/group as a new container of it sees them (undefined: absent). */
export interface ImageEtcFiles {
  passwd?: string;
  group?: string;
}

/** Files larger than this are read again per container rather than kept. */
const CACHED_FILE_BYTES = 64 * 1024;
const CACHED_IMAGES = 256;

const etcKey = (snapshotter: string, parent: string) => `${snapshotter}\n${parent}`;

/**
 * The /etc files of each image top layer (snapshotter and parent snapshot),
 * once one container of it has read them. A new container's upper layer is
 * empty and a committed snapshot never changes, so every container over the
 * same parent sees the same files: a later container's spec can be built
 * before its snapshot exists, and then it needs no lease (createThenRootfs).
 * Bounded in entries and in file size; the oldest entry goes first.
 */
export class ImageEtcCache {
  private readonly entries = new Map<string, ImageEtcFiles>();

  get(snapshotter: string, parent: string): ImageEtcFiles | undefined {
    return parent ? this.entries.get(etcKey(snapshotter, parent)) : undefined;
  }

  remember(snapshotter: string, parent: string, files: ImageEtcFiles): void {
    if (!parent || [files.passwd, files.group].some((f) => f !== undefined && f.length > CACHED_FILE_BYTES)) return;
    const key = etcKey(snapshotter, parent);
    this.entries.delete(key);
    this.entries.set(key, files);
    if (this.entries.size > CACHED_IMAGES) this.entries.delete(this.entries.keys().next().value!);
  }
}
