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
