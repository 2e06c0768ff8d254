/**
 * Pod user namespaces (`NamespaceOption.userns_options`, pods with
 * `hostUsers: false`). The kubelet picks one range of host IDs per pod and
 * sends it as a single mapping for UIDs and one for GIDs, both starting at
 * container ID 0; every container of the pod joins the pause process's user
 * namespace, so the whole pod shares one mapping.
 */
import { NamespaceMode } from '../gen/runtime/v1/api';
import type { IDMapping, NamespaceOption } from '../gen/runtime/v1/api';
import type { OciIdMapping, SpecOpt } from './oci-types';
import { invalidField } from './validate';

/** The one UID range and the one GID range of a pod's user namespace. */
export interface UserNamespaceMapping {
  uid: OciIdMapping;
  gid: OciIdMapping;
}

/** IDs are 32-bit; (uint32)-1 is the kernel's "no ID" and cannot be mapped. */
const ID_SPACE = 2 ** 32 - 1;

function oneMapping(list: readonly IDMapping[], field: string): OciIdMapping {
  if (list.length !== 1) throw invalidField(field, `exactly one mapping is supported, got ${list.length}`);
  const m = list[0]!;
  if (m.containerId !== 0) throw invalidField(field, `the mapping must start at container ID 0 (got ${m.containerId})`);
  if (m.length === 0) throw invalidField(field, 'the mapping length must be greater than 0');
  if (m.hostId === 0) throw invalidField(field, 'host ID 0 (root) must not be mapped into a pod user namespace');
  if (m.hostId + m.length > ID_SPACE) throw invalidField(field, `host IDs ${m.hostId}+${m.length} exceed the 32-bit ID space`);
  return { containerID: m.containerId, hostID: m.hostId, size: m.length };
}

/**
 * The pod's user namespace, or undefined when it runs in the host's (mode
 * NODE, or the options absent or empty, as older kubelets send them).
 * Throws InvalidArgumentError naming the field for anything this runtime
 * cannot honour exactly.
 */
export function podUserNamespace(ns: NamespaceOption | undefined, field: string): UserNamespaceMapping | undefined {
  const u = ns?.usernsOptions;
  if (!u) return undefined;
  const f = `${field}.userns_options`;
  switch (u.mode) {
    case NamespaceMode.NODE:
      if (u.uids.length || u.gids.length) throw invalidField(f, 'mode NODE takes no ID mappings');
      return undefined;
    case NamespaceMode.POD:
      if (u.uids.length === 0 && u.gids.length === 0) return undefined;
      break;
    default:
      throw invalidField(`${f}.mode`, `mode ${NamespaceMode[u.mode] ?? u.mode} is not supported; only POD and NODE are`);
  }
  const mapping = { uid: oneMapping(u.uids, `${f}.uids`), gid: oneMapping(u.gids, `${f}.gids`) };
  if (ns?.network === NamespaceMode.NODE) throw invalidField(`${field}.network`, 'a pod with a user namespace cannot use the host network');
  if (ns?.pid === NamespaceMode.NODE) throw invalidField(`${field}.pid`, 'a pod with a user namespace cannot use the host PID namespace');
  if (ns?.ipc === NamespaceMode.NODE) throw invalidField(`${field}.ipc`, 'a pod with a user namespace cannot use the host IPC namespace');
  return mapping;
}

export function sameMapping(a: UserNamespaceMapping | undefined, b: UserNamespaceMapping | undefined): boolean {
  const eq = (x: OciIdMapping, y: OciIdMapping) => x.containerID === y.containerID && x.hostID === y.hostID && x.size === y.size;
  if (!a || !b) return a === b;
  return eq(a.uid, b.uid) && eq(a.gid, b.gid);
}

/** The host ID a container ID maps to, or undefined when outside the range. */
export function mapToHost(id: number, m: OciIdMapping): number | undefined {
  return id >= m.containerID && id < m.containerID + m.size ? m.hostID + (id - m.containerID) : undefined;
}

/**
 * Creates (no path) or joins (path) the pod's user namespace, with the
 * mappings runc checks a joined namespace against.
 */
export function withUserNamespace(mapping: UserNamespaceMapping, path?: string): SpecOpt {
  return (spec) => {
    const namespaces = (spec.linux.namespaces ?? []).filter((n) => n.type !== 'user');
    namespaces.push(path ? { type: 'user', path } : { type: 'user' });
    spec.linux.namespaces = namespaces;
    spec.linux.uidMappings = [{ ...mapping.uid }];
    spec.linux.gidMappings = [{ ...mapping.gid }];
  };
}
