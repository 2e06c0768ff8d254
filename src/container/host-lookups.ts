import { lstatSync, readdirSync, statSync, Stats } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors';
import { mountContaining, readMountinfo } from '../host/mountinfo';
import { quote } from '../util/bounds';
import type { HostDevice, HostPropagation } from '../oci';

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

/** A CRI device's host path: one device node, or every node under a directory. */
export function lookupDevice(hostPath: string): HostDevice | HostDevice[] {
  let st: Stats;
  try {
    st = statSync(hostPath);
  } catch {
    throw new InvalidArgumentError(`devices: host path ${quote(hostPath, 256)} does not exist`);
  }
  if (st.isDirectory()) return listDevices(hostPath, MAX_DEVICE_DIR_ENTRIES);
  const dev = toHostDevice(hostPath, st);
  if (!dev) throw new InvalidArgumentError(`devices: ${quote(hostPath, 256)} is not a device node`);
  return dev;
}

/**
 * How much of a directory a request's device lookup walks (synchronously,
 * in one turn): /dev holds a few hundred entries; a request naming "/" must
 * not walk the host's filesystem. The host's own /dev (privileged
 * containers) may be larger on storage nodes.
 */
export const MAX_DEVICE_DIR_ENTRIES = 8192;
const MAX_HOST_DEV_ENTRIES = 65536;
export const MAX_DEVICE_DIR_DEPTH = 8;

/** Every device node under a directory (privileged containers get all of /dev). */
export function listDevices(dir = '/dev', maxEntries = MAX_HOST_DEV_ENTRIES): HostDevice[] {
  const out: HostDevice[] = [];
  let seen = 0;
  const tooBig = () =>
    new InvalidArgumentError(
      `devices: ${quote(dir, 256)} holds more than ${maxEntries} entries or ${MAX_DEVICE_DIR_DEPTH} levels; name device nodes or a directory of them`,
    );
  const walk = (d: string, depth: number) => {
    if (depth > MAX_DEVICE_DIR_DEPTH) throw tooBig();
    for (const name of readdirSync(d)) {
      if (++seen > maxEntries) throw tooBig();
      const p = path.join(d, name);
      // /dev/pts belongs to each container's own devpts; /dev/shm and mqueue are mounts, not devices.
      if (p === '/dev/pts' || p === '/dev/shm' || p === '/dev/mqueue') continue;
      let st: Stats;
      try {
        // A symlinked directory is not entered (/dev/fd -> /proc/self/fd would loop); symlinked nodes count.
        st = lstatSync(p);
        if (st.isSymbolicLink()) {
          st = statSync(p);
          if (st.isDirectory()) continue;
        }
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p, depth + 1);
      else {
        const dev = toHostDevice(p, st);
        if (dev) out.push(dev);
      }
    }
  };
  walk(dir, 0);
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
