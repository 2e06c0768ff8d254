import { readdirSync, statSync, Stats } from 'node:fs';
import path from 'node:path';
import { InvalidArgumentError } from '../errors';
import { mountContaining, readMountinfo } from '../host/mountinfo';
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
    throw new InvalidArgumentError(`devices: host path ${hostPath} does not exist`);
  }
  if (st.isDirectory()) return listDevices(hostPath);
  const dev = toHostDevice(hostPath, st);
  if (!dev) throw new InvalidArgumentError(`devices: ${hostPath} is not a device node`);
  return dev;
}

/** Every device node under a directory (privileged containers get all of /dev). */
export function listDevices(dir = '/dev'): HostDevice[] {
  const out: HostDevice[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      // /dev/pts belongs to each container's own devpts; /dev/shm and mqueue are mounts, not devices.
      if (p === '/dev/pts' || p === '/dev/shm' || p === '/dev/mqueue') continue;
      let st: Stats;
      try {
        st = statSync(p);
      } catch {
        continue;
      }
      if (st.isDirectory()) walk(p);
      else {
        const dev = toHostDevice(p, st);
        if (dev) out.push(dev);
      }
    }
  };
  walk(dir);
  return out;
}

/** The propagation of the host mount holding `hostPath`, from mountinfo's optional fields. */
export function lookupPropagation(hostPath: string): HostPropagation | undefined {
  const mount = mountContaining(hostPath, readMountinfo());
  if (!mount) return undefined;
  if (mount.optionalFields.some((f) => f.startsWith('shared:'))) return 'shared';
  return mount.optionalFields.some((f) => f.startsWith('master:')) ? 'slave' : 'private';
}
