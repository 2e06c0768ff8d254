import { SecurityProfile_ProfileType } from '../gen/runtime/v1/api';
import type { SecurityProfile } from '../gen/runtime/v1/api';
import type { SpecOpt } from './oci-types';
import { cleanAbsolutePath, invalidField } from './validate';
import { quote } from '../util/bounds';

/**
 * Replaces the masked paths. An empty list keeps the defaults: on the wire
 * an empty repeated field cannot be told from an absent one, and the kubelet
 * sends the full default list itself for the Default proc mount type, so
 * "empty" only ever reaches us from clients that did not set it. (The
 * Unmasked proc mount type needs user namespaces, which are not offered.)
 */
export function withMaskedPaths(paths: readonly string[], field: string): SpecOpt {
  return (spec) => {
    if (paths.length === 0) return;
    spec.linux.maskedPaths = paths.map((p, i) => cleanAbsolutePath(p, `${field}[${i}]`));
  };
}

export function withReadonlyPaths(paths: readonly string[], field: string): SpecOpt {
  return (spec) => {
    if (paths.length === 0) return;
    spec.linux.readonlyPaths = paths.map((p, i) => cleanAbsolutePath(p, `${field}[${i}]`));
  };
}

export function withReadonlyRootfs(readonly: boolean): SpecOpt {
  return (spec) => {
    if (readonly) spec.root.readonly = true;
    else delete spec.root.readonly;
  };
}

export function withNoNewPrivileges(on: boolean): SpecOpt {
  return (spec) => {
    spec.process.noNewPrivileges = on;
  };
}

/**
 * The filesystem half of "privileged": nothing masked or read-only in /proc,
 * and /sys and /sys/fs/cgroup writable (tools like kube-proxy and CNI
 * daemons write there). Capabilities, devices and seccomp are separate
 * options.
 */
export const withPrivilegedFilesystems: SpecOpt = (spec) => {
  spec.linux.maskedPaths = [];
  spec.linux.readonlyPaths = [];
  makeWritable(spec, ['sysfs', 'cgroup', 'cgroup2']);
};

/**
 * A privileged pod's pause container mounts sysfs read-write. sysfs has one
 * superblock per network namespace, and the first mount's read-only flag
 * sticks to it: if pause mounted it read-only, a privileged container joining
 * the pod network would get a read-only /sys despite asking for rw.
 */
export const withWritableSysfs: SpecOpt = (spec) => {
  makeWritable(spec, ['sysfs']);
};

function makeWritable(spec: Parameters<SpecOpt>[0], types: readonly string[]): void {
  for (const m of spec.mounts) {
    if (m.type !== undefined && types.includes(m.type)) {
      m.options = (m.options ?? []).map((o) => (o === 'ro' ? 'rw' : o));
    }
  }
}

/**
 * AppArmor is not available on these nodes, so there is nothing to apply.
 * RuntimeDefault and Unconfined are accepted as "no profile" (the kubelet
 * sends RuntimeDefault by default); a named Localhost profile is refused,
 * because silently running a workload without the confinement it asked
 * for is worse than not running it.
 */
export function checkAppArmor(sp: SecurityProfile | undefined, deprecated: string, field: string): void {
  if (sp) {
    if (sp.profileType === SecurityProfile_ProfileType.Localhost) {
      throw invalidField(`${field}.localhost_ref`, `AppArmor profile ${quote(sp.localhostRef)} requested, but AppArmor is not available on this node`);
    }
    if (sp.profileType !== SecurityProfile_ProfileType.RuntimeDefault && sp.profileType !== SecurityProfile_ProfileType.Unconfined) {
      throw invalidField(`${field}.profile_type`, `unknown profile type ${sp.profileType}`);
    }
    return;
  }
  if (deprecated.startsWith('localhost/')) {
    throw invalidField(field.replace(/apparmor$/, 'apparmor_profile'), `AppArmor profile ${quote(deprecated)} requested, but AppArmor is not available on this node`);
  }
}
