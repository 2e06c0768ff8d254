import { NamespaceMode } from '../gen/runtime/v1/api';
import type { NamespaceOption } from '../gen/runtime/v1/api';
import type { OciNamespace, OciNamespaceType, SpecOpt } from './oci-types';
import { invalidField } from './validate';

export function nsPath(pid: number, type: 'net' | 'ipc' | 'uts' | 'pid' | 'user'): string {
  return `/proc/${pid}/ns/${type}`;
}

/** Replaces the namespace list; the order is runc's, not significant. */
export function withNamespaces(namespaces: readonly OciNamespace[]): SpecOpt {
  return (spec) => {
    spec.linux.namespaces = namespaces.map((n) => ({ ...n }));
  };
}

/** Whether the spec creates or joins a namespace of this type (rather than using the host's). */
export function hasNamespace(spec: { linux: { namespaces?: OciNamespace[] } }, type: OciNamespaceType): boolean {
  return (spec.linux.namespaces ?? []).some((n) => n.type === type);
}

export interface SandboxNamespaceInput {
  options: NamespaceOption | undefined;
  /** Pre-created network namespace (where CNI ran); absent means runc makes a fresh one. */
  netnsPath?: string;
}

/**
 * The pause container's namespaces. NODE means "the host's", which in OCI
 * is the absence of an entry. Host networking implies the host UTS
 * namespace too: a pod on the host network reports the node's hostname.
 */
export function sandboxNamespaces(input: SandboxNamespaceInput, field: string): OciNamespace[] {
  const o = input.options;
  const hostNet = o?.network === NamespaceMode.NODE;
  const out: OciNamespace[] = [{ type: 'mount' }];
  checkMode(o?.network, [NamespaceMode.POD, NamespaceMode.NODE], `${field}.network`);
  checkMode(o?.ipc, [NamespaceMode.POD, NamespaceMode.NODE], `${field}.ipc`);
  checkMode(o?.pid, [NamespaceMode.POD, NamespaceMode.CONTAINER, NamespaceMode.NODE], `${field}.pid`);
  if (!hostNet) {
    out.push(input.netnsPath ? { type: 'network', path: input.netnsPath } : { type: 'network' });
    out.push({ type: 'uts' });
  }
  if (o?.ipc !== NamespaceMode.NODE) out.push({ type: 'ipc' });
  if (o?.pid !== NamespaceMode.NODE) out.push({ type: 'pid' });
  return out;
}

function checkMode(mode: NamespaceMode | undefined, allowed: NamespaceMode[], field: string): void {
  if (mode !== undefined && !allowed.includes(mode)) throw invalidField(field, `namespace mode ${mode} is not valid here`);
}

export interface ContainerNamespaceInput {
  options: NamespaceOption | undefined;
  /** The sandbox's own options decide network/IPC: containers of a pod always share them. */
  sandboxOptions: NamespaceOption | undefined;
  sandboxPid: number;
  netnsPath?: string;
  /** PID of the container named by target_id, for PID mode TARGET. */
  targetPid?: number;
  /** Give the container a private cgroup namespace (cgroup v2, unprivileged). */
  cgroupNamespace: boolean;
}

/**
 * A container's namespaces: network, IPC and UTS are the pod's (joined
 * through the pause process); PID depends on the mode; mount is always new.
 */
export function containerNamespaces(input: ContainerNamespaceInput, field: string): OciNamespace[] {
  const o = input.options;
  const s = input.sandboxOptions;
  const hostNet = s?.network === NamespaceMode.NODE || o?.network === NamespaceMode.NODE;
  const hostIpc = s?.ipc === NamespaceMode.NODE || o?.ipc === NamespaceMode.NODE;
  if (!Number.isInteger(input.sandboxPid) || input.sandboxPid <= 0) {
    throw invalidField('pod_sandbox_id', 'the sandbox has no running process to join');
  }
  const out: OciNamespace[] = [{ type: 'mount' }];
  if (!hostNet) {
    out.push({ type: 'network', path: input.netnsPath ?? nsPath(input.sandboxPid, 'net') });
    out.push({ type: 'uts', path: nsPath(input.sandboxPid, 'uts') });
  }
  if (!hostIpc) out.push({ type: 'ipc', path: nsPath(input.sandboxPid, 'ipc') });
  // Absent options mean the proto zero values: the CRI default PID mode is POD (the kubelet sends CONTAINER explicitly).
  switch (o?.pid ?? NamespaceMode.POD) {
    case NamespaceMode.POD:
      // When the sandbox itself is on the host PID namespace, "the pod's" is the host's.
      if (s?.pid !== NamespaceMode.NODE) out.push({ type: 'pid', path: nsPath(input.sandboxPid, 'pid') });
      break;
    case NamespaceMode.CONTAINER:
      out.push({ type: 'pid' });
      break;
    case NamespaceMode.NODE:
      break;
    case NamespaceMode.TARGET:
      if (!o?.targetId) throw invalidField(`${field}.target_id`, 'must be set when pid is TARGET');
      if (input.targetPid === undefined || !Number.isInteger(input.targetPid) || input.targetPid <= 0) {
        throw invalidField(`${field}.target_id`, `target container ${o.targetId} is not running`);
      }
      out.push({ type: 'pid', path: nsPath(input.targetPid, 'pid') });
      break;
    default:
      throw invalidField(`${field}.pid`, `unknown namespace mode ${o?.pid}`);
  }
  if (input.cgroupNamespace) out.push({ type: 'cgroup' });
  return out;
}

/**
 * Only set a hostname where the container has a UTS namespace of its own or
 * the pod's: runc refuses to set one in the host's.
 */
export function withHostname(hostname: string): SpecOpt {
  return (spec) => {
    if (hostname !== '' && hasNamespace(spec, 'uts')) spec.hostname = hostname;
    else delete spec.hostname;
  };
}
