import { promises as fs, statSync, Stats } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors';
import { mountContaining, readMountinfo } from '../host/mountinfo';
import { quote } from '../util/bounds';
import type { DeviceLookup, HostDevice, HostPropagation } from '../oci';

// Linux dev_t encoding (glibc's gnu_dev_major/minor).
const major = (rdev: number) => ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
const minor = (rdev: number) => (rdev & 0xff) | ((rdev >>> 12) & 0xfff00);

function toHostDevice(p: string, st: Stats): HostDevice | undefined {
  if (!st.isCharacterDevice() && !st.isBlockDevice()) return undefined;
  return {
    path: p,
    type: st.isCharacterDevice() ? 'c' : 'b',
    major: major(st.rdev),
    minor: minor(st.rdev),
    fileMode: st.mode & 0o7777,
    uid: st.uid,
    gid: st.gid,
  };
}

/**
 * One device node's host path (one stat). Directories are walked ahead,
 * asynchronously, by deviceLookupFor; one met here (a CDI node) is refused.
 */
export function lookupDevice(hostPath: string): HostDevice | HostDevice[] {
  let st: Stats;
  try {
    st = statSync(hostPath);
  } catch {
    throw new InvalidArgumentError(`devices: host path ${quote(hostPath, 256)} does not exist`);
  }
  if (st.isDirectory()) throw new InvalidArgumentError(`devices: ${quote(hostPath, 256)} is a directory, not a device node`);
  const dev = toHostDevice(hostPath, st);
  if (!dev) throw new InvalidArgumentError(`devices: ${quote(hostPath, 256)} is not a device node`);
  return dev;
}

/**
 * The spec builder's device lookup for a request's device host paths: those
 * that are directories are walked first, asynchronously and bounded (as
 * containerd does, every device node under them counts), never in one turn.
 */
export async function deviceLookupFor(hostPaths: readonly string[]): Promise<DeviceLookup> {
  const dirs = new Map<string, HostDevice[]>();
  for (const [i, p] of hostPaths.entries()) {
    if (!p.startsWith('/') || dirs.has(p)) continue;
    const st = await fs.stat(p).catch(() => undefined);
    if (st?.isDirectory()) dirs.set(p, await listDevices(p, MAX_DEVICE_DIR_ENTRIES, `devices[${i}].host_path`));
  }
  return (p) => dirs.get(p) ?? lookupDevice(p);
}

/**
 * How much of a directory a request's device lookup walks: /dev holds a few hundred entries; a request naming "/" must
 * not walk the host's filesystem. The host's own /dev (privileged
 * containers) may be larger on storage nodes.
 */
export const MAX_DEVICE_DIR_ENTRIES = 8192;
const MAX_HOST_DEV_ENTRIES = 65536;
export const MAX_DEVICE_DIR_DEPTH = 8;

/** Every device node under a directory (privileged containers get all of /dev). */
export async function listDevices(dir = '/dev', maxEntries = MAX_HOST_DEV_ENTRIES, field = 'devices'): Promise<HostDevice[]> {
  const out: HostDevice[] = [];
  let seen = 0;
  const tooBig = () =>
    new InvalidArgumentError(
      `${field}: ${quote(dir, 256)} holds more than ${maxEntries} entries or ${MAX_DEVICE_DIR_DEPTH} levels; name device nodes or a directory of them`,
    );
  const walk = async (d: string, depth: number): Promise<void> => {
    if (depth > MAX_DEVICE_DIR_DEPTH) throw tooBig();
    let names: string[];
    try {
      names = await fs.readdir(d);
    } catch {
      return;
    }
    for (const name of names) {
      if (++seen > maxEntries) throw tooBig();
      const p = path.join(d, name);
      // /dev/pts belongs to each container's own devpts; /dev/shm and mqueue are mounts, not devices.
      if (p === '/dev/pts' || p === '/dev/shm' || p === '/dev/mqueue') continue;
      let st: Stats;
      try {
        // A symlinked directory is not entered (/dev/fd -> /proc/self/fd would loop); symlinked nodes count.
        st = await fs.lstat(p);
        if (st.isSymbolicLink()) {
          st = await fs.stat(p);
          if (st.isDirectory()) continue;
        }
      } catch {
        continue;
      }
      if (st.isDirectory()) await walk(p, depth + 1);
      else {
        const dev = toHostDevice(p, st);
        if (dev) out.push(dev);
      }
    }
  };
  await walk(dir, 0);
  return out;
}

/**
 * The propagation of the host mount holding a path, from mountinfo's
 * optional fields. One lookup per request: mountinfo is read once, at the
 * first mount that asks, so a container with many mounts does not read it
 * (synchronously) once per mount.
 */
export function propagationLookup(): (hostPath: string) => HostPropagation | undefined {
  let mounts: ReturnType<typeof readMountinfo> | undefined;
  return (hostPath) => {
    mounts ??= readMountinfo();
    return propagationOf(hostPath, mounts);
  };
}

function propagationOf(hostPath: string, mounts: ReturnType<typeof readMountinfo>): HostPropagation | undefined {
  const mount = mountContaining(hostPath, mounts);
  if (!mount) return undefined;
  if (mount.optionalFields.some((f) => f.startsWith('shared:'))) return 'shared';
  return mount.optionalFields.some((f) => f.startsWith('master:')) ? 'slave' : 'private';
}
