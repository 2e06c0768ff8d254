import type { SpecOpt } from './oci-types';
import { invalidField } from './validate';
import { quote } from '../util/bounds';

export interface SysctlNamespaces {
  /** The pod has its own network namespace. */
  network: boolean;
  /** The pod has its own IPC namespace. */
  ipc: boolean;
  /** The pod has its own UTS namespace. */
  uts: boolean;
}

const IPC_SYSCTLS = new Set(['kernel.shmmax', 'kernel.shmall', 'kernel.shmmni', 'kernel.shm_rmid_forced', 'kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.sem']);
const NAME = /^[a-z0-9_]+([./][a-zA-Z0-9_.\-/]+)*$/;

/**
 * Which namespace a sysctl belongs to, or undefined when it is host-global.
 * The kubelet may send slash-separated names ("net/ipv4/ip_forward"); the
 * leading component is the same in both spellings.
 */
export function sysctlNamespace(name: string): keyof SysctlNamespaces | undefined {
  const dotted = name.includes('/') ? name.replace(/\//g, '.') : name;
  if (dotted.startsWith('net.')) return 'network';
  if (IPC_SYSCTLS.has(dotted) || dotted.startsWith('fs.mqueue.')) return 'ipc';
  if (dotted === 'kernel.domainname') return 'uts';
  return undefined;
}

/**
 * Checks sysctls before runc does, to name the offending key: a sysctl is
 * only safe to set when the pod owns the namespace it lives in; setting a
 * net.* sysctl of a host-network pod would change the node.
 */
export function validateSysctls(sysctls: Record<string, string>, ns: SysctlNamespaces, field: string): void {
  for (const [name, value] of Object.entries(sysctls)) {
    const f = `${field}[${quote(name, 64)}]`;
    if (!NAME.test(name)) throw invalidField(f, 'is not a valid sysctl name');
    if (value.includes('\n')) throw invalidField(f, 'value must be one line');
    const kind = sysctlNamespace(name);
    if (kind === undefined) throw invalidField(f, 'is not namespaced and cannot be set for one pod');
    if (!ns[kind]) throw invalidField(f, `needs the pod's own ${kind} namespace, but the pod uses the host's`);
  }
}

export function withSysctls(sysctls: Record<string, string>): SpecOpt {
  return (spec) => {
    if (Object.keys(sysctls).length === 0) return;
    spec.linux.sysctl = { ...spec.linux.sysctl, ...sysctls };
  };
}
