import type { Device } from '../gen/runtime/v1/api';
import { InternalError } from '../errors';
import type { OciDevice, SpecOpt } from './oci-types';
import { cleanAbsolutePath, invalidField } from './validate';
import { quote } from '../util/bounds';

/** What stat(2) says about a device node on the host. */
export interface HostDevice {
  /** Host path of this node (for a directory lookup, a path under it). */
  path: string;
  type: 'c' | 'b';
  major: number;
  minor: number;
  /** Permission bits (st_mode & 0o7777). */
  fileMode?: number;
  uid?: number;
  gid?: number;
}

/**
 * Stats a host path (resolving symlinks). Returns the node, or, for a
 * directory, every device node below it (how `/dev/snd` style requests work).
 * Throws if the path is missing or not a device; the error is reported
 * against the CRI field. Passed in so spec building stays free of I/O.
 */
export type DeviceLookup = (hostPath: string) => HostDevice | HostDevice[];

export interface DeviceOwnership {
  uid?: number;
  gid?: number;
}

function toOciDevice(d: HostDevice, containerPath: string, owner: DeviceOwnership): OciDevice {
  const dev: OciDevice = { path: containerPath, type: d.type, major: d.major, minor: d.minor };
  if (d.fileMode !== undefined) dev.fileMode = d.fileMode;
  const uid = owner.uid ?? d.uid;
  const gid = owner.gid ?? d.gid;
  if (uid !== undefined) dev.uid = uid;
  if (gid !== undefined) dev.gid = gid;
  return dev;
}

/** Adds a node (replacing one at the same path) and its device cgroup rule. */
export function addDevice(spec: Parameters<SpecOpt>[0], dev: OciDevice, access: string): void {
  const devices = (spec.linux.devices ??= []);
  const at = devices.findIndex((d) => d.path === dev.path);
  if (at >= 0) devices[at] = dev;
  else devices.push(dev);
  const resources = (spec.linux.resources ??= {});
  (resources.devices ??= []).push({ allow: true, type: dev.type === 'b' ? 'b' : 'c', major: dev.major, minor: dev.minor, access });
}

/** Normalises cgroup access letters; the kubelet sends "mrw", others "rwm". */
export function devicePermissions(p: string, field: string): string {
  if (p === '') return 'rwm';
  if (!/^[rwm]+$/.test(p)) throw invalidField(field, `invalid permissions ${quote(p)} (any of r, w, m)`);
  return ['r', 'w', 'm'].filter((c) => p.includes(c)).join('');
}

/**
 * Exposes the CRI devices: each node is created in the container and allowed
 * in the device cgroup with the requested access. With
 * `owner` set (device_ownership_from_security_context), nodes belong to the
 * container's user so a non-root workload can open them.
 */
export function withCriDevices(devices: readonly Device[], lookup: DeviceLookup | undefined, owner: DeviceOwnership = {}): SpecOpt {
  return (spec) => {
    devices.forEach((d, i) => {
      const f = `devices[${i}]`;
      if (d.hostPath === '') throw invalidField(`${f}.host_path`, 'must not be empty');
      if (!d.hostPath.startsWith('/')) throw invalidField(`${f}.host_path`, `path ${quote(d.hostPath)} must be absolute`);
      const containerPath = cleanAbsolutePath(d.containerPath === '' ? d.hostPath : d.containerPath, `${f}.container_path`);
      const access = devicePermissions(d.permissions, `${f}.permissions`);
      if (!lookup) throw new InternalError(`${f}: devices requested but no device lookup was passed to the spec builder`);
      let found: HostDevice | HostDevice[];
      try {
        found = lookup(d.hostPath);
      } catch (err) {
        throw invalidField(`${f}.host_path`, `cannot use ${d.hostPath} as a device: ${err instanceof Error ? err.message : String(err)}`);
      }
      if (Array.isArray(found)) {
        const base = d.hostPath.replace(/\/+$/, '');
        for (const node of found) {
          const rel = node.path.startsWith(`${base}/`) ? node.path.slice(base.length) : `/${node.path.split('/').pop() ?? ''}`;
          addDevice(spec, toOciDevice(node, cleanAbsolutePath(containerPath + rel, `${f}.container_path`), owner), access);
        }
      } else {
        addDevice(spec, toOciDevice(found, containerPath, owner), access);
      }
    });
  };
}

/** Privileged containers see the host's device nodes at the same paths. */
export function withHostDevices(hostDevices: readonly HostDevice[]): SpecOpt {
  return (spec) => {
    const devices = (spec.linux.devices ??= []);
    for (const d of hostDevices) {
      if (devices.some((x) => x.path === d.path)) continue;
      devices.push(toOciDevice(d, d.path, {}));
    }
  };
}

/** Replaces the device cgroup rules with one that allows everything. */
export const withAllDevicesAllowed: SpecOpt = (spec) => {
  const resources = (spec.linux.resources ??= {});
  resources.devices = [{ allow: true, access: 'rwm' }];
};
